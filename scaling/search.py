"""EfficientNet's step one: a small grid search for alpha, beta, gamma under a cost budget.

Every (alpha, beta, gamma) on the grid is applied at phi = 1 with the same rules `scale_phi` uses,
and the resulting network's *real* cost is compared with the base's: MACs counted from `layers()`, or
milliseconds from any latency model (the cost is a plain callable, so this module never imports
`latency`). A triple is feasible when that ratio is within `tolerance` (relative) of `target`
(2 in the paper, whose rule `alpha * beta**2 * gamma**2 ~ 2` is the MACs ratio before rounding; the
rounding of filters, repeats and resolution moves the real ratio away from it, which is why both are
reported). Feasible triples are ranked by a caller-supplied `score(spec) -> float` (higher is better:
proxy-task accuracy of the phi = 1 model), or, without one, by closeness of the ratio to the target;
ties (triples that round to the same network) go to the triple whose nominal factor is nearest it.

Triples that round to the same concrete network are costed and scored once.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

from search_space.errors import UserError
from search_space.spec import ModelSpec

from scaling.compound import RESOLUTION_DIVISOR, nominal_cost_factor, scale_phi

DEFAULT_TARGET = 2.0
DEFAULT_TOLERANCE = 0.1
MAX_GRID_VALUES = 200
MAX_TRIPLES = 50_000  # about ten seconds of MACs counting; a latency source is far slower


def grid(low: float, high: float, step: float) -> tuple[float, ...]:
    """`low, low + step, ..., high` (inclusive), values rounded to drop floating-point noise."""
    for name, value in (("grid start", low), ("grid end", high), ("grid step", step)):
        if not math.isfinite(value) or value <= 0:
            raise UserError(f"{name} must be a positive number, got {value!r}")
    if high < low:
        raise UserError(f"grid end {high:g} is below its start {low:g}")
    count = int((high - low) / step + 1e-9) + 1
    if count > MAX_GRID_VALUES:
        raise UserError(f"grid {low:g}:{high:g}:{step:g} has {count} values; at most {MAX_GRID_VALUES} per axis")
    return tuple(round(low + i * step, 10) for i in range(count))


DEFAULT_GRID = grid(1.0, 1.5, 0.05)


@dataclass(frozen=True)
class Candidate:
    alpha: float
    beta: float
    gamma: float
    nominal: float  # alpha * beta**2 * gamma**2
    cost_ratio: float  # cost of the phi = 1 model / cost of the base
    score: float | None  # the scorer's value for the phi = 1 model, None without a scorer
    spec: ModelSpec  # the phi = 1 model


@dataclass(frozen=True)
class SearchResult:
    candidates: tuple[Candidate, ...]  # feasible triples, best first
    evaluated: int  # triples on the grid
    costed: int  # distinct networks costed
    base_cost: float
    target: float
    tolerance: float
    scored: bool  # False: ranked by closeness of the cost ratio to the target only


def search_coefficients(
    base: ModelSpec,
    cost: Callable[[ModelSpec], float],
    *,
    alphas: Sequence[float] = DEFAULT_GRID,
    betas: Sequence[float] = DEFAULT_GRID,
    gammas: Sequence[float] = DEFAULT_GRID,
    target: float = DEFAULT_TARGET,
    tolerance: float = DEFAULT_TOLERANCE,
    score: Callable[[ModelSpec], float] | None = None,
    resolution_divisor: int = RESOLUTION_DIVISOR,
    progress: Callable[[int, int], None] | None = None,
) -> SearchResult:
    """All feasible triples of the grid, ranked (see the module docstring)."""
    if not math.isfinite(target) or target <= 0:
        raise UserError(f"target cost ratio must be a positive number, got {target!r}")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise UserError(f"tolerance must be a number >= 0, got {tolerance!r}")
    base_cost = float(cost(base))
    if not base_cost > 0:
        raise UserError(f"the cost of the base model '{base.name}' is {base_cost!r}; it must be positive")
    triples = list(itertools.product(alphas, betas, gammas))
    if not triples:
        raise UserError("the alpha, beta and gamma grids need at least one value each")
    if len(triples) > MAX_TRIPLES:
        raise UserError(f"the grids give {len(triples):,d} triples; at most {MAX_TRIPLES:,d}: use a coarser step")
    costs: dict[tuple, float] = {}
    feasible = []
    for i, (alpha, beta, gamma) in enumerate(triples):
        spec = scale_phi(base, 1, alpha, beta, gamma, resolution_divisor,
                         name=f"{base.name}-a{alpha:g}-b{beta:g}-g{gamma:g}")
        key = tuple(spec.layers())
        if key not in costs:
            costs[key] = float(cost(spec))
        ratio = costs[key] / base_cost
        if abs(ratio - target) <= tolerance * target:
            feasible.append((key, alpha, beta, gamma, ratio, spec))
        if progress:
            progress(i + 1, len(triples))
    scores: dict[tuple, float] = {}
    candidates = []
    for key, alpha, beta, gamma, ratio, spec in feasible:
        if score is not None and key not in scores:
            scores[key] = float(score(spec))
        candidates.append(Candidate(alpha, beta, gamma, nominal_cost_factor(alpha, beta, gamma), ratio,
                                    scores.get(key), spec))
    # Triples that round to the same network tie on cost; the one whose nominal factor is nearest the
    # target then comes first, so the listed coefficients also mean what they say before rounding.
    candidates.sort(key=lambda c: (0.0 if c.score is None else -c.score, abs(c.cost_ratio - target),
                                   abs(c.nominal - target), c.alpha, c.beta, c.gamma))
    return SearchResult(tuple(candidates), len(triples), len(costs), base_cost, target, tolerance, score is not None)
