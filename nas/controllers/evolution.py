"""Regularized (aging) evolution, Real et al. 2019 ("Regularized Evolution for Image Classifier
Architecture Search"), over the same decision vectors.

The first `population_size` proposals are random. After that each proposal is a mutation of the
best of `sample_size` members drawn at random (with replacement, as in the paper's Algorithm 1);
a mutation changes exactly one decision to a different option. Every told result joins the
population and the *oldest* member leaves, not the worst: aging is what regularizes the search.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

from nas.controllers.base import register_controller, Controller
from nas.common.schema import setting


@dataclass(frozen=True)
class EvolutionOptions:
    population_size: int = setting(20, min=2)
    sample_size: int = setting(5, min=1)


@register_controller("evolution")
class EvolutionController(Controller):
    Options = EvolutionOptions

    def __init__(self, cardinalities, options=None, seed=0):
        super().__init__(cardinalities, options, seed)
        self.population: collections.deque[tuple[list[int], float]] = collections.deque()

    def _ask(self) -> list[int]:
        if len(self.population) < self.options.population_size or not self.free:
            return self.random_decisions()
        members = [self.population[int(self.rng.integers(len(self.population)))]
                   for _ in range(self.options.sample_size)]
        parent = max(members, key=lambda m: m[1])[0]
        child = list(parent)
        position = self.free[int(self.rng.integers(len(self.free)))]
        other = int(self.rng.integers(self.cardinalities[position] - 1))
        child[position] = other if other < parent[position] else other + 1  # any option but the parent's
        return child

    def _tell(self, decisions: list[int], reward: float) -> None:
        self.population.append((decisions, reward))
        while len(self.population) > self.options.population_size:
            self.population.popleft()  # the oldest dies, however good it was

    def _state(self) -> dict[str, Any]:
        return {"population": [[d, r] for d, r in self.population]}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.population = collections.deque((list(d), float(r)) for d, r in state["population"])
