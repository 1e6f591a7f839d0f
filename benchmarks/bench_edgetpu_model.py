"""Fit the Edge TPU cost model to Coral's published latencies and report leave-one-out errors.

Rebuilds every published row it can (keras.applications MobileNet, MobileNetV2, ResNet50, ResNet50V2,
VGG16 with weights=None, and the registry's EfficientNet-EdgeTPU S and L), converts each to a
full-int8 .tflite (cached under benchmarks/out/edgetpu_rows/, conversion is the slow part), reads
the ops of each file with the cost model's TFLite reader, fits the constants with least squares on
log-latency, and writes:

- latency/data/edgetpu_constants.json  (with --write-constants: the constants `sim` ships with)
- benchmarks/results/bench_edgetpu_model.md  (fit, leave-one-out error per row, S/M/L vs ResNet-50)

Usage: .venv/bin/python benchmarks/bench_edgetpu_model.py [--prepare-only] [--write-constants]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out" / "edgetpu_rows"
PUBLISHED = ROOT.parent / "shared" / "reference" / "edgetpu_latency_published.csv"
RESULTS = ROOT / "benchmarks" / "results" / "bench_edgetpu_model.md"

# published row name -> (builder kind, name); the rows this project can rebuild offline.
REBUILDABLE = {
    "mobilenet_v1": ("keras", "MobileNet"),
    "mobilenet_v2": ("keras", "MobileNetV2"),
    "resnet50_v1": ("keras", "ResNet50"),
    "resnet50_v2": ("keras", "ResNet50V2"),
    "vgg16": ("keras", "VGG16"),
    "efficientnet-edgetpu-S": ("registry", "efficientnet-edgetpu-S"),
    "efficientnet-edgetpu-L": ("registry", "efficientnet-edgetpu-L"),
    **{name: ("zoo", name) for name in ("inception_v1", "inception_v4", "squeezenet", "mobilenet_v1_ssd",
                                         "mobilenet_v2_ssd", "unet_mobilenet_v2", "deeplab_v3")},
}


def published_rows() -> list[dict]:
    with open(PUBLISHED) as f:
        lines = [line for line in f if not line.startswith("#")]
    return [row for row in csv.DictReader(lines) if row["model"] in REBUILDABLE]


def tflite_path(model: str, size: int) -> Path:
    return OUT / f"{model}_{size}_int8.tflite"


def build_int8(model: str, size: int) -> Path:
    """Convert (once) and cache the full-int8 file of one published row."""
    path = tflite_path(model, size)
    if path.exists():
        return path
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from search_space.registry import get_spec
    from search_space.tflite import convert, random_representative

    kind, name = REBUILDABLE[model]
    if kind == "zoo":
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from edgetpu_zoo import BUILDERS

        net = BUILDERS[name](size)
    elif kind == "keras":
        inputs = keras.Input((size, size, 3), batch_size=1)
        net = getattr(keras.applications, name)(weights=None, input_tensor=inputs)
    else:
        import dataclasses

        from search_space.builder import build_model

        net = build_model(dataclasses.replace(get_spec(name), resolution=size), seed=0, batch_size=1)
    start = time.perf_counter()
    content = convert(net, quantize=True, representative=random_representative(size, count=2))
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)
    print(f"converted {model} at {size}: {len(content) / 1e6:.1f} MB in {time.perf_counter() - start:.0f} s",
          flush=True)
    keras.backend.clear_session()
    return path


def report(rows: list[dict], paths: dict[str, Path], write_constants: bool) -> int:
    import json

    from latency.edgetpu_fit import fit_constants, leave_one_out_ms
    from latency.edgetpu_model import CONSTANTS_PATH, EdgeTpuCostModel, predict_work_ms, spec_work
    from latency.tflite_ops import tflite_work
    from search_space.registry import get_spec

    works = [tflite_work(paths[row["model"]]) for row in rows]
    measured = [float(row["usb_ms"]) for row in rows]
    date = datetime.date.today().isoformat()
    constants = fit_constants(works, measured, note=(
        f"fitted {date} by benchmarks/bench_edgetpu_model.py to Coral USB Accelerator latencies of "
        + ", ".join(row["model"] for row in rows)))
    loo = leave_one_out_ms(works, measured)
    if write_constants:
        CONSTANTS_PATH.write_text(json.dumps(constants.to_dict(), indent=2) + "\n")
        print(f"wrote {CONSTANTS_PATH.relative_to(ROOT)}")
    model = EdgeTpuCostModel(constants)
    lines = [
        "# Edge TPU cost model: fit to Coral's published latencies",
        "",
        f"Date: {date}. Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()} "
        "(no Edge TPU device here: the targets are Coral's published USB Accelerator figures from "
        "`shared/reference/edgetpu_latency_published.csv`). Produced by `benchmarks/bench_edgetpu_model.py`.",
        "",
        "Each row is rebuilt offline (keras.applications with `weights=None`, or the registry spec), converted "
        "to full-int8 TFLite and read op by op. *Fit* uses constants fitted on all rows; *leave-one-out* "
        "predicts each row from constants fitted without it.",
        "",
        "| model | input | MACs (G) | params (MB) | ops | published ms | fit ms | leave-one-out ms | LOO error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row, work, ms, held_out in zip(rows, works, measured, loo):
        lines.append(
            f"| {row['model']} | {row['input_size']} | {work.total_macs / 1e9:.2f} | {work.param_bytes / 1e6:.1f} "
            f"| {work.ops} | {ms:g} | {predict_work_ms(work, constants):.1f} | {held_out:.1f} "
            f"| {100 * (held_out / ms - 1):+.0f}% |")
    worst = max(abs(h / m - 1) for h, m in zip(loo, measured))
    lines += ["", f"Worst leave-one-out error: {100 * worst:.0f}% (goal: within 25% on every row).", "",
              "Fitted constants (shipped in `latency/data/edgetpu_constants.json`):", "",
              "| constant | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in constants.to_dict().items() if k != "note"]
    specs = {n: get_spec(n) for n in ("efficientnet-edgetpu-S", "efficientnet-edgetpu-M", "efficientnet-edgetpu-L")}
    predicted = {n: model.predict_ms(s) for n, s in specs.items()}
    resnet = predict_work_ms(tflite_work(paths["resnet50_v1"]), constants)
    lines += ["", "Predictions from the registry specs (`sim` source, `ModelSpec.layers()` path):", "",
              "| model | predicted ms | published ms |", "|---|---|---|"]
    published = {row["model"]: row["usb_ms"] for row in rows}
    lines += [f"| {n} | {ms:.2f} | {published.get(n, '-')} |" for n, ms in predicted.items()]
    s_ms = predicted["efficientnet-edgetpu-S"]
    lines += ["", f"Order S < M < L: {'yes' if list(predicted.values()) == sorted(predicted.values()) else 'NO'}. "
              f"ResNet-50 (299) / EdgeTPU-S: {resnet / s_ms:.1f}x predicted, "
              f"{float(published['resnet50_v1']) / float(published['efficientnet-edgetpu-S']):.1f}x published.",
              "", "Where the time goes (ms, fitted constants):", ""]
    names = [row["model"] for row in rows]
    parts = [model.breakdown_ms(w) for w in works]
    lines += ["| term | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {term} | " + " | ".join(f"{p[term]:.2f}" for p in parts) + " |" for term in parts[0]]
    lines += ["", "Notes: the published figures are from Coral's benchmark page (USB 3.0 host); MobileNet v2's "
              "published row is the official Coral file, ours is keras.applications' (same architecture, "
              "one MEAN op instead of AVERAGE_POOL). Per-op efficiencies are shared by all models, so a model "
              "that uses the array unusually well or badly (channel counts far from multiples of the array "
              "width) is where the model errs most.", ""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare-only", action="store_true", help="only convert and cache the .tflite files")
    parser.add_argument("--write-constants", action="store_true",
                        help="write the fitted constants to latency/data/edgetpu_constants.json")
    args = parser.parse_args(argv)
    rows = published_rows()
    paths = {row["model"]: build_int8(row["model"], int(row["input_size"])) for row in rows}
    if args.prepare_only:
        return 0
    return report(rows, paths, args.write_constants)


if __name__ == "__main__":
    sys.exit(main())
