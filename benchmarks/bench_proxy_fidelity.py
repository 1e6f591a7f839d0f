"""The proxy's fidelity: seed noise, agreement with a longer reference training, cost per trial.

For the first N of a fixed list of random architectures of the config's space (default:
experiments/edgetpu.yaml), trains each under `--seeds` seeds with each proxy variant and once with a
reference training on the same data, and reports per variant:

- seed noise: within-architecture std of the accuracy (mean over architectures) against the
  across-architecture std of the per-architecture mean accuracy; SNR = across / within;
- Kendall tau-b between the variant's mean accuracy and the reference's accuracy;
- seconds per trial (the whole `ProxyTask.evaluate`, tracing included).

The reference trains `--reference-epochs` (default 20: 10x the default proxy's optimiser steps) at
32 px with strides 1,2,2,1,1,2, where every stage's layers see maps of at least 2x2 (see
nas/proxy/visibility.py). Variants: `skeleton` (the config's proxy with the skeleton's own strides,
total stride 32: at 16 px stages 3-5 run on 2x2 and 1x1 maps) and `strides` (the same with
`proxy.strides: 1,1,2,1,1,2`: every stage on >= 2x2 maps at 16 px; the default config's since it
was measured here).

Every trained accuracy is kept in `results/bench_proxy_fidelity.json` keyed by (variant,
architecture, seed) with the commit it was measured at, so runs accumulate: `--archs 12` after
`--archs 6` trains only the new six; `--remeasure` trains again what was measured at a commit the
code it measures has changed since (benchmarks/freshness.py's rule), so a re-measurement interrupted
in one session resumes in the next as long as that code stays the same.

    .venv/bin/python benchmarks/bench_proxy_fidelity.py [--archs 24] [--seeds 3] [--variants skeleton strides]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import RESULTS, commit, commits_line, markdown_table, write_results  # noqa: E402
from freshness import changed_since, measured_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STORE = RESULTS / "bench_proxy_fidelity.json"
VARIANTS = {"skeleton": {"strides": None}, "strides": {"strides": "1,1,2,1,1,2"}}
REFERENCE = {"resolution": 32, "strides": "1,2,2,1,1,2"}
ARCH_SEED = 2026


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b (ties in either list count as neither concordant nor discordant)."""
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denom = ((concordant + discordant + ties_a) * (concordant + discordant + ties_b)) ** 0.5
    return (concordant - discordant) / denom if denom else float("nan")


def architectures(space, n: int) -> list[list[int]]:
    rng = random.Random(ARCH_SEED)
    return [space.sample(rng) for _ in range(n)]


def outdated(store: dict) -> set[str]:
    """The commits in `store` whose measurements the current code might not reproduce: this
    benchmark's measured files changed since, or no commit to compare with."""
    files = measured_files(Path(__file__))
    return {c for c in {v.get("commit") for v in store.values()} if changed_since(c, files) != []}


def train(config, proxy_overrides: dict, archs, seeds, variant: str, store: dict, measured_at: str,
          remeasure: set[str] = frozenset()) -> None:
    """Trains what the store lacks, and what it holds from a commit in `remeasure`."""
    from nas.data import load_dataset
    from nas.proxy.task import ProxyTask

    proxy = dataclasses.replace(config.proxy, **proxy_overrides)
    task = None
    for i, decisions in enumerate(archs):
        for seed in seeds:
            key = f"{variant}|{i}|{seed}"
            if key in store and store[key].get("commit") not in remeasure:
                continue
            if task is None:  # data loaded only when something is left to train
                task = ProxyTask(proxy, load_dataset(config.data, proxy.resolution))
            result = task.evaluate(config.space.to_spec(decisions), seed=seed)
            store[key] = {"accuracy": result.accuracy, "seconds": result.seconds, "decisions": decisions,
                          "commit": measured_at}
            print(f"{variant} arch {i} seed {seed}: {result.accuracy:.3f} in {result.seconds:.1f} s", flush=True)
            STORE.write_text(json.dumps(store, indent=1))


