"""The default suite's reduced pipeline (`tests/test_train_pipeline.py::pipeline`: search -> scale ->
train 2 epochs -> export float and int8 -> eval, on a generated image folder) at several seeds: the
distribution its accuracy bound and agreement tolerances are chosen from.

Writes benchmarks/results/bench_pipeline_seeds.json (one row per seed: trained / checkpoint / float /
int8 / reference-crop held-out top-1, %) and .md. Run: PYTHONPATH=. .venv/bin/python
benchmarks/bench_pipeline_seeds.py [--seeds 0 1 2 3 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import header, markdown_table  # noqa: E402

KEYS = ("trained", "checkpoint", "float", "int8", "reference_crop")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    from tests.test_train_pipeline import pipeline

    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            figures = pipeline(Path(tmp), seed)
        rows.append({k: figures[k] for k in ("seed", "resolution", *KEYS)})
        print(rows[-1], flush=True)
    out = ROOT / "benchmarks" / "results"
    (out / "bench_pipeline_seeds.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    table = markdown_table(["seed", "resolution", *KEYS], [[r["seed"], r["resolution"], *(f"{r[k]:.2f}" for k in KEYS)]
                                                           for r in rows])
    text = ("# The reduced pipeline at several seeds (held-out top-1, %)\n\n" + header() + "\n\n"
            + "\n".join(table) + "\n\nRun: `PYTHONPATH=. .venv/bin/python benchmarks/bench_pipeline_seeds.py`\n")
    (out / "bench_pipeline_seeds.md").write_text(text)


if __name__ == "__main__":
    main()
