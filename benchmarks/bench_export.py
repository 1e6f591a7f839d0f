"""Export figures for EfficientNet-EdgeTPU S / M / L: TFLite file sizes against the parameter count
(full-int8 should be about one byte per parameter, float four) and how long conversion takes here.

Writes benchmarks/results/bench_export.md. Run: .venv/bin/python benchmarks/bench_export.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, write_results  # noqa: E402
from nas.deploy import exporter as export  # noqa: E402
from nas.deploy.checkpoints import load_model  # noqa: E402
from search_space import REGISTRY, model_cost  # noqa: E402
from search_space.builder import trainable_params  # noqa: E402
from search_space.tflite import op_names  # noqa: E402

MODELS = ["efficientnet-edgetpu-S", "efficientnet-edgetpu-M", "efficientnet-edgetpu-L"]
CALIBRATION = 100


def row(name: str) -> list:
    spec = REGISTRY[name]
    model = load_model(spec=spec).model
    params = trainable_params(model)
    sizes, seconds, ops = {}, {}, set()
    for quantize in (True, False):
        start = time.perf_counter()
        calibration = export.calibration_images(spec, None, CALIBRATION) if quantize else None
        content = export.to_tflite(model, quantize, calibration)
        seconds[quantize] = time.perf_counter() - start
        sizes[quantize] = len(content)
        if quantize:
            ops = sorted(set(op_names(content)))
    print(name, sizes, seconds, flush=True)
    return [name, spec.resolution, f"{params:,d}", f"{model_cost(spec).params:,d}",
            f"{sizes[True]:,d}", f"{sizes[True] / params:.3f}", f"{sizes[False]:,d}",
            f"{sizes[False] / params:.3f}", f"{seconds[True]:.0f} s", f"{seconds[False]:.0f} s", ", ".join(ops)]


def main() -> None:
    header = ["model", "resolution", "trainable params", "params (counting)", "int8 bytes", "int8 bytes/param",
              "float bytes", "float bytes/param", "int8 conversion", "float conversion", "int8 file's ops"]
    rows = [row(name) for name in MODELS]
    table = markdown_table(header, rows)
    body = "\n".join([
        "Freshly initialised weights (sizes do not depend on the values), 1001 classes, exported as `nas export` "
        f"does (softmax head). Full-int8: uint8 input/output, builtin int8 ops only, {CALIBRATION} calibration "
        "images (the built-in offline digits); conversion time includes calibration. Batch-norm scales and "
        "offsets fold into the convolutions, so a float file holds slightly under 4 bytes per trainable "
        "parameter; int8 files add int32 biases and per-channel scales.",
        "",
        *table,
        "",
        "Run: `.venv/bin/python benchmarks/bench_export.py`",
    ])
    print(write_results("bench_export", "TFLite export of EfficientNet-EdgeTPU S / M / L", body))


if __name__ == "__main__":
    main()
