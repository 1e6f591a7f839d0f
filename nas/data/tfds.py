"""`tfds` data source: a TensorFlow Datasets name the user has prepared (`tensorflow-datasets` installed)."""

from __future__ import annotations

import numpy as np

from nas.common.errors import ConfigError
from nas.data.base import DATA_SOURCES, Dataset, DataSource, holdout


@DATA_SOURCES.register("tfds")
class TfdsSource(DataSource):
    needs = "name"
    named_splits = True

    @classmethod
    def check(cls, config) -> None:
        try:
            import tensorflow_datasets  # noqa: F401
        except ImportError:
            raise ConfigError("data.source: 'tfds' needs TensorFlow Datasets: "
                              "pip install tensorflow-datasets (then prepare the data set once)") from None

    @classmethod
    def load(cls, config, resolution: int) -> Dataset:
        return _load_tfds(config, resolution)

def _load_tfds(config: DataConfig, resolution: int) -> Dataset:
    import tensorflow as tf
    import tensorflow_datasets as tfds

    def read(split: str, limit: int | None):
        try:
            ds, info = tfds.load(config.name, split=split, as_supervised=True, with_info=True, download=False)
        except Exception as exc:  # tfds raises many kinds for a missing / unprepared data set
            raise ConfigError(f"data.name: cannot load TFDS data set '{config.name}' split '{split}': "
                              f"{str(exc).splitlines()[0]}") from None
        images, labels = [], []
        for image, label in ds.take(limit if limit is not None else -1):
            if image.shape[-1] == 1:
                image = tf.image.grayscale_to_rgb(image)
            side = tf.minimum(tf.shape(image)[0], tf.shape(image)[1])
            image = tf.image.resize(tf.image.resize_with_crop_or_pad(image, side, side), (resolution, resolution))
            images.append(np.clip(np.round(image.numpy()), 0, 255).astype(np.uint8))
            labels.append(int(label))
        names = getattr(info.features["label"], "names", None)
        return np.stack(images), np.array(labels, np.int64), info.features["label"].num_classes, names

    train_images, train_labels, classes, names = read(config.train_split, config.max_train)
    if config.val_split is not None:
        val_images, val_labels, _, _ = read(config.val_split, config.max_val)
    else:
        mask = holdout(train_labels, config.val_fraction, config.seed)
        train_images, train_labels, val_images, val_labels = (
            train_images[~mask], train_labels[~mask], train_images[mask], train_labels[mask])
    return Dataset(config.name, train_images, train_labels, val_images, val_labels, num_classes=classes,
                   preprocessing="square-tf", class_names=tuple(names) if names else None)
