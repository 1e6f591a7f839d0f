"""Calibrated CPU lookup table vs measured whole-model int8 TFLite latency, in one measurement run.

Everything is measured in ONE measurement run under one machine fingerprint (`latency.fingerprint`),
with the probe model timed around every batch (`latency.profiling.Run`):
1. the table: every layer shape of the space at the resolution (`build_table`);
2. window 1: random architectures of the space (`--calibration` to fit, `--held-out` held out) and
   the registered models the table covers, measured end to end;
3. the calibration (`nas latency calibrate`: a single scale unless more terms earn it), fitted on
   the calibration architectures only;
4. window 2: the held-out and registered models measured again, to check the machine against itself.
The score counts only if at least 95% of the held-out models agree with themselves within +-5%
across the two windows; a run whose probe will not settle stops with "machine too noisy". Either way
the results file says so instead of claiming a score.

Writes benchmarks/results/bench_latency_lut.md (with --smoke: a tiny space at 32x32 and a few models,
written to benchmarks/out/bench_latency_lut_smoke.md, to test this script, never a result).

Usage: .venv/bin/python benchmarks/bench_latency_lut.py --fresh [--calibration 20] [--held-out 60]
       .venv/bin/python benchmarks/bench_latency_lut.py --smoke --fresh
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out"
from benchmarks.common import write_stamped  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench_latency_lut.md"
DEFAULT_CONFIG = ROOT / "experiments" / "edgetpu.yaml"
SMOKE_SPACE = """search_space:
  skeleton:
    name: tiny
    blocks: [r1_k3_s11_e4_i16_o16_c1_noskip, r2_k3_s22_e4_i16_o24]
    stem_filters: 16
    head_filters: 64
    num_classes: 10
    resolution: 32
  choices: {kernel: [3, 5], expand_ratio: [4, 6], filter_multiplier: [1.0], repeats_delta: [0, 1], skip: [true]}
