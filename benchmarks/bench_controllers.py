"""Controllers compared on an objective computed from the spec alone (no training).

Objective: the MNAS soft reward `acc * (lat / T) ** -0.07` of the default search (the EdgeTPU-S
skeleton's space, `sim` latency, T = sim's latency of EfficientNet-EdgeTPU-S), with `acc` the
surrogate below. The surrogate lives here, in the benchmark, not in the tool; it is a fixed,
documented formula, deterministic, and only meant to have the shape real accuracy has:

    acc = 0.82 - 0.06 * (MACs / 1.8e9) ** -0.5           saturating in compute (a power law)
          + 0.003 per stage with an identity skip         residuals help
          + 0.004 per fused stage among stages 0-2        fused blocks help early, high-resolution stages
          - 0.004 per fused stage among stages 3-5        ... and hurt late, narrow ones
          + 0.002 per 5x5 kernel among stages 3-5         larger receptive field where maps are small

The "top 1%" and "top 0.1%" thresholds are the 99th and 99.9th percentiles of the reward over
100,000 random architectures. For each controller and seed we count the samples until the first
one at or above each (capped at the budget), and time the controller's own work per trial (ask +
tell, excluding the objective). Random search needs 100 and 1,000 samples on average.

    .venv/bin/python benchmarks/bench_controllers.py [--seeds 5] [--budget 1000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from common import write_results  # noqa: E402

from latency import make_latency_model  # noqa: E402
from nas.controllers import CONTROLLERS, make_controller  # noqa: E402
from nas.search.reward import SOFT, mnas_reward  # noqa: E402
from search_space.counting import model_cost  # noqa: E402
from search_space.registry import REGISTRY  # noqa: E402
from search_space.space import SearchSpace  # noqa: E402

CONTROLLER_NAMES = ("mnas", "reinforce", "evolution", "random")


def surrogate_accuracy(spec) -> float:
    macs = model_cost(spec).macs
    acc = 0.82 - 0.06 * (macs / 1.8e9) ** -0.5
    for i, block in enumerate(spec.blocks):
        acc += 0.003 * block.skip
        if block.kind == "fused_mbconv":
            acc += 0.004 if i <= 2 else -0.004
        if i >= 3 and block.kernel == 5:
            acc += 0.002
    return acc


class Objective:
    def __init__(self):
        self.space = SearchSpace.from_dict({})
        self.latency = make_latency_model("sim")
        self.target = self.latency.predict_ms(REGISTRY["efficientnet-edgetpu-S"])
        self.cache: dict[tuple, float] = {}

    def __call__(self, decisions: list[int]) -> float:
        key = tuple(decisions)
        if key not in self.cache:
            spec = self.space.to_spec(decisions)
            self.cache[key] = mnas_reward(surrogate_accuracy(spec), self.latency.predict_ms(spec), self.target, *SOFT)
        return self.cache[key]


def thresholds(objective: Objective, samples: int, seed: int = 12345) -> tuple[float, float]:
    rng = random.Random(seed)
    rewards = [objective(objective.space.sample(rng)) for _ in range(samples)]
    return float(np.percentile(rewards, 99)), float(np.percentile(rewards, 99.9))


def run(name: str, objective: Objective, seed: int, budget: int, goals: tuple[float, ...]):
    """(samples to reach each goal or None, controller ms per trial, best reward found)."""
    controller = make_controller(name, objective.space.cardinalities, seed=seed)
    spent = 0.0
    hits: list[int | None] = [None] * len(goals)
    best = float("-inf")
    for i in range(budget):
        t = time.perf_counter()
        decisions = controller.ask()
        spent += time.perf_counter() - t
        reward = objective(decisions)
        t = time.perf_counter()
        controller.tell(decisions, reward)
        spent += time.perf_counter() - t
        best = max(best, reward)
        hits = [h if h is not None or reward < g else i + 1 for h, g in zip(hits, goals)]
    return hits, 1000 * spent / budget, best


def _cell(hits: list[int | None], budget: int) -> str:
    capped = [h if h is not None else budget for h in hits]
    reached = sum(h is not None for h in hits)
    return f"{statistics.median(capped):g} ({reached}/{len(hits)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--reference", type=int, default=100_000, help="random samples for the top-1%% threshold")
    parser.add_argument("--controllers", nargs="*", default=list(CONTROLLER_NAMES), choices=CONTROLLERS.names())
    args = parser.parse_args()

    objective = Objective()
    t = time.perf_counter()
    goals = thresholds(objective, args.reference)
    print(f"top-1% / top-0.1% thresholds {goals[0]:.4f} / {goals[1]:.4f} from {args.reference} random samples "
          f"({time.perf_counter() - t:.0f} s)", flush=True)
    rows = []
    for name in args.controllers:
        per_goal: list[list[int | None]] = [[], []]
        overheads, bests = [], []
        for seed in range(args.seeds):
            hits, ms, best = run(name, objective, seed, args.budget, goals)
            for column, hit in zip(per_goal, hits):
                column.append(hit)
            overheads.append(ms)
            bests.append(best)
            print(f"{name} seed {seed}: {' / '.join(str(h) if h else f'>{args.budget}' for h in hits)} samples, "
                  f"best {best:.4f}, {ms:.2f} ms/trial", flush=True)
        rows.append(f"| {name} | {_cell(per_goal[0], args.budget)} | {_cell(per_goal[1], args.budget)} | "
                    f"{', '.join(str(h) if h else f'>{args.budget}' for h in per_goal[1])} | "
                    f"{statistics.mean(bests):.4f} | {statistics.median(overheads):.2f} |")

    body = [f"Objective: MNAS soft reward of the benchmark's surrogate accuracy and `sim` latency over the default "
            f"space (EdgeTPU-S skeleton, {objective.space.size:.2e} architectures), target "
            f"{objective.target:.3f} ms. Top 1% = reward >= {goals[0]:.4f}, top 0.1% = reward >= {goals[1]:.4f} "
            f"(percentiles of {args.reference:,d} random samples). {args.seeds} seeds, budget {args.budget} samples "
            f"each, controllers at their default options. Random search needs 100 and 1,000 samples on average "
            f"by construction. Cells: median samples over seeds (a seed that never gets there counts as the "
            f"budget), and how many seeds got there.", "",
            "| controller | samples to top 1% | samples to top 0.1% | per seed (top 0.1%) | mean best reward | "
            "controller ms / trial (ask + tell) |", "|---|---|---|---|---|---|", *rows,
            "", "Surrogate accuracy (benchmark only): `0.82 - 0.06 * (MACs / 1.8e9) ** -0.5`, +0.003 per identity "
            "skip, +/-0.004 per fused stage in stages 0-2 / 3-5, +0.002 per 5x5 kernel in stages 3-5. "
            f"Run: `.venv/bin/python benchmarks/bench_controllers.py --seeds {args.seeds} --budget {args.budget}`."]
    path = write_results("bench_controllers", "Controllers on a spec-only objective", "\n".join(body))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
