"""Small ImageNet-layout TFRecord directories for tests: `write_imagenet_records(root, ...)`.

The layout is the reference one (TF models / tpu `build_imagenet_data.py`): `train-00000-of-0000N`
and `validation-00000-of-0000M` shards of `tf.train.Example`s with `image/encoded` (JPEG),
`image/class/label` in 1..1000 (0 is the background class), `image/filename`, `image/format`,
`image/height`, `image/width`, `image/channels`, `image/colorspace` and `image/class/synset`. As
the reference does, every split is shuffled before it is sharded, so each shard holds a random mix
of classes.

Images are not square (the aspect ratio varies, so the centre crop matters), and their content
depends on the class: a class colour plus stripes whose orientation is the class's, and per-image
noise and brightness so that no two images are the same. A proxy at 16 px learns them within an
epoch or two. Everything is fixed by `seed`.
"""

from __future__ import annotations

import colorsys
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ImagenetRecords:
    root: Path
    train_files: list[Path]
    val_files: list[Path]
    train_labels: list[int]  # per record, in file order (shard 0 first)
    val_labels: list[int]
    train_names: list[str]  # `image/filename` per record, in file order
    val_names: list[str]
    classes: int  # labels are 1..classes


def class_image(label: int, classes: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A uint8 [height, width, 3] image of class `label` (1-based): colour + oriented stripes + noise."""
    hue = (label - 1) / max(classes, 1)
    colour = np.array(colorsys.hsv_to_rgb(hue, 0.8, 0.9)) * 255.0
    angle = np.pi * ((label - 1) % 4) / 4.0
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    stripes = np.sin((x * np.cos(angle) + y * np.sin(angle)) * (2 * np.pi / max(4.0, min(width, height) / 4)))
    image = colour * rng.uniform(0.8, 1.1) + 40.0 * stripes[..., None] + rng.normal(0.0, 12.0, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _example(encoded: bytes, label: int, name: str, width: int, height: int) -> bytes:
    import tensorflow as tf

    def b(value: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def i(value: int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    feature = {"image/encoded": b(encoded), "image/format": b(b"JPEG"), "image/class/label": i(label),
               "image/class/synset": b(f"n{label:08d}".encode()), "image/filename": b(name.encode()),
               "image/height": i(height), "image/width": i(width), "image/channels": i(3),
               "image/colorspace": b(b"RGB")}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_split(root: Path, split: str, per_class: int, classes: int, image_size: int, shards: int,
                 rng: np.random.Generator) -> tuple[list[Path], list[int], list[str]]:
    import tensorflow as tf

    if per_class <= 0:
        return [], [], []
    items = [(label, k) for label in range(1, classes + 1) for k in range(per_class)]
    order = rng.permutation(len(items))  # the reference shuffles a split before sharding it
    records, labels, names = [], [], []
    for index in order:
        label, k = items[index]
        long_side = image_size
        short_side = max(1, int(round(image_size * rng.uniform(0.6, 1.0))))
        width, height = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
        name = f"n{label:08d}_{split}_{k}.JPEG"
        encoded = _jpeg(class_image(label, classes, width, height, rng))
        records.append(_example(encoded, label, name, width, height))
        labels.append(label)
        names.append(name)
    files = []
    bounds = np.linspace(0, len(records), shards + 1).round().astype(int)
    for shard in range(shards):
        path = root / f"{split}-{shard:05d}-of-{shards:05d}"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for j in range(bounds[shard], bounds[shard + 1]):
                writer.write(records[j])
        files.append(path)
    return files, labels, names  # shards are consecutive slices: file order is this order


def write_imagenet_records(root: str | Path, train_per_class: int = 20, val_per_class: int = 5,
                           classes: int = 4, image_size: int = 40, shards: int = 2, val_shards: int = 1,
                           seed: int = 0) -> ImagenetRecords:
    """Write `classes` classes (labels 1..classes) into `root` in the reference ImageNet layout.

    `image_size` is every image's long side (the short side is 60-100% of it, portrait or landscape
    at random); `shards` / `val_shards` are the numbers of train / validation files; with
    `val_per_class=0` no validation files are written (the proxy then holds some training records out).
    """
    if not 1 <= classes <= 1000:
        raise ValueError(f"classes must be in 1..1000, got {classes}")
    if shards < 1 or val_shards < 1:
        raise ValueError("shards and val_shards must be at least 1")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train = _write_split(root, "train", train_per_class, classes, image_size, shards, rng)
    val = _write_split(root, "validation", val_per_class, classes, image_size, val_shards, rng)
    return ImagenetRecords(root, train[0], val[0], train[1], val[1], train[2], val[2], classes)
