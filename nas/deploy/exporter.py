"""A trained model out to deployment formats, as the reference exporter (`export_model.py`) does.

- The exported graph ends in a softmax: it outputs class probabilities, not logits.
- TFLite float: a plain conversion. Full-int8: converter optimisations on, builtin int8 ops only,
  uint8 input and output, ranges calibrated on representative images that go through the
  evaluation preprocessing (padded centre crop, bilinear resize, the spec's normalisation).
- SavedModel: signature `serving_default`, input `input` (normalised float images), output
  `output` (probabilities); unlike the reference's (batch 1) it takes any batch size.
- Edge TPU: `edgetpu_compiler` on the full-int8 file writes `<name>_edgetpu.tflite` beside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from search_space import ModelSpec

from nas.common.errors import UserError
from nas.common.files import atomic_path
from nas.data.images import normalize
from nas.data.offline import load_offline
from nas.deploy.preprocessing import list_images, load_image, preprocess

EDGETPU_COMPILER = "edgetpu_compiler"
EDGETPU_INSTALL = ("install Coral's package edgetpu-compiler "
                   "(apt repository https://packages.cloud.google.com/apt coral-edgetpu-stable; "
                   "see https://coral.ai/docs/edgetpu/compiler/)")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Calibration:
    """Representative inputs for full-int8 conversion and a line saying where they come from."""

    batches: Callable[[], Iterator[np.ndarray]]
    count: int
    source: str


def check_writable(path: str | os.PathLike, directory: bool = False) -> Path:
    """Fail before the long work, not after it, when an output cannot be written."""
    path = Path(path)
    folder = path if directory else path.parent
    if not directory and path.is_dir():
        raise UserError(f"cannot write '{path}': it is a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".{path.name}.probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write '{path}': {exc.strerror or exc}") from None
    return path


def calibration_images(
    spec: ModelSpec, data_dir: str | os.PathLike | None = None, count: int = 2000,
    progress: Progress | None = None, seed: int = 0,
) -> Calibration:
    """Normalised `(1, R, R, 3)` batches from `data_dir`'s images, else the built-in offline digits.

    Images from a directory are shuffled with `seed` first, so a class-sorted tree still gives a mix.
    """
    size, mean, std = spec.resolution, spec.mean, spec.std
    step = max(1, count // 10)

    def report(i: int, n: int) -> None:
        if progress and (i % step == 0 or i == n):
            progress(f"  calibration {i}/{n}")

    if data_dir is not None:
        paths = list_images(data_dir)
        order = np.random.default_rng(seed).permutation(len(paths))[:count]
        chosen = [paths[i] for i in order]

        def from_files():
            for i, path in enumerate(chosen, 1):
                yield normalize(preprocess(load_image(path), size), mean, std)[None]
                report(i, len(chosen))

        source = (f"{len(chosen)} images from '{data_dir}' (centre crop, bilinear resize to {size}, "
                  f"(x - {mean[0]:g}) / {std[0]:g})")
        return Calibration(from_files, len(chosen), source)

    images, _ = load_offline(size, "train")
    images = images[:count]

    def from_offline():
        for i, image in enumerate(images, 1):
            yield normalize(image, mean, std)[None]
            report(i, len(images))

    source = (f"{len(images)} images of the built-in offline digits (no --data-dir), resized to {size}, "
              f"(x - {mean[0]:g}) / {std[0]:g}")
    return Calibration(from_offline, len(images), source)


def probabilities_model(model, batch_size: int | None = None):
    """`model` (logits) followed by a softmax, on an input of a fixed batch size if given.

    The int8 converter needs batch 1 to fold shapes statically; calling the trained model on a new
    batch-1 input shares its weights, so nothing is rebuilt or copied.
    """
    import keras

    inputs = keras.Input(model.input_shape[1:], batch_size=batch_size, name="input")
    outputs = keras.layers.Softmax(name="probabilities")(model(inputs, training=False))
    return keras.Model(inputs, outputs, name=model.name)


def to_tflite(model, quantize: bool, calibration: Calibration | None = None) -> bytes:
    """The `.tflite` bytes of `model` + softmax: full-int8 (uint8 in/out) when `quantize`, else float."""
    from search_space.tflite import convert

    if quantize and calibration is None:
        raise ValueError("full-int8 conversion needs calibration images")
    return convert(probabilities_model(model, batch_size=1), quantize=quantize,
                   representative=calibration.batches if quantize else None)


def save_saved_model(model, directory: str | os.PathLike) -> Path:
    """A SavedModel serving probabilities: `serving_default(input=images) -> {"output": probs}`."""
    import keras
    import tensorflow as tf

    directory = Path(directory)
    probs = probabilities_model(model)
    archive = keras.export.ExportArchive()
    archive.track(probs)

    @tf.function(input_signature=[tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="input")])
    def serve(input):  # noqa: A002 (the reference's signature names it "input")
        return {"output": probs(input, training=False)}

    archive.add_endpoint("serving_default", serve)
    try:  # under a temporary name: a failed or killed export leaves no partial SavedModel
        with atomic_path(directory, directory=True) as tmp:
            archive.write_out(str(tmp), verbose=False)
    except (OSError, tf.errors.OpError) as exc:
        raise UserError(f"cannot write SavedModel '{directory}': {getattr(exc, 'message', exc)}") from None
    return directory


def find_edgetpu_compiler() -> str:
    compiler = shutil.which(EDGETPU_COMPILER)
    if compiler is None:
        raise UserError(f"{EDGETPU_COMPILER} is not installed (not on PATH): {EDGETPU_INSTALL}")
    return compiler


def compile_edgetpu(tflite_path: str | os.PathLike) -> tuple[Path, str]:
    """Run `edgetpu_compiler` on a full-int8 file; returns the `_edgetpu.tflite` path and its report."""
    compiler = find_edgetpu_compiler()
    tflite_path = Path(tflite_path)
    out_dir = tflite_path.parent
    try:
        done = subprocess.run([compiler, "-s", "-o", str(out_dir), str(tflite_path)],
                              capture_output=True, text=True, check=False)
    except OSError as exc:
        raise UserError(f"cannot run {compiler}: {exc.strerror or exc}") from None
    report = (done.stdout + done.stderr).strip()
    compiled = out_dir / f"{tflite_path.stem}_edgetpu.tflite"
    if done.returncode != 0 or not compiled.is_file():
        last = report.splitlines()[-1] if report else f"exit status {done.returncode}"
        raise UserError(f"{EDGETPU_COMPILER} failed on '{tflite_path}': {last}")
    return compiled, report
