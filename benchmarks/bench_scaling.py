"""Compound-scaling figures: how fast scaling and the coefficient search run, and what phi scaling gives.

Writes benchmarks/results/bench_scaling.md. Run: .venv/bin/python benchmarks/bench_scaling.py
No TensorFlow: everything here is spec arithmetic (the sim latency model included, when present).
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from pathlib import Path

from search_space import REGISTRY, UserError, count_macs
from scaling import apply_preset, nominal_cost_factor, scale_phi, search_coefficients
from common import markdown_table, write_stamped

RESULTS = Path(__file__).parent / "results" / "bench_scaling.md"
S = REGISTRY["efficientnet-edgetpu-S"]
B0 = REGISTRY["efficientnet-b0"]


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sim():
    try:
        from latency import make_latency_model

        return make_latency_model("sim")
    except UserError:
        return None


def main() -> None:
    sim = _sim()
    lines = ["# Compound scaling", "",
             "Medians of repeated runs; "
             "other jobs shared the machine.", ""]

    speed = [
        ["scale_phi(S, 3) + count_macs", f"{_median_s(lambda: count_macs(scale_phi(S, 3)), 200) * 1e6:.0f} us"],
        ["apply_preset(b0, efficientnet) (8 specs) + count_macs",
         f"{_median_s(lambda: [count_macs(s) for s in apply_preset(B0, 'efficientnet')], 50) * 1e3:.2f} ms"],
    ]
    searches = [("efficientnet-edgetpu-S", S, "MACs", count_macs), ("efficientnet-b0", B0, "MACs", count_macs)]
    if sim is not None:
        searches.append(("efficientnet-edgetpu-S", S, "latency (sim)", sim.predict_ms))
    found = []
    for name, base, unit, cost in searches:
        elapsed = _median_s(lambda: search_coefficients(base, cost), 3)
        result = search_coefficients(base, cost)
        paper = [c for c in result.candidates if (c.alpha, c.beta, c.gamma) == (1.2, 1.1, 1.15)]
        paper_ratio = cost(scale_phi(base, 1)) / cost(base)
        best = result.candidates[0]
        speed.append([f"search_coefficients({name}, {unit}), 11^3 grid", f"{elapsed:.2f} s"])
        found.append([name, unit, f"{len(result.candidates)} / {result.evaluated}", result.costed,
                      f"{best.alpha:g}, {best.beta:g}, {best.gamma:g} ({best.cost_ratio:.3f})",
                      f"{paper_ratio:.3f}{'' if paper else ' (not feasible)'}"])
    lines += ["## Speed", "", *markdown_table(["operation", "time"], speed), ""]
    lines += ["## Coefficient search (target 2x, tolerance 10%, grid 1.0:1.5:0.05, resolution floored to x32)", "",
              *markdown_table(["base", "cost", "feasible / triples", "distinct networks", "closest triple (ratio)",
                       "paper's 1.2, 1.1, 1.15 ratio"], found), ""]

    for name, base in (("efficientnet-edgetpu-S", S), ("efficientnet-b0", B0)):
        rows = []
        base_ms = sim.predict_ms(base) if sim else None
        for phi in range(8):
            spec = scale_phi(base, phi)
            nominal = nominal_cost_factor(1.2, 1.1, 1.15, phi)
            ratio = count_macs(spec) / count_macs(base)
            row = [phi, spec.width, spec.depth, f"{224 * 1.15**phi:.1f}", spec.resolution, spec.dropout,
                   f"{count_macs(spec) / 1e6:,.0f}", f"{ratio:.3f}", f"{nominal:.3f}", f"{ratio / nominal - 1:+.1%}"]
            if sim:
                row.append(f"{sim.predict_ms(spec) / base_ms:.3f}")
            rows.append(row)
        header = ["phi", "width", "depth", "224*1.15^phi", "resolution", "dropout", "MACs (M)", "MACs ratio",
                  "(a*b^2*g^2)^phi", "off by"] + (["sim latency ratio"] if sim else [])
        lines += [f"## Phi scaling of {name} (alpha 1.2, beta 1.1, gamma 1.15)", "", *markdown_table(header, rows), ""]

    published = [[f"B{k}", *_published_row(k)] for k in range(8)]
    lines += ["## Published EfficientNet resolutions vs gamma**phi", "",
              *markdown_table(["model", "published resolution", "224*1.15^k", "ours at phi = k"], published), ""]
    write_stamped(RESULTS, "\n".join(lines))
    print("\n".join(lines))


def _published_row(k: int) -> list:
    published = REGISTRY[f"efficientnet-b{k}"].resolution
    return [published, f"{224 * 1.15**k:.1f}", scale_phi(B0, k).resolution]


if __name__ == "__main__":
    main()
