"""Quantisation fidelity: train a small EdgeTPU-shaped model on the built-in offline digits, export
it to float and full-int8 TFLite exactly as `nas export` does, evaluate both with the LiteRT
interpreter on the held-out split, and report top-1 of each and how often their top-1 agree.

The reference reports 0.1-0.4 point ImageNet top-1 drops from post-training full-int8 quantisation
(S 77.23 -> 77.0, M 78.69 -> 78.6, L 80.62 -> 80.2); the bar here is int8 within 1 point of float
and at least 97% agreement.

Writes benchmarks/results/bench_quantization.md. Run: .venv/bin/python benchmarks/bench_quantization.py
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from common import markdown_table, write_results  # noqa: E402
from nas.deploy import evaluate  # noqa: E402
from nas.deploy import exporter as export  # noqa: E402
from nas.common.files import write_bytes  # noqa: E402
from nas.deploy.checkpoints import load_model, save_checkpoint  # noqa: E402
from nas.data.images import normalize  # noqa: E402
from nas.data.offline import OFFLINE_CLASSES, load_offline  # noqa: E402
from nas.deploy.preprocessing import InputRecord  # noqa: E402
from search_space import REGISTRY  # noqa: E402
from search_space.builder import build_model, trainable_params  # noqa: E402

EPOCHS = 30
CALIBRATION = 500
# (label, width, resolution): EfficientNet-EdgeTPU-S's blocks, narrowed and at digit-sized inputs.
CONFIGS = [("S blocks, width 0.5", 0.5, 32), ("S blocks, width 0.5", 0.5, 64), ("S blocks, width 1.0", 1.0, 48)]


def small_spec(width: float, resolution: int):
    return dataclasses.replace(
        REGISTRY["efficientnet-edgetpu-S"], name=f"edgetpu-s-w{width:g}-r{resolution}", width=width,
        resolution=resolution, num_classes=OFFLINE_CLASSES, include_background=False,
    )


def train(spec, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    x, y = load_offline(spec.resolution, "train")
    model = build_model(spec, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    model.fit(normalize(x, spec.mean, spec.std), y, batch_size=64, epochs=EPOCHS, verbose=0, shuffle=True)
    return model


def top1(classifier, images, labels) -> tuple[float, np.ndarray]:
    predictions = classifier.predict(images).argmax(axis=1)
    return float((predictions == labels).mean()), predictions


def run(label: str, width: float, resolution: int, workdir: Path) -> list:
    spec = small_spec(width, resolution)
    start = time.perf_counter()
    trained = train(spec)
    train_s = time.perf_counter() - start
    # Through a project checkpoint, as a search's trained model would come.
    model = load_model(save_checkpoint(trained, spec, workdir / spec.name)).model
    images, labels = load_offline(resolution, "val")
    x = normalize(images, spec.mean, spec.std)

    keras_acc, _ = top1(evaluate.keras_classifier(model, InputRecord.of(spec)), x, labels)
    files = {}
    for quantize in (False, True):
        calibration = export.calibration_images(spec, None, CALIBRATION) if quantize else None
        path = write_bytes(workdir / f"{spec.name}_{'int8' if quantize else 'float'}.tflite",
                                  export.to_tflite(model, quantize, calibration))
        files[quantize] = path
    float_acc, float_pred = top1(evaluate.tflite_classifier(files[False], spec.mean, spec.std), x, labels)
    int8_acc, int8_pred = top1(evaluate.tflite_classifier(files[True], spec.mean, spec.std), x, labels)
    agreement = float((float_pred == int8_pred).mean())
    print(f"{label} @ {resolution}: keras {keras_acc:.4f} float {float_acc:.4f} int8 {int8_acc:.4f} "
          f"agreement {agreement:.4f}", flush=True)
    return [label, resolution, f"{trainable_params(model):,d}", f"{train_s:.0f} s", f"{100 * keras_acc:.2f}",
            f"{100 * float_acc:.2f}", f"{100 * int8_acc:.2f}", f"{100 * (int8_acc - float_acc):+.2f}",
            f"{100 * agreement:.2f}", f"{files[False].stat().st_size:,d}", f"{files[True].stat().st_size:,d}"]


def main() -> None:
    header = ["model", "resolution", "params", "training", "Keras top-1 %", "float TFLite top-1 %",
              "int8 TFLite top-1 %", "int8 - float (points)", "top-1 agreement %", "float bytes", "int8 bytes"]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(label, width, resolution, Path(tmp)) for label, width, resolution in CONFIGS]
    n_val = len(load_offline(32, "val")[1])
    table = markdown_table(header, rows)
    body = "\n".join([
        f"EfficientNet-EdgeTPU-S's blocks (10 classes, no background) trained from scratch for {EPOCHS} epochs "
        f"(Adam 2e-3, batch 64, no augmentation) on the built-in offline digits' training split, saved as a "
        "project checkpoint, loaded back and exported as `nas export` does (softmax head; full-int8: uint8 in/out, "
        f"builtin int8 ops, {CALIBRATION} calibration images from the training split). Top-1 on the {n_val}-image "
        "held-out split with the LiteRT interpreter; agreement = share of images where float and int8 files "
        "predict the same class.",
        "",
        *table,
        "",
        "Reference (ImageNet, Edge TPU int8 vs float): S 77.23 -> 77.0, M 78.69 -> 78.6, L 80.62 -> 80.2.",
        "Run: `.venv/bin/python benchmarks/bench_quantization.py`",
    ])
    print(write_results("bench_quantization", "Quantisation fidelity: float vs full-int8 TFLite", body))


if __name__ == "__main__":
    main()
