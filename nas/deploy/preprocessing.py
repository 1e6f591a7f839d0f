"""Images in, model inputs out: the reference's evaluation preprocessing, in NumPy and PIL.

The reference (`efficientnet/preprocessing.py`, eval branch) does, for a square model input `S`:

1. centre crop of side `int(S / (S + 32) * min(h, w))` (float32 arithmetic, truncated), offset
   `(h - side + 1) // 2`: a fixed 32-pixel padding, so the kept fraction is 0.875 at 224 but
   0.882 at 240 (M) and 0.904 at 300 (L);
2. bilinear resize to `S x S` (the EdgeTPU models' choice, for easier post-training quantisation)
   with TF1's `resize_bilinear` semantics: no half-pixel centres, source = destination * in/out;
3. `(x - mean) / std` with the spec's values (`nas.data.images.normalize`).

Quirk kept on purpose: TF1's legacy bilinear resize samples the top-left corner of each output pixel
(TF2's `tf.image.resize` samples its centre), which shifts the image by up to half an input pixel.
The released checkpoints were evaluated and calibrated with the legacy one, so it is used here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nas.common.errors import UserError
from nas.data.images import IMAGE_SUFFIXES, is_image_file, to_rgb8

CROP_PADDING = 32


def load_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 RGB `[h, w, 3]`; a missing or non-image file is a `UserError`."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"image '{path}' does not exist" if not path.exists() else f"'{path}' is not a file")
    try:
        with Image.open(path) as image:
            return to_rgb8(image)
    except UnidentifiedImageError:
        raise UserError(f"'{path}' is not an image PIL can read (expected one of {', '.join(IMAGE_SUFFIXES)})") from None
    except (OSError, ValueError) as exc:  # truncated or corrupt image data
        raise UserError(f"cannot decode image '{path}': {exc}") from None


def crop_window(height: int, width: int, size: int, crop_padding: int = CROP_PADDING) -> tuple[int, int, int]:
    """(top, left, side) of the reference's padded centre crop."""
    # The reference multiplies a float32 tensor by the Python ratio, then truncates to int32.
    side = int(np.float32(size / (size + crop_padding)) * np.float32(min(height, width)))
    side = max(side, 1)
    return (height - side + 1) // 2, (width - side + 1) // 2, side


def resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """TF1 `resize_bilinear(align_corners=False, half_pixel_centers=False)` to `size x size`, float32."""
    image = np.asarray(image, np.float32)

    def weights(in_size: int):
        src = np.arange(size, dtype=np.float32) * (np.float32(in_size) / np.float32(size))
        lower = np.floor(src).astype(np.int64)
        upper = np.minimum(lower + 1, in_size - 1)
        return lower, upper, (src - lower).astype(np.float32)

    y0, y1, fy = weights(image.shape[0])
    x0, x1, fx = weights(image.shape[1])
    fx = fx[None, :, None]
    top = image[y0][:, x0] + (image[y0][:, x1] - image[y0][:, x0]) * fx
    bottom = image[y1][:, x0] + (image[y1][:, x1] - image[y1][:, x0]) * fx
    return top + (bottom - top) * fy[:, None, None]


def preprocess(image: np.ndarray, size: int, crop_padding: int = CROP_PADDING) -> np.ndarray:
    """uint8 `[h, w, 3]` -> float32 `[size, size, 3]` in 0..255: padded centre crop, bilinear resize."""
    top, left, side = crop_window(image.shape[0], image.shape[1], size, crop_padding)
    return resize_bilinear(image[top:top + side, left:left + side], size)


def list_images(directory: str | os.PathLike) -> list[Path]:
    """Every image (`IMAGE_SUFFIXES`) under `directory` (recursively), sorted; none is a `UserError`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"image directory '{directory}' does not exist" if not directory.exists()
                        else f"'{directory}' is not a directory")
    paths = sorted(p for p in directory.rglob("*") if is_image_file(p))
    if not paths:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under '{directory}'")
    return paths
