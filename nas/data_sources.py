"""Where the proxy task's images come from: the offline digits, an image directory, TFDS, or ImageNet
TFRecords in the reference layout. Every source yields the same thing, a `Dataset` of uint8 RGB
images at the proxy resolution with int labels, held in memory once for the whole search; only
`imagenet` can instead stream its training split from the files every epoch (`stream: true`).

- `offline`: scikit-learn's digits via `nas.datasets.load_offline` (ships with the package).
- `directory`: `PATH/<class>/*.jpg|png|...`, or `PATH/train/<class>/...` with `PATH/val/<class>/...`
  (or `validation/`); classes are the sorted folder names.
- `tfds`: a TensorFlow Datasets name the user has prepared (`tensorflow-datasets` installed).
- `imagenet`: `PATH/train-*` and `PATH/validation-*` TFRecords with `image/encoded` (JPEG) and
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
"""

from __future__ import annotations

import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.schema import ConfigError, setting

SOURCES = ("offline", "directory", "tfds", "imagenet")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
IMAGENET_CLASSES = 1001  # 1000 + the background class 0
STREAM_SAMPLE = 256  # streamed: the first training records held in memory (batch-norm recalibration)
SHUFFLE_BUFFER = 4096  # streamed: serialized records (~110 KB each for ImageNet, so ~450 MB)
INTERLEAVE_FILES = 16  # streamed: shards read at once


@dataclass(frozen=True)
class DataConfig:
    """`data:` in a search config."""

    source: str = setting("offline", choices=SOURCES)
    path: str | None = None  # directory, imagenet
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

    @property
    def train_count(self) -> int:
        """Training images per epoch (the streamed split's size, or the in-memory arrays')."""
        return self.stream.count if self.stream is not None else len(self.train_labels)


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
    if config.source != "imagenet":
        if config.stream:
            raise ConfigError(f"data.stream: only the 'imagenet' source can stream its training split; "
                              f"'{config.source}' is held in memory")
        if config.val_from_train:
            raise ConfigError(f"data.val_from_train: only the 'imagenet' source has validation-* files to "
                              f"set aside; '{config.source}' holds val_fraction out when it has no validation split")
    if config.shuffle_buffer != SHUFFLE_BUFFER and not config.stream:
        raise ConfigError("data.shuffle_buffer: only used with stream: true (in memory, every epoch is a full shuffle)")


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
                   stream=data.stream)


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

_COUNTS: dict[tuple, int] = {}  # (path, size, mtime) -> records: counted once per process
_COUNTS_LOCK = threading.Lock()


def count_records(path: str | Path) -> int:
    """The records in an uncompressed TFRecord file, from its framing alone (per record: an 8-byte
    length, a 4-byte CRC, the data, a 4-byte CRC), so one small read per record and no data read.
    Cached in memory per (path, size, modification time): nothing is written next to the files."""
    path = str(path)
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    with _COUNTS_LOCK:
        if key in _COUNTS:
            return _COUNTS[key]
    count = offset = 0
    with open(path, "rb", buffering=0) as f:
        while offset < stat.st_size:
            f.seek(offset)
            header = f.read(8)
            if len(header) < 8:
                break
            offset += 16 + struct.unpack("<Q", header)[0]
            count += 1
    if offset != stat.st_size:
        raise ConfigError(f"data.path: '{path}' is not an uncompressed TFRecord file "
                          f"(its record lengths do not add up to its size)")
    with _COUNTS_LOCK:
        _COUNTS[key] = count
    return count


def _count_all(files: list[Path]) -> np.ndarray:
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(files)))) as pool:
        return np.array(list(pool.map(count_records, files)), np.int64)


def _spread(total: int, caps: np.ndarray) -> np.ndarray:
    """`total` shared out over slots as evenly as each slot's cap allows (earlier slots get the remainder)."""
    caps = np.asarray(caps, np.int64)
    out = np.zeros(len(caps), np.int64)
    left = min(int(total), int(caps.sum()))
    while left > 0:
        slots = np.flatnonzero(out < caps)
        share = left // len(slots)
        if share == 0:
            out[slots[:left]] += 1
            break
        add = np.minimum(caps[slots] - out[slots], share)
        out[slots] += add
        left -= int(add.sum())
    return out


