"""`imagenet` data source: `PATH/train-*` and `PATH/validation-*` TFRecords with `image/encoded` (JPEG)
and `image/class/label` 1..1000, label 0 being the background class: 1001 outputs, as the reference.
In memory (capped while reading), or with `stream: true` the training split read from the files every
epoch (`nas.data.tfrecords.TrainStream`); see `nas.data.base` for how validation is held out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.common.errors import ConfigError
from nas.data.base import DATA_SOURCES, Dataset, DataSource, holdout
from nas.data.tfrecords import (IMAGENET_CLASSES, TrainStream, _count_all, _decode_records, _read_plan,
                                _read_tfrecords, _spread)

STREAM_SAMPLE = 256  # streamed: the first training records held in memory (batch-norm recalibration)


@DATA_SOURCES.register("imagenet")
class ImagenetSource(DataSource):
    needs = "path"
    streams = True

    @classmethod
    def check(cls, config) -> None:
        root = Path(config.path)
        if not root.is_dir():
            raise ConfigError(f"data.path: directory '{root}' does not exist")
        if not sorted(root.glob("train-*")):
            raise ConfigError(f"data.path: no 'train-*' TFRecord files in '{root}' (the reference ImageNet layout)")

    @classmethod
    def load(cls, config, resolution: int) -> Dataset:
        return _load_imagenet(config, resolution)


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
        mask = holdout(train[1], config.val_fraction, config.seed)
        train, val = (train[0][~mask], train[1][~mask]), (train[0][mask], train[1][mask])
    return Dataset("imagenet", *train, *val, num_classes=IMAGENET_CLASSES, include_background=True,
                   preprocessing="square-tf")


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
    return Dataset("imagenet", *sample, *val, num_classes=IMAGENET_CLASSES, include_background=True, stream=stream,
                   preprocessing="square-tf")


