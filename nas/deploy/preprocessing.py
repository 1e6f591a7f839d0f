"""Images in, model inputs out: how a model's input is prepared, recorded with the model and reused.

A trained model's input preparation is part of the model: `nas train` writes it into the run
directory (`preprocessing.yaml`, an `InputRecord`), `nas export` copies it beside the `.tflite`
(`<stem>.preprocessing.yaml`), and training's held-out evaluation, `nas eval` (checkpoint or
TFLite) and export's int8 calibration all prepare images with it, so they report one accuracy.
Three methods (`METHODS`):

- `square-pil`: the centre square of the short side, PIL's bilinear resize (which filters when it
  shrinks): how the `directory`, `offline` and `mnist` data sources load images, so a run on the
  user's own images is evaluated the way its held-out images were;
- `square-tf`: the centre square, TF2's `tf.image.resize` (bilinear, half-pixel), rounded: how the
  `imagenet` and `tfds` sources decode;
- `reference`: the reference's evaluation preprocessing, for the released ImageNet models and for
  anything with no record (a released checkpoint, a `.tflite` from elsewhere).

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from nas.common.errors import UserError
from nas.common.files import write_bytes
from nas.data.images import IMAGE_SUFFIXES, is_image_file, normalize, square_rgb8, to_rgb8

CROP_PADDING = 32
REFERENCE = "reference"
METHODS = {
    "square-pil": "centre square, PIL bilinear resize",
    "square-tf": "centre square, TF2 bilinear resize",
    REFERENCE: f"the reference's centre crop (side R / (R + {CROP_PADDING}) of the short side), TF1 bilinear resize",
}
RECORD_FILE = "preprocessing.yaml"  # in a run directory; beside a .tflite: <stem>.preprocessing.yaml
LABELS_FILE = "labels.txt"  # in a run directory; beside a .tflite: <stem>.labels.txt


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


def square_tf(image: np.ndarray, size: int) -> np.ndarray:
    """The `imagenet` / `tfds` sources' decode: centre square, `tf.image.resize` bilinear, rounded."""
    import tensorflow as tf

    side = min(image.shape[0], image.shape[1])
    square = tf.image.resize_with_crop_or_pad(image, side, side)
    resized = tf.image.resize(square, (size, size), method="bilinear")
    return np.clip(np.round(resized.numpy()), 0, 255).astype(np.float32)


def prepare_pixels(image: np.ndarray, size: int, method: str = REFERENCE) -> np.ndarray:
    """uint8 RGB `[h, w, 3]` -> float32 `[size, size, 3]` in 0..255 with one of `METHODS`."""
    if method == REFERENCE:
        return preprocess(image, size)
    if method == "square-pil":
        return square_rgb8(image, size).astype(np.float32)
    if method == "square-tf":
        return square_tf(image, size)
    raise UserError(f"unknown preprocessing '{method}': expected one of {', '.join(METHODS)}")


@dataclass(frozen=True)
class InputRecord:
    """How an image becomes a model's input: crop and resize (`method`) to `resolution`, then
    `(x - mean) / std`. Written with a trained or exported model; read back by eval and export."""

    method: str
    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, spec, method: str = REFERENCE) -> "InputRecord":
        return cls(method, int(spec.resolution), tuple(map(float, spec.mean)), tuple(map(float, spec.std)))

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """uint8 RGB of any size -> normalised float32 `[R, R, 3]`."""
        return normalize(prepare_pixels(image, self.resolution, self.method), self.mean, self.std)

    def describe(self) -> str:
        return f"{METHODS[self.method]} to {self.resolution}, (x - {self.mean[0]:g}) / {self.std[0]:g}"

    def to_yaml(self) -> str:
        return yaml.safe_dump({"method": self.method, "resolution": self.resolution,
                               "mean": list(self.mean), "std": list(self.std)}, sort_keys=False)

    def write(self, path: str | os.PathLike) -> Path:
        return write_bytes(path, self.to_yaml().encode())


def read_record(path: str | os.PathLike) -> InputRecord:
    """An `InputRecord` file; a damaged one is a `UserError` naming it."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        record = InputRecord(str(data["method"]), int(data["resolution"]), tuple(float(v) for v in data["mean"]),
                             tuple(float(v) for v in data["std"]))
    except OSError as exc:
        raise UserError(f"cannot read '{path}': {exc.strerror or exc}") from None
    except (yaml.YAMLError, KeyError, TypeError, ValueError):
        raise UserError(f"'{path}' is not a preprocessing record (method, resolution, mean, std); "
                        "delete it to use the reference's preprocessing") from None
    if record.method not in METHODS or len(record.mean) != 3 or len(record.std) != 3:
        raise UserError(f"'{path}': method must be one of {', '.join(METHODS)}, mean and std three values each")
    return record


def write_labels(path: str | os.PathLike, labels) -> Path:
    """Class names one per line, by output index (without the background class)."""
    return write_bytes(path, "".join(f"{name}\n" for name in labels).encode())


def write_run_record(run_dir: str | os.PathLike, spec, data) -> None:
    """A training run's `preprocessing.yaml` (how its held-out images were prepared: the data
    source's method) and `labels.txt` (its class names, when the source has them)."""
    run_dir = Path(run_dir)
    InputRecord.of(spec, data.preprocessing).write(run_dir / RECORD_FILE)
    if data.class_names is not None:
        write_labels(run_dir / LABELS_FILE, data.class_names)


def sidecars(model_file: str | os.PathLike) -> tuple[Path, Path]:
    """(preprocessing record, labels) beside an exported `.tflite`: `<stem>.preprocessing.yaml` and
    `<stem>.labels.txt`. A compiled `<stem>_edgetpu.tflite` uses its source's."""
    path = Path(model_file)
    stem = path.stem
    for candidate in (stem, stem[:-len("_edgetpu")] if stem.endswith("_edgetpu") else None):
        if candidate and (path.parent / f"{candidate}.{RECORD_FILE}").is_file():
            stem = candidate
            break
    return path.parent / f"{stem}.{RECORD_FILE}", path.parent / f"{stem}.{LABELS_FILE}"


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
