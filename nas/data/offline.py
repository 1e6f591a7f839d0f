"""Image data for proxy training, calibration and evaluation.

`load_offline` is the embedded default: scikit-learn's handwritten digits (1,797 real 8x8 scans,
10 classes), which ship inside the package, so tests and the default search never download
anything. Images come back as uint8 RGB at the asked resolution (bilinear, as the reference
resizes); normalisation with a spec's mean/std is the caller's, via `nas.data.images.normalize`.
"""

from __future__ import annotations

import functools

import numpy as np

from nas.data.base import DATA_SOURCES, Dataset, DataSource, split_of
from nas.data.images import grey_set_to_rgb8

OFFLINE_NAME = "digits"
OFFLINE_CLASSES = 10


@functools.lru_cache(maxsize=8)
def _digits(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    labels = data.target.astype(np.int64)
    labels.setflags(write=False)
    return grey_set_to_rgb8((data.images * (255.0 / 16.0)).round().astype(np.uint8), resolution), labels


def load_offline(resolution: int, split: str = "train", val_fraction: float = 0.2, seed: int = 0):
    """(images uint8 [N, R, R, 3], labels int64 [N]) of the offline digits; a fixed stratified split."""
    return split_of(_digits(int(resolution)), split, val_fraction, seed)


@DATA_SOURCES.register("offline")
class OfflineSource(DataSource):
    """scikit-learn's digits, shipped with the package: the default, needs nothing."""

    @classmethod
    def image_size(cls, config) -> int:
        return 8  # scikit-learn's digits are 8x8

    @classmethod
    def load(cls, config, resolution: int) -> Dataset:
        train = load_offline(resolution, "train", config.val_fraction, config.seed)
        val = load_offline(resolution, "val", config.val_fraction, config.seed)
        return Dataset(OFFLINE_NAME, *train, *val, num_classes=OFFLINE_CLASSES, preprocessing="square-pil",
                       class_names=tuple(str(i) for i in range(OFFLINE_CLASSES)))
