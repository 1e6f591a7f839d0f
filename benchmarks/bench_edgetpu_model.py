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
    if kind == "keras":
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