def decode_example(serialized, resolution: int):
    """(uint8 [R, R, 3] image, int64 label) of one serialized reference-layout Example: the centre
    square, resized bilinearly, rounded. The in-memory and the streamed paths both decode with this,
    so they see the same images."""
    import tensorflow as tf

    example = tf.io.parse_single_example(serialized, {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64)})
    image = tf.io.decode_image(example["image/encoded"], channels=3, expand_animations=False)
    side = tf.minimum(tf.shape(image)[0], tf.shape(image)[1])
    image = tf.image.resize_with_crop_or_pad(image, side, side)
    image = tf.image.resize(image, (resolution, resolution), method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8), example["image/class/label"]


def _checked_decode(serialized, resolution: int):
    """`decode_example`, failing the pipeline on a label outside the reference layout's 0..1000."""
    import tensorflow as tf

    image, label = decode_example(serialized, resolution)
    inside = tf.logical_and(label >= 0, label < IMAGENET_CLASSES)
    with tf.control_dependencies([tf.debugging.Assert(inside, ["label outside 0..1000 (the reference layout):", label])]):
        return tf.identity(image), tf.identity(label)


def _file_plan(files, skip, take):
    """A tf.data.Dataset of (path, records to skip, records to take) for the files that give some."""
    import tensorflow as tf

    keep = [i for i in range(len(files)) if take[i] > 0]
    return tf.data.Dataset.from_tensor_slices((
        tf.constant([str(files[i]) for i in keep], tf.string),
        tf.constant([int(skip[i]) for i in keep], tf.int64),
        tf.constant([int(take[i]) for i in keep], tf.int64))), len(keep)


def _read_file_part(path, skip, take):
    import tensorflow as tf

    return tf.data.TFRecordDataset(path).skip(skip).take(take)


