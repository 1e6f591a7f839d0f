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

The "top 1%" threshold is the 99th percentile of the reward over 100,000 random architectures.
For each controller and seed we count the samples until the first one at or above it (capped at
the budget), and time the controller's own work per trial (ask + tell, excluding the objective).

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
from nas.reward import SOFT, mnas_reward  # noqa: E402
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


def threshold(objective: Objective, samples: int, seed: int = 12345) -> float:
    rng = random.Random(seed)
    rewards = [objective(objective.space.sample(rng)) for _ in range(samples)]
    return float(np.percentile(rewards, 99))


def run(name: str, objective: Objective, seed: int, budget: int, goal: float) -> tuple[int | None, float, float]:
    """(samples to reach the goal or None, controller ms per trial, best reward found)."""
    controller = make_controller(name, objective.space.cardinalities, seed=seed)
    spent = 0.0
    hit, best = None, float("-inf")
    for i in range(budget):
        t = time.perf_counter()
        decisions = controller.ask()
        spent += time.perf_counter() - t
        reward = objective(decisions)
        t = time.perf_counter()
        controller.tell(decisions, reward)
        spent += time.perf_counter() - t
        best = max(best, reward)
        if hit is None and reward >= goal:
            hit = i + 1
    return hit, 1000 * spent / budget, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--reference", type=int, default=100_000, help="random samples for the top-1%% threshold")
    parser.add_argument("--controllers", nargs="*", default=list(CONTROLLER_NAMES), choices=list(CONTROLLERS))
    args = parser.parse_args()

    objective = Objective()
    t = time.perf_counter()
    goal = threshold(objective, args.reference)
    print(f"top-1% threshold {goal:.4f} from {args.reference} random samples ({time.perf_counter() - t:.0f} s)", flush=True)
    rows = []
    for name in args.controllers:
        hits, overheads, bests = [], [], []
        for seed in range(args.seeds):
            hit, ms, best = run(name, objective, seed, args.budget, goal)
            hits.append(hit)
            overheads.append(ms)
            bests.append(best)
            print(f"{name} seed {seed}: {hit if hit else f'>{args.budget}'} samples, best {best:.4f}, "
                  f"{ms:.2f} ms/trial", flush=True)
        reached = [h for h in hits if h is not None]
        capped = [h if h is not None else args.budget for h in hits]
        rows.append((name, statistics.median(capped), len(reached), ", ".join(str(h) if h else f">{args.budget}" for h in hits),
                     statistics.mean(bests), statistics.median(overheads)))

    body = [f"Objective: MNAS soft reward of the benchmark's surrogate accuracy and `sim` latency over the default "
            f"space (EdgeTPU-S skeleton, {objective.space.size:.2e} architectures), target "
            f"{objective.target:.3f} ms. Top 1% = reward >= {goal:.4f} (99th percentile of {args.reference:,d} "
            f"random samples). {args.seeds} seeds, budget {args.budget} samples each, controllers at their default "
            f"options. Random search needs 100 samples on average by construction.", "",
            "| controller | median samples to top 1% | seeds reaching it | samples per seed | mean best reward | "
            "controller ms / trial (ask + tell) |", "|---|---|---|---|---|---|"]
    for name, median, reached, per_seed, best, ms in rows:
        body.append(f"| {name} | {median:g} | {reached}/{args.seeds} | {per_seed} | {best:.4f} | {ms:.2f} |")
    body += ["", "Surrogate accuracy (benchmark only): `0.82 - 0.06 * (MACs / 1.8e9) ** -0.5`, +0.003 per identity "
             "skip, +/-0.004 per fused stage in stages 0-2 / 3-5, +0.002 per 5x5 kernel in stages 3-5. "
             "Run: `.venv/bin/python benchmarks/bench_controllers.py --seeds "
             f"{args.seeds} --budget {args.budget}`."]
    path = write_results("bench_controllers", "Controllers on a spec-only objective", "\n".join(body))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
