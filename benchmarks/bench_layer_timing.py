"""Layers timed the former way and the way whole models are timed: table sum against whole-model latency.

For a few whole models (the registered efficientnet-edgetpu-S and random architectures of the default
space), each distinct layer is timed twice, and each layer's time summed over the model's layers:
- before: the former way, each layer with uint8 input and output (its own quantise ops), called
  through LiteRT's signature runner (resize, allocate and copy on every call), 40 layers round-robin
  after one warm-up pass (every layer runs cold);
- after: `latency.layer_models` and `latency.measure.time_warm`: int8 in and out, a bare invoke on an
  input set once, warm-ups right before each layer's own block of timed invokes;
and the whole model is timed with `time_warm`. Both ways run in the same window, one model after the
other, so load from others hits both alike. Writes benchmarks/results/bench_layer_timing.md.

Usage: .venv/bin/python benchmarks/bench_layer_timing.py [--models 5] [--resolution 224] [--repeats 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import write_stamped  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench_layer_timing.md"


def runner_invokes(content: bytes, count: int) -> list:
    """The former layer call: the signature runner, with its per-call resize, allocate and copies."""
    from latency.layer_models import signature_keys
    from latency.measure import random_inputs
    from search_space.tflite import load_interpreter

    interp = load_interpreter(content, num_threads=1)
    invokes = []
    for i, key in enumerate(signature_keys(count)):
        runner = interp.get_signature_runner(key)
        (x,) = random_inputs([runner.get_input_details()["x"]], seed=i)
        invokes.append(lambda runner=runner, x=x: runner(x=x))
    return invokes


def round_robin_min(invokes: list, warmup: int, repeats: int) -> list[float]:
    """The former timing: one warm-up pass, then every callable once per round (each runs cold)."""
    for invoke in invokes:
        for _ in range(warmup):
            invoke()
    samples: list[list[float]] = [[] for _ in invokes]
    for _ in range(repeats):
        for invoke, out in zip(invokes, samples):
            start = time.perf_counter_ns()
            invoke()
            out.append((time.perf_counter_ns() - start) / 1e6)
    return [min(s) for s in samples]


def main(argv: list[str] | None = None) -> int:
    import yaml

    from latency.fingerprint import Fingerprint
    from latency.layer_models import layers_to_tflite, signature_invokes
    from latency.measure import interpreter_invoke, spec_to_tflite, time_warm
    from latency.profiling import PROBE_TOLERANCE, make_profiler, sample_architectures
    from search_space.registry import REGISTRY
    from search_space.space import SearchSpace
    from search_space.tflite import load_interpreter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=5, help="whole models: S and random architectures (default 5)")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    space = SearchSpace.from_dict(yaml.safe_load((ROOT / "experiments" / "edgetpu.yaml").read_text())["search_space"])
    sized = dataclasses.replace(space, skeleton=dataclasses.replace(space.skeleton, resolution=args.resolution))
    specs = [dataclasses.replace(REGISTRY["efficientnet-edgetpu-S"], resolution=args.resolution)]
    specs += [sized.to_spec(d) for d in sample_architectures(space, args.models - 1, seed=0)]
    rows = []
    load = [os.getloadavg()[0]]
    profiler = make_profiler("tflite-cpu")  # for its probe: timed before and after every model's window
    probes = [profiler.probe_ms()]
    for n, spec in enumerate(specs):
        layers = list({layer.key: layer for layer in spec.layers()}.values())
        new_file = layers_to_tflite(layers, spec)
        old_file = layers_to_tflite(layers, spec, io_type="uint8")
        model = interpreter_invoke(load_interpreter(spec_to_tflite(spec)))
        # all three timed back to back: the same window for before, after and the whole model
        old = dict(zip((layer.key for layer in layers), round_robin_min(runner_invokes(old_file, len(layers)),
                                                                        args.warmup, args.repeats)))
        new = {layer.key: t.ms for layer, t in
               zip(layers, time_warm(signature_invokes(new_file, len(layers)), args.warmup, args.repeats))}
        measured = time_warm([model], args.warmup, args.repeats)[0].ms
        probes.append(profiler.probe_ms())
        before = sum(old[layer.key] for layer in spec.layers())
        after = sum(new[layer.key] for layer in spec.layers())
        rows.append((spec.name, len(spec.layers()), measured, before, after))
        load.append(os.getloadavg()[0])
        print(f"{n + 1}/{len(specs)} {spec.name}: measured {measured:.3f} ms, sum before {before:.3f}, after {after:.3f}",
              flush=True)
    fp = Fingerprint.of_this_machine("tflite-cpu", 1, "int8")
    lines = [
        "# Layer timing, before and after: table sum against whole-model latency",
        "",
        f"int8 LiteRT (XNNPACK), 1 thread, EdgeTPU space at {args.resolution}x{args.resolution}; warm-up "
        f"{args.warmup}, {args.repeats} timed invokes, minimum. Machine fingerprint: {fp.describe()}. "
        f"Load average (1 min) during the run: {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} cores "
        "(**shared with other work**: absolute times carry its load; before, after and the whole model of "
        "each row were timed back to back in one window).",
        "Produced by `benchmarks/bench_layer_timing.py`; before = uint8 layer files through the signature runner, "
        "round-robin (the former way), after = int8 bare invoke, warm-ups right before each block (`time_warm`).",
        "",
        "| model | layers | measured ms | sum before | measured / sum before | sum after | measured / sum after |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, count, measured, before, after in rows:
        lines.append(f"| {name} | {count} | {measured:.3f} | {before:.3f} | {measured / before:.3f} | "
                     f"{after:.3f} | {measured / after:.3f} |")
    ratios_before = [m / b for _, _, m, b, _ in rows]
    ratios_after = [m / a for _, _, m, _, a in rows]
    lines += ["", f"Median measured / sum: before {statistics.median(ratios_before):.3f} (spread "
              f"{min(ratios_before):.3f}-{max(ratios_before):.3f}), after {statistics.median(ratios_after):.3f} "
              f"(spread {min(ratios_after):.3f}-{max(ratios_after):.3f}).", ""]
    spread = max(probes) / min(probes) - 1
    lines += [f"Probe (efficientnet-edgetpu-S at 96, timed before and after every row): best {min(probes):.3f} ms, "
              f"spread {100 * spread:.1f}%: " + ("quiet enough (tolerance "
              f"{100 * PROBE_TOLERANCE:.0f}%)." if spread <= PROBE_TOLERANCE else
              f"**machine too noisy: probe spread {100 * spread:.0f}%; these ratios confirm nothing.**"), ""]
    write_stamped(Path(args.output), "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
