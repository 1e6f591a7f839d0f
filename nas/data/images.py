"""Image constants and helpers shared by the proxy data sources and by deployment (eval, calibration)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.common.errors import UserError

# The image files every part reads (a directory data source, `nas eval`, export calibration): one list,
# so a data set that trains also evaluates. All are formats PIL decodes.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


# How every PIL mode becomes 8-bit RGB (`to_rgb8`), for the data sources and for eval alike:
# - 8-bit modes (1, L, RGB, CMYK, YCbCr, HSV, LAB) convert with PIL's own colour conversions;
# - alpha (LA, RGBA, PA, La, RGBa, and P with a transparent colour) is composited over white,
#   what a viewer shows, so a transparent background does not turn black;
# - 16-bit greyscale (I;16*) and 32-bit integer (I) data are scaled from 0..65535 (the range of the
#   16-bit files PIL reads as I), or from 0..max when values exceed it; never clipped, which turned
#   every 16-bit image white; float (F) data in 0..1 is scaled by 255, any other range stretched
#   from min(0, its minimum) to its maximum. 16-bit RGB files PIL already reduces to 8 bits per channel.
ALPHA_BACKGROUND = (255, 255, 255)
_SIXTEEN_BIT = 65535.0


def _scaled(values: np.ndarray, low: float, high: float) -> np.ndarray:
    span = high - low
    out = (values.astype(np.float64) - low) * (255.0 / span) if span > 0 else np.zeros(values.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1)


def to_rgb8(image) -> np.ndarray:
    """A PIL image of any mode as uint8 RGB `[h, w, 3]` (see the rules above)."""
    from PIL import Image

    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image).astype(np.int64)
        high = max(_SIXTEEN_BIT, float(values.max(initial=0)))
        return _grey_to_rgb(_scaled(values, min(0.0, float(values.min(initial=0))), high))
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        low, high = float(values.min(initial=0)), float(values.max(initial=0))
        in_unit = low >= 0.0 and high <= 1.0
        return _grey_to_rgb(_scaled(values, 0.0, 1.0) if in_unit else _scaled(values, low, high))
    try:
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif mode in ("PA", "LA"):
            image = image.convert("RGBA")
        if image.mode == "RGBA":
            background = Image.new("RGBA", image.size, ALPHA_BACKGROUND + (255,))
            image = Image.alpha_composite(background, image)
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except ValueError:  # a mode PIL cannot turn into RGB (e.g. premultiplied La)
        raise UserError(f"images of PIL mode '{mode}' are not supported; save the image as RGB or greyscale") from None


def square_resize(image, resolution: int) -> np.ndarray:
    """Centre square crop, then bilinear resize to `resolution`; `image` is a PIL image of any mode."""
    return square_rgb8(to_rgb8(image), resolution)


def square_rgb8(rgb: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 RGB `[h, w, 3]` -> its centre square, resized bilinearly with PIL to `resolution` (uint8)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    w, h = image.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    return np.asarray(image.crop(box).resize((resolution, resolution), Image.BILINEAR), dtype=np.uint8)


def grey_set_to_rgb8(images: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 grey scans [N, H, W] -> read-only uint8 RGB [N, R, R, 3]: each resized bilinearly with PIL
    (an unchanged copy when it already has that size), the grey copied to three channels."""
    from PIL import Image

    resized = np.stack([np.asarray(Image.fromarray(img, mode="L").resize((resolution, resolution), Image.BILINEAR))
                        for img in images])
    rgb = _grey_to_rgb(resized)
    rgb.setflags(write=False)
    return rgb


def normalize(images: np.ndarray, mean, std) -> np.ndarray:
    """`(x - mean) / std` per channel, float32: what the models take as input."""
    return (images.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
