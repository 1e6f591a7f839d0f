"""Proxy-task cost and memory over many trials: resident memory must stay flat.

Runs the proxy task of a search config (default: experiments/edgetpu.yaml's proxy and data) on
random architectures of its space, one after another in one process as `nas search` does, and
records the process's resident memory (VmRSS) and the time of every trial. Flat memory means the
RSS after warm-up grows by no more than noise: each trial's model, traced step and Keras session
are released before the next.

    .venv/bin/python benchmarks/bench_search.py [--trials 200] [--config experiments/edgetpu.yaml] [--skeleton tiny]

`--skeleton tiny` (the default) swaps the skeleton for a 2-stage one (seconds per trial) to reach
hundreds of trials quickly; `--skeleton config` keeps the config's (EdgeTPU-S's: ~10 s per trial).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import write_results  # noqa: E402

from nas.search.config import load_config  # noqa: E402
from nas.data import load_dataset  # noqa: E402
from nas.proxy.task import ProxyTask  # noqa: E402
from search_space.space import SearchSpace  # noqa: E402

TINY_SPACE = {
    "skeleton": {"name": "tiny", "blocks": ["r1_k3_s11_e2_i16_o16", "r2_k3_s22_e4_i16_o24"], "stem_filters": 16,
                 "head_filters": 64, "resolution": 32, "num_classes": 10},
    "choices": {"kind": ["mbconv", "fused_mbconv"], "kernel": [3, 5], "expand_ratio": [2, 4],
                "filter_multiplier": [0.75, 1.0], "repeats_delta": [0, 1], "skip": [True, False]},
}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="experiments/edgetpu.yaml")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--skeleton", choices=("config", "tiny"), default="tiny")
    args = parser.parse_args()

    config = load_config(args.config)
    space = config.space if args.skeleton == "config" else SearchSpace.from_dict(TINY_SPACE)
    # The config's per-stage proxy strides fit its own skeleton, not the 2-stage tiny one.
    proxy = config.proxy if args.skeleton == "config" else dataclasses.replace(config.proxy, strides=None)
    resolution = proxy.resolution or space.skeleton.resolution
    data = load_dataset(config.data, resolution)
    task = ProxyTask(proxy, data)
    rng = random.Random(0)
    rss, seconds, accuracies = [], [], []
    start = time.perf_counter()
    for i in range(args.trials):
        result = task.evaluate(space.to_spec(space.sample(rng)), seed=i)
        rss.append(rss_mb())
        seconds.append(result.seconds)
        accuracies.append(result.accuracy)
        if i % 10 == 0 or i == args.trials - 1:
            print(f"trial {i + 1}/{args.trials}: {result.seconds:.1f} s, acc {result.accuracy:.3f}, RSS {rss[-1]:.0f} MB",
                  flush=True)
    total = time.perf_counter() - start

    warm = min(5, args.trials - 1)
    checkpoints = sorted({1, warm + 1, args.trials // 4, args.trials // 2, args.trials} - {0})
    half = args.trials // 2
    slope = (statistics.mean(rss[-10:]) - statistics.mean(rss[half - 5:half + 5])) / max(1, args.trials - half)
    body = [f"Proxy of `{args.config}` ({resolution} px, width x{proxy.width:g}, {proxy.epochs} epoch(s), batch "
            f"{proxy.batch_size}, `{config.data.source}` data: {data.train_count} train / {len(data.val_labels)} "
            f"val images) on {args.trials} random architectures of the "
            f"{'config' if args.skeleton == 'config' else '2-stage tiny'} skeleton's space, in one process.", "",
            "| after trial | resident memory (MB) |", "|---|---|"]
    body += [f"| {c} | {rss[c - 1]:.0f} |" for c in checkpoints]
    body += ["", f"Growth over the second half of the run: {slope:+.2f} MB per trial "
             f"(peak {max(rss):.0f} MB). Trial time: median {statistics.median(seconds):.1f} s, "
             f"mean {statistics.mean(seconds):.1f} s, first {seconds[0]:.1f} s; "
             f"{total / 60:.1f} min in all. Proxy accuracy: median {statistics.median(accuracies):.3f}, "
             f"range {min(accuracies):.3f}-{max(accuracies):.3f}.", "",
             f"Run: `.venv/bin/python benchmarks/bench_search.py --trials {args.trials} --skeleton {args.skeleton}`. "
             "Other jobs shared the 2 cores while measured, so times are upper bounds."]
    name = "bench_search" if args.skeleton == "tiny" else "bench_search_edgetpu"
    path = write_results(name, "Proxy training over many trials: memory and time", "\n".join(body))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