def report(store: dict, n: int, seeds: list[int], variants: list[str], reference_epochs: int) -> str:
    ref = [store.get(f"reference|{i}|0", {}).get("accuracy") for i in range(n)]
    rows = []
    for variant in variants:
        per_arch = [[store[k]["accuracy"] for s in seeds if (k := f"{variant}|{i}|{s}") in store] for i in range(n)]
        done = [i for i in range(n) if len(per_arch[i]) == len(seeds)]
        if len(done) < 2:
            continue
        means = [statistics.mean(per_arch[i]) for i in done]
        within = statistics.mean(statistics.stdev(per_arch[i]) for i in done) if len(seeds) > 1 else float("nan")
        across = statistics.stdev(means)
        paired = [(m, ref[i]) for m, i in zip(means, done) if ref[i] is not None]
        tau = kendall_tau(*map(list, zip(*paired))) if len(paired) >= 2 else float("nan")
        secs = statistics.mean(store[f"{variant}|{i}|{s}"]["seconds"] for i in done for s in seeds)
        rows.append([variant, len(done), len(seeds), f"{statistics.mean(means):.3f}", f"{within:.3f}", f"{across:.3f}",
                     f"{across / within:.1f}", f"{tau:.2f} (N={len(paired)})", f"{secs:.1f}"])
    ref_secs = [store[f"reference|{i}|0"]["seconds"] for i in range(n) if f"reference|{i}|0" in store]
    ref_done = [r for r in ref if r is not None]
    trained = {v: sum(k.startswith(f"{v}|") for k in store) for v in [*variants, "reference"]}
    body = [f"Trials stored: {', '.join(f'{v} {c}' for v, c in trained.items())}. A variant needs at least two "
            f"architectures with all {len(seeds)} seeds to get a row.", ""]
    body += markdown_table(["proxy", "architectures", "seeds", "mean accuracy", "within-arch std", "across-arch std",
                           "SNR", "Kendall tau vs reference", "s / trial"], rows)
    body += ["", f"Reference: {reference_epochs} epochs (10x the default proxy's optimiser steps) at "
             f"{REFERENCE['resolution']} px, strides {REFERENCE['strides']} (every stage on >= 2x2 maps), seed 0, same "
             f"data; {len(ref_secs)} of {n} architectures trained"
             + (f", {statistics.mean(ref_secs):.0f} s each." if ref_secs else "."),
             *([f"Reference accuracies span {min(ref_done):.3f} to {max(ref_done):.3f} ({len(set(ref_done))} distinct "
                f"values over {len(ref_done)} architectures): near the data's ceiling, so part of its ranking is its "
                "own noise, which bounds the Kendall tau any proxy can reach against it."] if ref_done else []),
             "Architectures: the first N of a fixed list of random samples of the default space "
             f"(random.Random({ARCH_SEED})). Variants: " + "; ".join(
                 f"`{v}`: proxy as the config" + (f" with {VARIANTS[v]}" if VARIANTS[v] else "") for v in variants) + ".",
             "Seconds per trial were measured on a 2-core machine shared with other jobs: upper bounds.",
             commits_line([v.get("commit") for v in store.values()])]
    return "\n".join(body)


def main() -> None:
    from nas.search.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "experiments/edgetpu.yaml"))
    parser.add_argument("--archs", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--reference-epochs", type=int, default=20)
    parser.add_argument("--no-reference", action="store_true", help="train the variants only")
    parser.add_argument("--report-only", action="store_true", help="rewrite the markdown from what is stored")
    parser.add_argument("--remeasure", action="store_true",
                        help="train again what the store holds from a commit the measured code changed since "
                             "(default: only what it lacks)")
    args = parser.parse_args()

    config = load_config(args.config)
    archs = architectures(config.space, args.archs)
    seeds = list(range(args.seeds))
    store = json.loads(STORE.read_text()) if STORE.exists() else {}
    measured_at = commit()  # once: the store's own writes would make the tree read "-dirty" from then on
    remeasure = outdated(store) if args.remeasure else set()  # before this run adds its own measurements
    for variant in [] if args.report_only else args.variants:
        train(config, VARIANTS[variant], archs, seeds, variant, store, measured_at, remeasure)
    if not (args.no_reference or args.report_only):
        train(config, {**REFERENCE, "epochs": args.reference_epochs}, archs, [0], "reference", store, measured_at,
              remeasure)
    path = write_results("bench_proxy_fidelity", "Proxy fidelity: seed noise, rank agreement, cost",
                         report(store, args.archs, seeds, args.variants, args.reference_epochs))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
