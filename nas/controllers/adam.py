"""Adam (Kingma & Ba, 2015) over a dict of numpy arrays, ascending an objective."""

from __future__ import annotations

from typing import Any

import numpy as np

from nas.controllers.base import arrays_to_lists, lists_to_arrays


class Adam:
    def __init__(self, learning_rate: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.learning_rate, self.beta1, self.beta2, self.eps = learning_rate, beta1, beta2, eps
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self.steps = 0

    def ascend(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """One step up the gradient; `params` is updated in place."""
        self.steps += 1
        correction1 = 1.0 - self.beta1 ** self.steps
        correction2 = 1.0 - self.beta2 ** self.steps
        for key, grad in grads.items():
            m = self.m.setdefault(key, np.zeros_like(grad))
            v = self.v.setdefault(key, np.zeros_like(grad))
            m *= self.beta1
            m += (1.0 - self.beta1) * grad
            v *= self.beta2
            v += (1.0 - self.beta2) * grad * grad
            params[key] += self.learning_rate * (m / correction1) / (np.sqrt(v / correction2) + self.eps)

    def state(self) -> dict[str, Any]:
        return {"m": arrays_to_lists(self.m), "v": arrays_to_lists(self.v), "steps": self.steps}

    def load_state(self, state: dict[str, Any]) -> None:
        self.m, self.v, self.steps = lists_to_arrays(state["m"]), lists_to_arrays(state["v"]), state["steps"]