@dataclass(frozen=True)
class TrainStream:
    """The streamed training split: records `skip[i]` to `skip[i] + take[i]` of every `files[i]`.

    Plain data (picklable; no TensorFlow object is held): `batches` builds an epoch's pipeline.
    """

    files: tuple[str, ...]
    skip: tuple[int, ...]  # the held-out validation records at the head of each file (or 0)
    take: tuple[int, ...]  # the training records after them (all, or a `max_train` share)
    resolution: int
    shuffle_buffer: int = SHUFFLE_BUFFER

    @property
    def count(self) -> int:
        return sum(self.take)

    def records(self, seed: int | None = None, epoch: int = 0, deterministic: bool = True):
        """The split's serialized records: the files in an order fixed by (seed, epoch) (None: in
        file order), read INTERLEAVE_FILES at a time, one record from each in turn."""
        import tensorflow as tf

        order = (np.arange(len(self.files)) if seed is None
                 else np.random.default_rng([seed, epoch]).permutation(len(self.files)))
        plan, files = _file_plan([self.files[i] for i in order], [self.skip[i] for i in order],
                                 [self.take[i] for i in order])
        return plan.interleave(_read_file_part, cycle_length=max(1, min(INTERLEAVE_FILES, files)), block_length=1,
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)

    def batches(self, batch_size: int, seed: int, epoch: int, deterministic: bool = True):
        """One epoch: `count // batch_size` full batches of uint8 images and int64 labels, shuffled
        by (seed, epoch): the same seed gives the same batches. Images stay uint8 (a quarter of
        float32's bytes to move); the consumer normalises them, on its device. Memory: the shuffle
        buffer's serialized records and a few decoded batches in flight."""
        import tensorflow as tf

        shuffle_seed = int(np.random.default_rng([seed, epoch, 1]).integers(2**31 - 1))
        ds = self.records(seed, epoch, deterministic).shuffle(self.shuffle_buffer, seed=shuffle_seed)
        ds = ds.map(lambda record: _checked_decode(record, self.resolution),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        ds = ds.batch(batch_size, drop_remainder=True)
        return ds.take(self.count // batch_size).prefetch(tf.data.AUTOTUNE)


def _load_imagenet(config: DataConfig, resolution: int) -> Dataset:
    root = Path(config.path)
    train_files = sorted(root.glob("train-*"))
    val_files = [] if config.val_from_train else sorted(root.glob("validation-*"))
    if config.stream:
        return _stream_imagenet(config, resolution, train_files, val_files)
    # Caps are applied while reading, so a proxy never decodes more of ImageNet than it keeps.
    train = _read_tfrecords(train_files, resolution, config.max_train)
    if val_files:
        val = _read_tfrecords(val_files, resolution, config.max_val)
    else:
        mask = _holdout(train[1], config.val_fraction, config.seed)
        train, val = (train[0][~mask], train[1][~mask]), (train[0][mask], train[1][mask])
    return Dataset("imagenet", *train, *val, num_classes=IMAGENET_CLASSES, include_background=True)


def _stream_imagenet(config: DataConfig, resolution: int, train_files: list[Path], val_files: list[Path]) -> Dataset:
    """Validation in memory (validation-*, or the head of every training shard); training streamed."""
    counts = _count_all(train_files)
    held = np.zeros(len(train_files), np.int64)
    if val_files:
        val = _read_tfrecords(val_files, resolution, config.max_val)
    else:
        size = config.max_val if config.max_val is not None else int(round(config.val_fraction * counts.sum()))
        held = _spread(size, counts)
        val = _read_plan(train_files, np.zeros_like(held), held, resolution)
    left = counts - held
    take = left if config.max_train is None else _spread(config.max_train, left)
    stream = TrainStream(tuple(map(str, train_files)), tuple(map(int, held)), tuple(map(int, take)),
                         resolution, config.shuffle_buffer)
    sample = _decode_records(stream.records().take(STREAM_SAMPLE), min(STREAM_SAMPLE, stream.count), resolution)
    return Dataset("imagenet", *sample, *val, num_classes=IMAGENET_CLASSES, include_background=True, stream=stream)


def _read_tfrecords(files: list[Path], resolution: int, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first `limit` records (all for None) of `files` in file order, decoded."""
    take = []
    for path in files:  # counts only as many files as the cap needs
        wanted = count_records(path) if limit is None else min(count_records(path), limit - sum(take))
        take.append(wanted)
        if limit is not None and sum(take) >= limit:
            break
    return _read_plan(files[:len(take)], [0] * len(take), take, resolution)


def _read_plan(files, skip, take, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Records `skip[i]` to `skip[i] + take[i]` of every `files[i]`, in file order, decoded."""
    plan, _ = _file_plan(files, skip, take)
    return _decode_records(plan.flat_map(_read_file_part), int(sum(take)), resolution)


def _decode_records(records, count: int, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` serialized records decoded in parallel (order kept) into preallocated arrays."""
    import tensorflow as tf

    images = np.zeros((count, resolution, resolution, 3), np.uint8)
    labels = np.zeros(count, np.int64)
    done = 0
    decoded = records.map(lambda record: decode_example(record, resolution),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(256)
    try:
        for batch_images, batch_labels in decoded:
            n = min(len(batch_labels), count - done)
            images[done:done + n], labels[done:done + n] = batch_images.numpy()[:n], batch_labels.numpy()[:n]
            done += n
            if done == count:
                break
    except tf.errors.OpError as exc:
        raise ConfigError(f"data.path: cannot read the TFRecords: {exc.message.splitlines()[0]}") from None
    if done != count:
        raise ConfigError(f"data.path: the TFRecords gave {done} records where their framing counted {count}")
    bad = labels[(labels < 0) | (labels >= IMAGENET_CLASSES)]
    if len(bad):
        raise ConfigError(f"data.path: label {bad[0]} is outside 0..1000 (the reference layout)")
    return images, labels


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
