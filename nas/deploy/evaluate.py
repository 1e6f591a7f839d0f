"""Classifying with a built model or a `.tflite` file: top-5 of one image, accuracy over a data set.

Mirrors the reference's `eval_ckpt_main.py`: probabilities are the softmax of the logits (a `.tflite`
file exported here already ends in one), the top 5 are printed as `  -> top_j (p%): label`, and with
`include_background_label` the 1001 outputs are shifted down by one to index a 1000-entry labels map
(output 0, the background class, becomes -1 and prints as "background"; the reference would crash).
Data-set evaluation prints the running top-1 / top-5 every 100 images in the reference's format.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from nas.common.errors import UserError

from nas.data.images import is_image_file, normalize
from nas.deploy.preprocessing import InputRecord, list_images, load_image

BACKGROUND = "background"
TOP_K = 5


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Classifier:
    """Normalised float images `[n, R, R, 3]` -> class probabilities `[n, classes]`."""

    predict: Callable[[np.ndarray], np.ndarray]
    num_outputs: int
    record: InputRecord  # how an image becomes this model's input

    @property
    def resolution(self) -> int:
        return self.record.resolution

    def prepare(self, image: np.ndarray, crop: bool = True) -> np.ndarray:
        """uint8 RGB -> model input with the model's recorded preprocessing (or, `crop=False`, only
        normalisation of an image already at the model's resolution, as the offline digits are)."""
        if crop:
            return self.record.prepare(image)
        return normalize(image, self.record.mean, self.record.std)


def keras_classifier(model, record: InputRecord, batch_size: int = 32) -> Classifier:
    def predict(images: np.ndarray) -> np.ndarray:
        out = [np.asarray(model(images[i:i + batch_size], training=False))
               for i in range(0, len(images), batch_size)]
        return softmax(np.concatenate(out).astype(np.float64))

    return Classifier(predict, int(model.output_shape[-1]), record)


def _outputs_probabilities(interp, ops: list[str]) -> bool:
    """Does the file end in a softmax? A full-int8 file ends SOFTMAX, QUANTIZE (look past the
    (de)quantisation); in a compiled Edge TPU file the softmax can sit inside the custom op, and
    its output keeps the softmax's quantisation (uint8, scale 1/256, zero point 0)."""
    ops = [op for op in ops if op not in ("QUANTIZE", "DEQUANTIZE")]
    if ops and ops[-1] == "SOFTMAX":
        return True
    out = interp.get_output_details()[0]
    scale, zero = out["quantization"]
    return out["dtype"] == np.uint8 and zero == 0 and abs(scale - 1 / 256) < 1e-9


def tflite_classifier(path: str | os.PathLike, mean=None, std=None, record: InputRecord | None = None,
                      delegate=None) -> Classifier:
    """A float or full-int8 `.tflite` file (through `delegate`, e.g. the Edge TPU's, when given);
    outputs are softmaxed unless the file ends in one. `record` prepares its inputs; without one, the
    reference's preprocessing at the file's resolution with `mean` / `std`."""
    from search_space.tflite import load_interpreter, op_names, run

    interp = load_interpreter(path, num_threads=os.cpu_count() or 1, delegates=[delegate] if delegate else None)
    # Without a delegate, list the file's own ops (the default XNNPACK delegate would hide them).
    ops = [op["op_name"] for op in interp._get_ops_details()] if delegate else op_names(path)
    probabilities = _outputs_probabilities(interp, ops)
    size = int(interp.get_input_details()[0]["shape"][1])
    if record is None:
        record = InputRecord("reference", size, tuple(mean), tuple(std))
    elif record.resolution != size:
        raise UserError(f"the preprocessing record says {record.resolution} px but '{path}' takes {size} px: "
                        "the record belongs to another model")

    def predict(images: np.ndarray) -> np.ndarray:
        out = run(interp, images).astype(np.float64)
        return out if probabilities else softmax(out)

    return Classifier(predict, int(interp.get_output_details()[0]["shape"][-1]), record)


def read_labels_map(path: str | os.PathLike) -> list[str]:
    """Labels by class index: the reference's JSON map (`{"0": "tench, ...", ...}`), a JSON list,
    or plain text with one label per line. A `.json` file must parse as JSON."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"labels map '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read labels map '{path}': {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        if path.suffix.lower() == ".json":  # a .json map must be JSON; a typo is not a list of labels
            where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            raise UserError(f"labels map '{path}' is not valid JSON{where}; fix it, or give a .txt file "
                            f"with one label per line") from None
        data = None
    if isinstance(data, dict):
        try:
            by_index = {int(k): str(v) for k, v in data.items()}
        except ValueError:
            raise UserError(f"labels map '{path}': JSON keys must be class indices (\"0\", \"1\", ...)") from None
        if sorted(by_index) != list(range(len(by_index))):
            raise UserError(f"labels map '{path}': JSON keys must be the indices 0..{len(by_index) - 1}, "
                            "each once")
        labels = [by_index[i] for i in range(len(by_index))]
    elif isinstance(data, list):
        labels = [str(v) for v in data]
    else:
        labels = text.splitlines()
        while labels and not labels[-1].strip():
            labels.pop()
    if not labels:
        raise UserError(f"labels map '{path}' is empty")
    return labels


def check_labels(labels: Sequence[str], num_outputs: int, offset: int, path) -> None:
    """A labels map must name every class the model can predict (after the background shift)."""
    if len(labels) == num_outputs - offset:
        return
    if offset:
        hint = f"it needs {num_outputs - 1} with --include-background-label (or {num_outputs} without)"
    else:
        hint = f"it needs {num_outputs}" + (
            f" (or {num_outputs - 1} with --include-background-label, if output 0 is the background)"
            if len(labels) == num_outputs - 1 else "")
    raise UserError(f"labels map '{path}' has {len(labels)} labels but the model has {num_outputs} outputs: {hint}")


def top_k(probs: np.ndarray, k: int = TOP_K, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(class indices minus `offset`, probabilities) of the `k` most probable, best first.

    As the reference, `argsort(...)[::-1]`: among equal probabilities the higher index comes first.
    """
    order = np.argsort(probs, kind="stable")[::-1][:k]
    return order - offset, probs[order]


