"""Speed of the foundation: analytic counting, `layers()`, Keras builds.

Run: .venv/bin/python benchmarks/bench_foundation.py  ->  benchmarks/results/bench_foundation.md
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

from search_space import REGISTRY, model_cost  # noqa: E402


def best_of(fn, repeats: int, number: int) -> float:
    """Median over `repeats` of the mean seconds per call over `number` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def main() -> None:
    specs = list(REGISTRY.values())
    s = REGISTRY["efficientnet-edgetpu-S"]
    registry_ms = best_of(lambda: [model_cost(spec) for spec in specs], 7, 20) * 1e3
    layers_us = best_of(s.layers, 7, 200) * 1e6
    cost_us = best_of(lambda: model_cost(s), 7, 200) * 1e6
    tf_free = "tensorflow" not in sys.modules

    import keras

    from search_space.builder import build_model

    build_model(s)  # the first build pays TensorFlow's one-off start-up
    keras.backend.clear_session()
    builds = []
    for size in "SML":
        name = f"efficientnet-edgetpu-{size}"
        times = []
        for _ in range(3):
            start = time.perf_counter()
            build_model(REGISTRY[name])
            times.append(time.perf_counter() - start)
            keras.backend.clear_session()
        builds.append(f"| Keras build of {name} | {statistics.median(times) * 1e3:,.0f} ms |")

    body = "\n".join([
        "| what | time |",
        "|---|---|",
        f"| analytic params + MACs of the whole registry ({len(specs)} models) | {registry_ms:.2f} ms |",
        f"| `layers()` of efficientnet-edgetpu-S | {layers_us:.0f} µs |",
        f"| params + MACs of efficientnet-edgetpu-S | {cost_us:.0f} µs |",
        *builds,
        "",
        f"TensorFlow imported before the Keras builds: {'no' if tf_free else 'yes'}. "
        "Times are medians of 7 (3 for builds) repeats.",
    ])
    path = write_results("bench_foundation", "Foundation speed", body)
    print(path.read_text())


if __name__ == "__main__":
    main()
