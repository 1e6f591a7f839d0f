"""Where the proxy task's images come from: the offline digits, an image directory, TFDS, or ImageNet
TFRecords in the reference layout. Every source yields the same thing, a `Dataset` of uint8 RGB
images at the proxy resolution with int labels, held in memory once for the whole search.

- `offline`: scikit-learn's digits via `nas.datasets.load_offline` (ships with the package).
- `directory`: `PATH/<class>/*.jpg|png|...`, or `PATH/train/<class>/...` with `PATH/val/<class>/...`
  (or `validation/`); classes are the sorted folder names.
- `tfds`: a TensorFlow Datasets name the user has prepared (`tensorflow-datasets` installed).
- `imagenet`: `PATH/train-*` and `PATH/validation-*` TFRecords with `image/encoded` (JPEG) and
  `image/class/label` 1..1000, label 0 being the background class: 1001 outputs, as the reference.

Images are centre-cropped to a square and resized bilinearly (the reference's resize). Without a
separate validation split, a fixed, stratified `val_fraction` of the training images is held out,
as MNAS holds 50K training images out of ImageNet's training set for its proxy's validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.schema import ConfigError, setting

SOURCES = ("offline", "directory", "tfds", "imagenet")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
IMAGENET_CLASSES = 1001  # 1000 + the background class 0


@dataclass(frozen=True)
class DataConfig:
    """`data:` in a search config."""

    source: str = setting("offline", choices=SOURCES)
    path: str | None = None  # directory, imagenet
    name: str | None = None  # tfds
    train_split: str = "train"  # tfds
    val_split: str | None = None  # tfds; null: hold out val_fraction of the training split
    val_fraction: float = setting(0.2, above=0.0, max=0.9)
    max_train: int | None = setting(None, min=1)  # caps keep a big source's proxy in memory
    max_val: int | None = setting(None, min=1)
    seed: int = setting(0, min=0)  # fixes the held-out split and the caps' subsets


@dataclass(frozen=True)
class Dataset:
    name: str
    train_images: np.ndarray  # uint8 [N, R, R, 3]
    train_labels: np.ndarray  # int64 [N]
    val_images: np.ndarray
    val_labels: np.ndarray
    num_classes: int
    include_background: bool = False


def check_data(config: DataConfig) -> None:
    """Everything that can be checked before any work: paths, required fields, installed packages."""
    needs = {"directory": "path", "imagenet": "path", "tfds": "name"}.get(config.source)
    for field in ("path", "name"):
        if getattr(config, field) is not None and field != needs:
            raise ConfigError(f"data.{field}: not used by the '{config.source}' source")
    if needs and getattr(config, needs) is None:
        raise ConfigError(f"data.{needs}: the '{config.source}' source needs one")
    if config.source == "directory":
        root = Path(config.path)
        if not root.is_dir():
            raise ConfigError(f"data.path: directory '{root}' does not exist")
        if not _class_dirs(_split_root(root, "train")):
            raise ConfigError(f"data.path: '{root}' has no class subfolders with images "
                              f"(expected PATH/<class>/*.jpg or PATH/train/<class>/*.jpg)")
    elif config.source == "imagenet":
        root = Path(config.path)
        if not root.is_dir():
            raise ConfigError(f"data.path: directory '{root}' does not exist")
        if not sorted(root.glob("train-*")):
            raise ConfigError(f"data.path: no 'train-*' TFRecord files in '{root}' (the reference ImageNet layout)")
    elif config.source == "tfds":
        try:
            import tensorflow_datasets  # noqa: F401
        except ImportError:
            raise ConfigError("data.source: 'tfds' needs TensorFlow Datasets: "
                              "pip install tensorflow-datasets (then prepare the data set once)") from None
    if config.source != "tfds" and (config.val_split is not None or config.train_split != "train"):
        raise ConfigError(f"data.{'val_split' if config.val_split is not None else 'train_split'}: "
                          f"only the 'tfds' source has named splits")


def load_dataset(config: DataConfig, resolution: int) -> Dataset:
    """The configured data at `resolution`, split into training and validation, capped."""
    check_data(config)
    if config.source == "offline":
        from nas.datasets import OFFLINE_CLASSES, OFFLINE_NAME, load_offline

        train = load_offline(resolution, "train", config.val_fraction, config.seed)
        val = load_offline(resolution, "val", config.val_fraction, config.seed)
        data = Dataset(OFFLINE_NAME, *train, *val, num_classes=OFFLINE_CLASSES)
    elif config.source == "directory":
        data = _load_directory(config, resolution)
    elif config.source == "imagenet":
        data = _load_imagenet(config, resolution)
    else:
        data = _load_tfds(config, resolution)
    rng = np.random.default_rng(config.seed)
    train = _cap(data.train_images, data.train_labels, config.max_train, rng)
    val = _cap(data.val_images, data.val_labels, config.max_val, rng)
    if not len(train[1]) or not len(val[1]):
        raise ConfigError(f"data: the '{config.source}' source gave {len(train[1])} training and "
                          f"{len(val[1])} validation images; both need some")
    return Dataset(data.name, *train, *val, num_classes=data.num_classes, include_background=data.include_background)


def _cap(images: np.ndarray, labels: np.ndarray, limit: int | None, rng: np.random.Generator):
    if limit is None or len(labels) <= limit:
        return images, labels
    keep = np.sort(rng.choice(len(labels), limit, replace=False))
    return images[keep], labels[keep]


def _holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A fixed stratified validation mask: `fraction` of every class (at least one image of each)."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) > 1:
            val[rng.choice(idx, max(1, int(round(len(idx) * fraction))), replace=False)] = True
    return val


def square_resize(image, resolution: int) -> np.ndarray:
    """Centre square crop, then bilinear resize to `resolution`; `image` is a PIL image."""
    from PIL import Image

    image = image.convert("RGB")
    w, h = image.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    return np.asarray(image.crop(box).resize((resolution, resolution), Image.BILINEAR), dtype=np.uint8)


# Image directory ------------------------------------------------------------------------------------

def _split_root(root: Path, split: str) -> Path:
    names = ("train",) if split == "train" else ("val", "validation")
    for name in names:
        if (root / name).is_dir() and _class_dirs(root / name):
            return root / name
    return root


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and any(_images(p))) if root.is_dir() else []


def _images(folder: Path):
    return (p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _read_folder(root: Path, classes: list[str], resolution: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    images, labels = [], []
    for label, name in enumerate(classes):
        for path in _images(root / name):
            try:
                with Image.open(path) as image:
                    images.append(square_resize(image, resolution))
            except (OSError, UnidentifiedImageError) as exc:
                raise ConfigError(f"data.path: cannot read image '{path}': {exc}") from None
            labels.append(label)
    return np.stack(images) if images else np.zeros((0, resolution, resolution, 3), np.uint8), np.array(labels, np.int64)


def _load_directory(config: DataConfig, resolution: int) -> Dataset:
    root = Path(config.path)
    train_root, val_root = _split_root(root, "train"), _split_root(root, "val")
    classes = [p.name for p in _class_dirs(train_root)]
    images, labels = _read_folder(train_root, classes, resolution)
    if val_root != root and train_root != root:
        missing = sorted({p.name for p in _class_dirs(val_root)} - set(classes))
        if missing:
            raise ConfigError(f"data.path: validation classes {', '.join(missing)} have no training folder")
        val_images, val_labels = _read_folder(val_root, classes, resolution)
    else:
        val = _holdout(labels, config.val_fraction, config.seed)
        images, labels, val_images, val_labels = images[~val], labels[~val], images[val], labels[val]
    return Dataset(root.name, images, labels, val_images, val_labels, num_classes=len(classes))


# ImageNet TFRecords (the reference layout) ----------------------------------------------------------

def _load_imagenet(config: DataConfig, resolution: int) -> Dataset:
    root = Path(config.path)
    train_files = sorted(root.glob("train-*"))
    val_files = sorted(root.glob("validation-*"))
    # Caps are applied while reading, so a proxy never decodes more of ImageNet than it keeps.
    train = _read_tfrecords(train_files, resolution, config.max_train)
    if val_files:
        val = _read_tfrecords(val_files, resolution, config.max_val)
    else:
        mask = _holdout(train[1], config.val_fraction, config.seed)
        train, val = (train[0][~mask], train[1][~mask]), (train[0][mask], train[1][mask])
    return Dataset("imagenet", *train, *val, num_classes=IMAGENET_CLASSES, include_background=True)


def _read_tfrecords(files: list[Path], resolution: int, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf

    features = {"image/encoded": tf.io.FixedLenFeature([], tf.string),
                "image/class/label": tf.io.FixedLenFeature([], tf.int64)}
    images, labels = [], []
    try:
        for record in tf.data.TFRecordDataset([str(f) for f in files]):
            example = tf.io.parse_single_example(record, features)
            label = int(example["image/class/label"])
            if not 0 <= label < IMAGENET_CLASSES:
                raise ConfigError(f"data.path: label {label} is outside 0..1000 (the reference layout)")
            image = tf.io.decode_image(example["image/encoded"], channels=3, expand_animations=False)
            side = tf.minimum(tf.shape(image)[0], tf.shape(image)[1])
            image = tf.image.resize_with_crop_or_pad(image, side, side)
            image = tf.image.resize(image, (resolution, resolution), method="bilinear")
            images.append(np.clip(np.round(image.numpy()), 0, 255).astype(np.uint8))
            labels.append(label)
            if limit is not None and len(labels) >= limit:
                break
    except tf.errors.OpError as exc:
        raise ConfigError(f"data.path: cannot read the TFRecords: {exc.message.splitlines()[0]}") from None
    if not images:
        return np.zeros((0, resolution, resolution, 3), np.uint8), np.zeros(0, np.int64)
    return np.stack(images), np.array(labels, np.int64)


# TensorFlow Datasets --------------------------------------------------------------------------------

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
        return np.stack(images), np.array(labels, np.int64), info.features["label"].num_classes

    train_images, train_labels, classes = read(config.train_split, config.max_train)
    if config.val_split is not None:
        val_images, val_labels, _ = read(config.val_split, config.max_val)
    else:
        mask = _holdout(train_labels, config.val_fraction, config.seed)
        train_images, train_labels, val_images, val_labels = (
            train_images[~mask], train_labels[~mask], train_images[mask], train_labels[mask])
    return Dataset(config.name, train_images, train_labels, val_images, val_labels, num_classes=classes)