def label_of(index: int, labels: Sequence[str]) -> str:
    return BACKGROUND if index < 0 else labels[index]


def format_top5(name: str, probs: np.ndarray, labels: Sequence[str], offset: int = 0) -> list[str]:
    """The reference's printout for one image."""
    indices, values = top_k(probs, TOP_K, offset)
    lines = [f"predicted class for image {name}:"]
    for j, (index, p) in enumerate(zip(indices, values)):
        lines.append(f"  -> top_{j} ({p * 100:4.2f}%): {label_of(int(index), labels)}")
    return lines


@dataclass(frozen=True)
class LabelledImages:
    paths: list[Path]
    targets: np.ndarray  # class index per image (labels-map indices: no background)
    classes: int
    how: str  # how folder names became class indices, for the user


def labelled_directory(directory: str | os.PathLike, labels: Sequence[str] | None = None) -> LabelledImages:
    """`directory/<class>/**/*.jpg|png`. A class folder named by a number is that class index; other
    names are looked up in `labels` when given, else the sorted folder names count 0, 1, 2, ..."""
    directory = Path(directory)
    list_images(directory)  # a missing, non-directory or image-less path fails here, clearly
    folders = sorted(p for p in directory.iterdir() if p.is_dir())
    folders = [f for f in folders if any(is_image_file(q) for q in f.rglob("*"))]
    if not folders:
        raise UserError(f"'{directory}' has no class folders: expected {directory}/<class>/<image>.jpg")
    names = [f.name for f in folders]
    if all(n.isdigit() for n in names):
        index, how = {n: int(n) for n in names}, "folder names are class indices"
    elif labels is not None:
        lookup = {label: i for i, label in enumerate(labels)}
        unknown = [n for n in names if not n.isdigit() and n not in lookup]
        if unknown:
            raise UserError(f"class folder(s) {', '.join(repr(n) for n in unknown[:3])} in '{directory}' are "
                            "neither class indices nor labels of the labels map")
        index, how = {n: int(n) if n.isdigit() else lookup[n] for n in names}, "folder names looked up in the labels map"
    else:
        index, how = {n: i for i, n in enumerate(names)}, "sorted folder names are classes 0, 1, 2, ..."
    paths, targets = [], []
    for folder in folders:
        for path in list_images(folder):
            paths.append(path)
            targets.append(index[folder.name])
    return LabelledImages(paths, np.asarray(targets, np.int64), len(folders), how)


@dataclass(frozen=True)
class Accuracy:
    top1: float  # fractions in [0, 1]
    top5: float
    count: int


def evaluate(
    classifier: Classifier,
    load: Callable[[int], np.ndarray],
    targets: Sequence[int],
    offset: int = 0,
    batch_size: int = 32,
    log: Callable[[str], None] | None = print,
    every: int = 100,
) -> Accuracy:
    """Top-1 / top-5 of `classifier` over `load(i)` (model inputs) for every target, with the
    reference's running printout (`Step i: ...` every `every` images, then `Final: ...`)."""
    targets = np.asarray(targets)
    n = len(targets)
    if n == 0:
        raise ValueError("nothing to evaluate")
    top1 = top5 = 0
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        probs = classifier.predict(np.stack([load(i) for i in range(start, stop)]))
        for i, row in zip(range(start, stop), probs):
            predicted, _ = top_k(row, TOP_K, offset)
            top1 += int(targets[i] == predicted[0])
            top5 += int(targets[i] in predicted)
            if log and i % every == 0:
                log(f"Step {i}: top1_acc = {100 * top1 / (i + 1):4.2f}%  top5_acc = {100 * top5 / (i + 1):4.2f}%")
    if log:
        log(f"Final: top1_acc = {100 * top1 / n:4.2f}%  top5_acc = {100 * top5 / n:4.2f}%")
    return Accuracy(top1 / n, top5 / n, n)


def image_loader(classifier: Classifier, paths: Sequence[Path]) -> Callable[[int], np.ndarray]:
    return lambda i: classifier.prepare(load_image(paths[i]))