"""
GOAL_WITHIN, GOAL_SPEARMAN, SELF_AGREEMENT, SELF_SHARE = 95.0, 0.97, 0.05, 95.0


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    import yaml

    from latency.calibration import score
    from latency.lookup_table import LookupTable, LookupTableModel
    from latency.profiling import (NoisyMachine, Run, build_table, make_profiler, measure_architectures,
                                   measure_models, split_indices)
    from nas.cli import main as nas
    from search_space.registry import REGISTRY
    from search_space.space import SearchSpace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--calibration", type=int, default=20, help="architectures to fit on (default 20)")
    parser.add_argument("--held-out", type=int, default=60, help="held-out architectures (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--probe-tolerance", type=float, default=4.0, metavar="PCT")
    parser.add_argument("--fresh", action="store_true", help="delete this benchmark's earlier files: a new run")
    parser.add_argument("--smoke", action="store_true", help="tiny space, few models: tests the script only")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    results, config, prefix = RESULTS, Path(args.config), "lut_tflite_cpu"
    if args.smoke:
        results, config, prefix = OUT / "bench_latency_lut_smoke.md", OUT / "smoke_space.yaml", "lut_smoke"
        config.write_text(SMOKE_SPACE)
    space = SearchSpace.from_dict(yaml.safe_load(config.read_text())["search_space"])
    resolution = space.skeleton.resolution
    lut = OUT / f"{prefix}_{resolution}.csv"
    files = {name: lut.with_suffix(f".{name}.csv") for name in ("calibration", "registered", "recheck")}
    if args.fresh:
        for path in (lut, *files.values()):
            path.unlink(missing_ok=True)
    total = args.calibration + args.held_out
    profiler = make_profiler("tflite-cpu", 1, args.warmup, args.repeats)
    start, loads = time.monotonic(), [os.getloadavg()[0]]
    sized = dataclasses.replace(space, skeleton=dataclasses.replace(space.skeleton, resolution=resolution))
    noisy = None
    try:
        table = build_table(space, resolution, profiler, lut, _say, tolerance=args.probe_tolerance / 100)
        loads.append(os.getloadavg()[0])
        run = Run.from_header(table.header, str(lut))
        run.tolerance = args.probe_tolerance / 100
        rows = measure_architectures(space, resolution, total, args.seed, profiler, files["calibration"], run, _say)
        registered = {name: (name, dataclasses.replace(spec, resolution=resolution)) for name, spec in REGISTRY.items()
                      if all(layer.key in table.entries for layer in
                             dataclasses.replace(spec, resolution=resolution).layers())}
        first = measure_models(registered, profiler, files["registered"], run, _say)
        loads.append(os.getloadavg()[0])
        # fit on the calibration architectures only (nothing new is measured: every row is in the file)
        fraction = (args.calibration - 0.5) / total
        if nas(["latency", "calibrate", "--config", str(config), "--lut", str(lut), "--count", str(total),
                "--train-fraction", str(fraction), "--seed", str(args.seed), "--warmup", str(args.warmup),
                "--repeats", str(args.repeats), "--probe-tolerance", str(args.probe_tolerance)]):
            return 1
        _, test = split_indices(total, fraction, args.seed)
        held = {row["model"]: (row["decisions"], sized.to_spec([int(x) for x in row["decisions"].split("-")]))
                for i, row in enumerate(rows) if i in test}
        first.update({row["model"]: row for i, row in enumerate(rows) if i in test})
        second = measure_models({**held, **registered}, profiler, files["recheck"], run, _say)
        loads.append(os.getloadavg()[0])
    except NoisyMachine as exc:
        noisy = str(exc)
    minutes = (time.monotonic() - start) / 60
    head = [
        f"# Calibrated CPU lookup table vs measured whole-model latency ({space.skeleton.name} space, "
        f"{resolution}x{resolution}, int8)" + (" — SMOKE TEST, not a result" if args.smoke else ""),
        "",
        f"Machine fingerprint: {profiler.fingerprint().describe()}. Load average (1 min) during the run "
        f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores. Took {minutes:.0f} min.",
        f"One measurement run: table, {args.calibration} calibration and {args.held_out} held-out random "
        f"architectures (seed {args.seed}) and the registered models the table covers, each timed as the minimum of "
        f"{args.repeats} bare invokes pinned to one core, warm-ups {args.warmup} right before each block, the probe "
        f"model timed around every batch and a batch over the run's best probe by more than {args.probe_tolerance:g}% "
        "timed again. Files in `benchmarks/out/` "
        f"(`{lut.name}`, `{files['calibration'].name}`, `{files['registered'].name}`, `{files['recheck'].name}`). "
        "Produced by `benchmarks/bench_latency_lut.py`.",
        "",
    ]
    if noisy:
        lines = head + [f"**{noisy.split(';')[0]}.** No score: the run stopped there; what it measured is kept "
                        "in `benchmarks/out/`, and the same command (without --fresh) resumes the run.", ""]
        write_stamped(results, "\n".join(lines))
        print("\n".join(lines))
        return 1
    table = LookupTable.load(lut)
    model = LookupTableModel(table)
    names = list(held) + list(registered)
    specs = {**{k: v[1] for k, v in held.items()}, **{k: v[1] for k, v in registered.items()}}
    measured = [first[n]["ms"] for n in names]
    agreement = [abs(second[n]["ms"] / first[n]["ms"] - 1) for n in names]
    agree_share = 100 * sum(a <= SELF_AGREEMENT for a in agreement) / len(agreement)
    counts = agree_share >= SELF_SHARE
    lines = head + [
        f"Calibration: `{table.correction.describe()}` (ms; `{table.header['calibrated_on']}`). "
        f"Run {run.id}, probe best {run.probe_best_ms:.3f} ms; the probes of accepted batches were at most "
        f"{100 * (max(r['probe_ms'] for r in [*rows, *first.values(), *second.values()]) / run.probe_best_ms - 1):.1f}% "
        "over it.",
        "",
        f"Self-agreement (each held-out and registered model timed in two windows): {agree_share:.0f}% within "
        f"±{100 * SELF_AGREEMENT:.0f}% (median difference {100 * sorted(agreement)[len(agreement) // 2]:.1f}%, "
        f"worst {100 * max(agreement):.1f}%); needed {SELF_SHARE:.0f}%."
        + ("" if counts else " **The machine was too noisy: the scores below do not count.**"),
        "",
        "| models | predictor | count | MAPE | within ±10% | Spearman |",
        "|---|---|---|---|---|---|",
    ]
    for label, predict in (("table sum (uncalibrated)", model.sum_ms), ("calibrated table", model.predict_ms)):
        s = score([predict(specs[n]) for n in names], measured)
        lines.append(f"| held-out + registered | {label} | {s.count} | {s.mape_percent:.1f}% | "
                     f"{s.within_10_percent:.0f}% | {s.spearman:.3f} |")
    s = score([model.predict_ms(specs[n]) for n in names], measured)
    met = s.within_10_percent >= GOAL_WITHIN and s.spearman >= GOAL_SPEARMAN
    lines += ["", "Registered models: " + (", ".join(
        f"{n} measured {first[n]['ms']:.3f} ms, predicted {model.predict_ms(specs[n]):.3f} ms" for n in registered)
        or "none covered by the table") + ".",
        "", f"Goal: at least {GOAL_WITHIN:.0f}% of held-out models within ±10% and Spearman at least {GOAL_SPEARMAN} "
        "(nn-Meter reaches 99% within ±10% on mobile CPUs): "
        + ("**not counted (machine too noisy)**." if not counts else "**met**." if met else "**not met**."), ""]
    write_stamped(results, "\n".join(lines))
    print("\n".join(lines))
    return 0 if counts else 1


if __name__ == "__main__":
    sys.exit(main())
