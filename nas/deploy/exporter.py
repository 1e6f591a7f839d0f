"""A trained model out to deployment formats, as the reference exporter (`export_model.py`) does.

- The exported graph ends in a softmax: it outputs class probabilities, not logits.
- TFLite float: a plain conversion. Full-int8: converter optimisations on, builtin int8 ops only,
  uint8 input and output, ranges calibrated on representative images prepared as the model's
  preprocessing record says (`nas.deploy.preprocessing.InputRecord`: a trained run's own, the
  reference's padded centre crop otherwise), the record and the class names written beside the file.
- SavedModel: signature `serving_default`, input `input` (normalised float images), output
  `output` (probabilities); unlike the reference's (batch 1) it takes any batch size.
- Edge TPU: `edgetpu_compiler` on the full-int8 file writes `<name>_edgetpu.tflite` beside it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from search_space import ModelSpec

from nas.common.errors import UserError
from nas.common.files import atomic_path
from nas.data.images import normalize
from nas.data.offline import load_offline
from nas.deploy.preprocessing import LABELS_FILE, RECORD_FILE, InputRecord, list_images, load_image, write_labels

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
    progress: Progress | None = None, seed: int = 0, record: InputRecord | None = None,
) -> Calibration:
    """Normalised `(1, R, R, 3)` batches from `data_dir`'s images, prepared with `record` (default:
    the reference's preprocessing for `spec`), else the built-in offline digits.

    Images from a directory are shuffled with `seed` first, so a class-sorted tree still gives a mix.
    """
    record = record or InputRecord.of(spec)
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
                yield record.prepare(load_image(path))[None]
                report(i, len(chosen))

        source = f"{len(chosen)} images from '{data_dir}' ({record.describe()})"
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


def write_sidecars(tflite_path: str | os.PathLike, record: InputRecord, labels) -> list[Path]:
    """`<stem>.preprocessing.yaml` (and `<stem>.labels.txt`, when the class names are known) beside
    the `.tflite`: what `nas eval --tflite` and an application need to feed it and name its outputs.
    No maintained TFLite metadata writer works with TF 2.21 (tflite-support's last release needs
    protobuf < 4), so they are files beside it, not metadata inside it."""
    path = Path(tflite_path)
    record_path, labels_path = (path.parent / f"{path.stem}.{name}" for name in (RECORD_FILE, LABELS_FILE))
    written = [record.write(record_path)]
    if labels is not None:
        written.append(write_labels(labels_path, labels))
    elif labels_path.is_file():
        labels_path.unlink()  # a previous export's names would mislabel this model's outputs
    return written


def probabilities_model(model, batch_size: int | None = None):
    """`model` (logits) followed by a softmax, on an input of a fixed batch size if given.

    The int8 converter needs batch 1 to fold shapes statically; calling the trained model on a new
    batch-1 input shares its weights, so nothing is rebuilt or copied.
    """
    import keras

    inputs = keras.Input(model.input_shape[1:], batch_size=batch_size, name="input")
    outputs = keras.layers.Softmax(name="probabilities")(model(inputs, training=False))
    return keras.Model(inputs, outputs, name=model.name)


@contextlib.contextmanager
def converter_output(verbose: bool = False):
    """TensorFlow's converter writes its logs and warnings to the process's stderr, from C++ and
    from Python ("Statistics for quantized inputs were expected...", "fully_quantize: 0, ..."): held
    in a temporary file unless `verbose`, and shown only if the conversion fails."""
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        failed = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))


def to_tflite(model, quantize: bool, calibration: Calibration | None = None, verbose: bool = False) -> bytes:
    """The `.tflite` bytes of `model` + softmax: full-int8 (uint8 in/out) when `quantize`, else float.
    The converter's own output is kept off the terminal unless `verbose`."""
    from search_space.tflite import convert

    if quantize and calibration is None:
        raise ValueError("full-int8 conversion needs calibration images")
    with converter_output(verbose):
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
