"""The one interface every controller speaks: `ask` / `tell` / `state` / `load_state`.

A controller sees the search space only as its cardinalities (how many options each decision has)
and proposes flat vectors of option indices; the runner turns them into specs, evaluates them and
tells the reward back. It is pure numpy, deterministic for a seed, and its whole state (weights,
optimiser moments, random generator, pending samples) is a JSON-serialisable dict, so a run resumes
exactly where it stopped. Decisions with a single option are always 0 and never sampled.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from search_space.extensions import Registry


CONTROLLERS = Registry("controller")
"""The search controllers by name (`controller.name` in a config); add one with `@CONTROLLERS.register("name")`."""


def register_controller(name: str):
    """Class decorator: `@register_controller("mnas")` names the class and registers it in `CONTROLLERS`."""

    def decorate(cls):
        cls.name = name
        return CONTROLLERS.register(name)(cls)

    return decorate


@dataclass(frozen=True)
class NoOptions:
    pass


class Controller:
    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    # Whether a proposal drawn while earlier ones are still untold is the one it would draw after
    # their tells: so where proposals are independent draws, or come from a policy fixed for a batch
    # (`can_ask` holds the next batch back). The local backend keeps several trials in flight only
    # for these, so that its run, and a resumed one, is the one-at-a-time run.
    proposes_ahead: ClassVar[bool] = False

    def __init__(self, cardinalities: Sequence[int], options: Any = None, seed: int = 0):
        self.cardinalities = [int(c) for c in cardinalities]
        if not self.cardinalities or min(self.cardinalities) < 1:
            raise ValueError(f"cardinalities must be positive, got {self.cardinalities}")
        self.options = self.Options() if options is None else options
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.free = [i for i, n in enumerate(self.cardinalities) if n > 1]  # decisions worth sampling
        self.asked = 0
        self.told = 0

    # The interface -----------------------------------------------------------------------------

    def ask(self) -> list[int]:
        self.asked += 1
        return [int(d) for d in self._ask()]

    def tell(self, decisions: Sequence[int], reward: float) -> None:
        decisions = [int(d) for d in decisions]
        if len(decisions) != len(self.cardinalities):
            raise ValueError(f"expected {len(self.cardinalities)} decisions, got {len(decisions)}")
        if not np.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")
        self.told += 1
        self._tell(decisions, float(reward))

    def can_ask(self) -> bool:
        """Whether another proposal may be drawn before the outstanding ones are told.

        Runners that keep several trials in flight (the Ray backend) ask this first; a
        batch-synchronous controller says no once its batch is handed out, until every result of
        the batch is back and the policy has been updated.
        """
        return True

    def budget(self) -> float:
        """The share of the proxy's epochs the latest proposal trains for, in (0, 1].

        Successive-halving controllers (keras-tuner's Hyperband) give early rungs a fraction of
        the training; every other controller gives each proposal the whole proxy.
        """
        return 1.0

    def state(self) -> dict[str, Any]:
        return {
            "controller": self.name,
            "options": dataclasses.asdict(self.options),
            "cardinalities": list(self.cardinalities),
            "seed": self.seed,
            "asked": self.asked,
            "told": self.told,
            "rng": self.rng.bit_generator.state,
            **self._state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("controller") != self.name or state.get("cardinalities") != self.cardinalities:
            raise ValueError(f"state of controller '{state.get('controller')}' over {state.get('cardinalities')} "
                             f"does not fit '{self.name}' over {self.cardinalities}")
        if state.get("options") != dataclasses.asdict(self.options):
            raise ValueError(f"state was saved with options {state.get('options')}, "
                             f"this controller has {dataclasses.asdict(self.options)}")
        self.seed, self.asked, self.told = state["seed"], state["asked"], state["told"]
        self.rng.bit_generator.state = state["rng"]
        self._load_state(state)

    # What each controller implements -------------------------------------------------------------

    def _ask(self) -> list[int]:
        raise NotImplementedError

    def _tell(self, decisions: list[int], reward: float) -> None:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: dict[str, Any]) -> None:
        pass

    # Shared helpers ------------------------------------------------------------------------------

    def random_decisions(self) -> list[int]:
        out = [0] * len(self.cardinalities)
        for i in self.free:
            out[i] = int(self.rng.integers(self.cardinalities[i]))
        return out


def batch_open(asked: int, told: int, batch_size: int) -> bool:
    """Batch-synchronous asking: the current batch (of `batch_size`) still has proposals to hand out."""
    return asked < (told // batch_size + 1) * batch_size


def sample_categorical(rng: np.random.Generator, probs: np.ndarray) -> int:
    """One draw from `probs` by inverse CDF (a single uniform per draw keeps streams reproducible)."""
    cdf = np.cumsum(probs)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(probs) - 1))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def arrays_to_lists(arrays: dict[str, np.ndarray]) -> dict[str, list]:
    return {k: v.tolist() for k, v in arrays.items()}


def lists_to_arrays(lists: dict[str, list]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in lists.items()}
