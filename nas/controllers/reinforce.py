"""REINFORCE over independent categorical choices, as TuNAS (Bender et al., 2020) samples.

Each decision has its own logits (zeros at the start: uniform); a proposal samples every decision
independently. After every `batch_size` told results the logits take one Adam step up
`mean((reward - baseline) * grad log p(decisions))`, where the baseline is an exponential moving
average of past rewards (momentum `baseline_decay`), which TuNAS uses to reduce variance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.controllers.adam import Adam
from nas.controllers.base import register_controller, Controller, batch_open, arrays_to_lists, lists_to_arrays, log_softmax, sample_categorical
from nas.common.schema import setting


@dataclass(frozen=True)
class ReinforceOptions:
    learning_rate: float = setting(0.05, above=0.0)
    baseline_decay: float = setting(0.95, min=0.0, max=1.0)
    batch_size: int = setting(1, min=1)


@register_controller("reinforce")
class ReinforceController(Controller):
    proposes_ahead = True
    Options = ReinforceOptions

    def __init__(self, cardinalities, options=None, seed=0):
        super().__init__(cardinalities, options, seed)
        self.logits = {str(i): np.zeros(self.cardinalities[i]) for i in self.free}
        self.adam = Adam(self.options.learning_rate)
        self.baseline: float | None = None
        self.batch: list[tuple[list[int], float]] = []

    def probabilities(self) -> dict[int, np.ndarray]:
        return {int(k): np.exp(log_softmax(v)) for k, v in self.logits.items()}

    def can_ask(self) -> bool:
        return batch_open(self.asked, self.told, self.options.batch_size)

    def _ask(self) -> list[int]:
        out = [0] * len(self.cardinalities)
        for i, probs in self.probabilities().items():
            out[i] = sample_categorical(self.rng, probs)
        return out

    def _tell(self, decisions: list[int], reward: float) -> None:
        self.batch.append((decisions, reward))
        if len(self.batch) < self.options.batch_size:
            return
        rewards = np.array([r for _, r in self.batch])
        baseline = rewards.mean() if self.baseline is None else self.baseline
        advantages = rewards - baseline
        probs = self.probabilities()
        grads = {k: np.zeros_like(v) for k, v in self.logits.items()}
        for (chosen, _), advantage in zip(self.batch, advantages):
            for i, p in probs.items():
                grad = -p
                grad[chosen[i]] += 1.0  # d log p(chosen) / d logits = onehot - p
                grads[str(i)] += advantage * grad / len(self.batch)
        self.adam.ascend(self.logits, grads)
        for r in rewards:
            baseline = self.options.baseline_decay * baseline + (1 - self.options.baseline_decay) * r
        self.baseline = float(baseline)
        self.batch = []

    def _state(self) -> dict[str, Any]:
        return {"logits": arrays_to_lists(self.logits), "adam": self.adam.state(), "baseline": self.baseline,
                "batch": [[d, r] for d, r in self.batch]}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.logits = lists_to_arrays(state["logits"])
        self.adam.load_state(state["adam"])
        self.baseline = state["baseline"]
        self.batch = [(list(d), float(r)) for d, r in state["batch"]]
