"""Image constants and helpers shared by the proxy data sources and by deployment (eval, calibration)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The image files every part reads (a directory data source, `nas eval`, export calibration): one list,
# so a data set that trains also evaluates. All are formats PIL decodes.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def square_resize(image, resolution: int) -> np.ndarray:
    """Centre square crop, then bilinear resize to `resolution`; `image` is a PIL image."""
    from PIL import Image

    image = image.convert("RGB")
    w, h = image.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    return np.asarray(image.crop(box).resize((resolution, resolution), Image.BILINEAR), dtype=np.uint8)


def normalize(images: np.ndarray, mean, std) -> np.ndarray:
    """`(x - mean) / std` per channel, float32: what the models take as input."""
    return (images.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
