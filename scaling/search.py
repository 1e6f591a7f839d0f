"""EfficientNet's step one: a small grid search for alpha, beta, gamma under a cost budget.

Every (alpha, beta, gamma) on the grid is applied at phi = 1 with the same rules `scale_phi` uses,
and the resulting network's *real* cost is compared with the base's: MACs counted from `layers()`, or
milliseconds from any latency model (the cost is a plain callable, so this module never imports
`latency`). A triple is feasible when that ratio is within `tolerance` (relative) of `target`
(2 in the paper, whose rule `alpha * beta**2 * gamma**2 ~ 2` is the MACs ratio before rounding; the
rounding of filters, repeats and resolution moves the real ratio away from it, which is why both are
reported).

Ranking. Without a scorer, feasible triples are ranked by closeness of the cost ratio to the target.
With one, by its value for the phi = 1 model (higher is better: the proxy-task accuracy of that
model, which is how the paper picks among the triples). The scorer is either `score(spec) -> float`,
called once per network, or `score_many(specs) -> list[float | None]`, called once with every network
to score, so a caller can train them all in parallel (`nas scale search --config` runs them on a Ray
cluster); None (or a non-finite value) means that network failed. Triples that round to the same
concrete network are costed and scored once. `max_scored` limits the scoring to the N distinct
feasible networks whose cost ratio is closest to the target (they are also passed to the scorer in
that order); the others are not scored. The order is then: scored networks by score, then those not
scored (by closeness of the ratio), then those whose scoring failed; within equal scores, closeness of
the ratio; triples that round to the same network go to the one whose nominal factor is nearest the
target. `Candidate.scored` says whether the scorer was asked about a triple's network
(`scored and score is None`: it failed).

`proxy_resolution` is the rule a proxy task uses to keep gamma's effect when it trains at a reduced
resolution: the scaled model's resolution in proportion to the base's.
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
"""The values tried for each of alpha, beta and gamma by the coefficient grid search: 1.0 to 1.5 by 0.05."""


def proxy_resolution(resolution: int, base_resolution: int, proxy: int | None, minimum: int = 8) -> int:
    """The resolution a proxy task trains a scaled model at: `proxy * resolution / base_resolution`
    rounded half up (at least `minimum`), so gamma's effect survives the proxy's shrinking; with no
    proxy resolution (`proxy` None) the model's own `resolution`."""
    if proxy is None:
        return resolution
    if base_resolution <= 0 or proxy <= 0:
        raise UserError(f"proxy resolution needs positive resolutions, got proxy {proxy!r}, base {base_resolution!r}")
    return max(minimum, math.floor(proxy * resolution / base_resolution + 0.5))


@dataclass(frozen=True)
class Candidate:
    """One (alpha, beta, gamma) triple of the grid search and its phi = 1 model, scored or not."""

    alpha: float
    beta: float
    gamma: float
    nominal: float  # alpha * beta**2 * gamma**2
    cost_ratio: float  # cost of the phi = 1 model / cost of the base
    score: float | None  # the scorer's value for the phi = 1 model; None: not scored, or failed
    spec: ModelSpec  # the phi = 1 model
    scored: bool = False  # the scorer was asked about this network (score None: it failed)


@dataclass(frozen=True)
class SearchResult:
    """What `search_coefficients` found: the feasible triples best first, and what it evaluated."""

    candidates: tuple[Candidate, ...]  # feasible triples, best first
    evaluated: int  # triples on the grid
    costed: int  # distinct networks costed
    base_cost: float
    target: float
    tolerance: float
    scored: bool  # False: ranked by closeness of the cost ratio to the target only
    feasible_networks: int = 0  # distinct networks among the feasible triples
    scored_networks: int = 0  # distinct networks passed to the scorer
    failed_networks: int = 0  # of those, the ones whose score is None


Scores = Callable[[Sequence[ModelSpec]], Sequence["float | None"]]


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
    score_many: Scores | None = None,
    max_scored: int | None = None,
    resolution_divisor: int = RESOLUTION_DIVISOR,
    progress: Callable[[int, int], None] | None = None,
) -> SearchResult:
    """All feasible triples of the grid, ranked (see the module docstring)."""
    if not math.isfinite(target) or target <= 0:
        raise UserError(f"target cost ratio must be a positive number, got {target!r}")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise UserError(f"tolerance must be a number >= 0, got {tolerance!r}")
    if score is not None and score_many is not None:
        raise TypeError("give score or score_many, not both")
    if max_scored is not None and (isinstance(max_scored, bool) or not isinstance(max_scored, int) or max_scored < 1):
        raise UserError(f"the number of networks to score must be a whole number >= 1, got {max_scored!r}")
    if score is not None:
        def score_many(specs, score=score):
            return [score(spec) for spec in specs]
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

    def closeness(alpha, beta, gamma, ratio):
        # Triples that round to the same network tie on cost; the one whose nominal factor is nearest
        # the target then comes first, so the listed coefficients also mean what they say before rounding.
        return abs(ratio - target), abs(nominal_cost_factor(alpha, beta, gamma) - target), alpha, beta, gamma

    networks: dict[tuple, tuple] = {}  # one representative per distinct network: its closest triple
    for key, alpha, beta, gamma, ratio, spec in sorted(feasible, key=lambda f: closeness(*f[1:5])):
        networks.setdefault(key, (spec, closeness(alpha, beta, gamma, ratio)))
    scores: dict[tuple, float | None] = {}
    if score_many is not None and networks:
        chosen = sorted(networks, key=lambda k: networks[k][1])[:max_scored]
        values = list(score_many([networks[k][0] for k in chosen]))
        if len(values) != len(chosen):
            raise ValueError(f"the scorer returned {len(values)} values for {len(chosen)} networks")
        for key, value in zip(chosen, values):
            value = None if value is None else float(value)
            scores[key] = value if value is not None and math.isfinite(value) else None
    candidates = [Candidate(alpha, beta, gamma, nominal_cost_factor(alpha, beta, gamma), ratio, scores.get(key),
                            spec, key in scores)
                  for key, alpha, beta, gamma, ratio, spec in feasible]

    def rank(c: Candidate):
        group = 0 if c.score is not None else 2 if c.scored else 1  # scored, not scored, failed
        return (group, -(c.score or 0.0), *closeness(c.alpha, c.beta, c.gamma, c.cost_ratio))

    candidates.sort(key=rank)
    return SearchResult(tuple(candidates), len(triples), len(costs), base_cost, target, tolerance,
                        score_many is not None, len(networks), len(scores),
                        sum(v is None for v in scores.values()))
