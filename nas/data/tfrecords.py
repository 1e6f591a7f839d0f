"""TFRecords in the reference ImageNet layout: counting records from the framing, decoding examples,
reading a plan of (file, skip, take) into memory, and `TrainStream`, the training split read from the
files every epoch (used by the `imagenet` source)."""

from __future__ import annotations

import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.common.errors import ConfigError

IMAGENET_CLASSES = 1001  # 1000 + the background class 0
SHUFFLE_BUFFER = 4096  # streamed: serialized records (~110 KB each for ImageNet, so ~450 MB)
INTERLEAVE_FILES = 16  # streamed: shards read at once

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


def parse_example(serialized):
    """(encoded image bytes, int64 label) of one serialized reference-layout Example."""
    import tensorflow as tf

    example = tf.io.parse_single_example(serialized, {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64)})
    return example["image/encoded"], example["image/class/label"]


def decode_example(serialized, resolution: int):
    """(uint8 [R, R, 3] image, int64 label) of one serialized reference-layout Example: the centre
    square, resized bilinearly, rounded. The in-memory and the streamed paths both decode with this,
    so they see the same images."""
    import tensorflow as tf

    encoded, label = parse_example(serialized)
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    side = tf.minimum(tf.shape(image)[0], tf.shape(image)[1])
    image = tf.image.resize_with_crop_or_pad(image, side, side)
    image = tf.image.resize(image, (resolution, resolution), method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8), label


def _checked_decode(serialized, resolution: int | None):
    """`decode_example` (None: `parse_example`, the image left encoded), failing the pipeline on a
    label outside the reference layout's 0..1000."""
    import tensorflow as tf

    image, label = parse_example(serialized) if resolution is None else decode_example(serialized, resolution)
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

    def shuffled(self, seed: int, epoch: int, deterministic: bool = True):
        """`records(seed, epoch)` through a shuffle buffer of `shuffle_buffer` records seeded by
        (seed, epoch): the epoch's record order, the same for the same (seed, epoch)."""
        shuffle_seed = int(np.random.default_rng([seed, epoch, 1]).integers(2**31 - 1))
        return self.records(seed, epoch, deterministic).shuffle(self.shuffle_buffer, seed=shuffle_seed)

    def batches(self, batch_size: int, seed: int, epoch: int, deterministic: bool = True):
        """One epoch: `count // batch_size` full batches of uint8 images and int64 labels, shuffled
        by (seed, epoch): the same seed gives the same batches. Images stay uint8 (a quarter of
        float32's bytes to move); the consumer normalises them, on its device. Memory: the shuffle
        buffer's serialized records and a few decoded batches in flight."""
        import tensorflow as tf

        ds = self.shuffled(seed, epoch, deterministic)
        ds = ds.map(lambda record: _checked_decode(record, self.resolution),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        ds = ds.batch(batch_size, drop_remainder=True)
        return ds.take(self.count // batch_size).prefetch(tf.data.AUTOTUNE)


