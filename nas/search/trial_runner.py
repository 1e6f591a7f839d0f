"""One trial, wherever it runs: decisions -> full-size spec -> latency, proxy accuracy, reward -> `Trial`.

The local backend calls it in the search's own process; the Ray backend calls it inside a Ray Tune
trial on any worker and ships the `Trial` back to the driver, which journals it. Both therefore
record exactly the same thing for the same (index, decisions).
"""

from __future__ import annotations

import math
import time
import traceback
from typing import Any, Callable, Protocol

from search_space.counting import model_cost
from nas.common.errors import UserError
from nas.common.seeds import fit_seed
from search_space.spec import ModelSpec

from nas.search.config import SearchConfig, make_latency
from nas.search.journal import FAILED, OK, Trial
from nas.execution.worker import one_line
from nas.proxy.task import TrialFailed
from nas.search.reward import make_reward


class Evaluator(Protocol):
    # -> .accuracy, .train_loss, .seconds; `epochs` is passed only for a partial budget (Hyperband)
    def evaluate(self, spec: ModelSpec, seed: int, epochs: int | None = None) -> Any: ...


def trial_seed(run_seed: int, index: int) -> int:
    """The proxy's seed for trial `index`: fixed by the run's seed, different for every trial, and one
    every library takes (`keras.utils.set_random_seed` needs [0, 2**32)) whatever the run seed is;
    a value that was in range keeps its old formula, so earlier runs reproduce."""
    return fit_seed(run_seed * 100_003 + index, "proxy-trial")


def budget_epochs(budget: float, epochs: int) -> int | None:
    """The proxy epochs for a controller's budget share; None for the whole proxy."""
    return None if budget >= 1.0 else max(1, round(budget * epochs))


class TrialRunner:
    def __init__(self, config: SearchConfig, evaluator: Evaluator | None = None,
                 say: Callable[[str], None] = print):
        self.config = config
        self.evaluator = evaluator
        self.say = say
        self.latency_model, self.target_ms = make_latency(config)
        self.reward = make_reward(config.reward, self.target_ms)

    def load_evaluator(self) -> Evaluator:
        """The proxy task over the configured data (loaded once, on first use)."""
        if self.evaluator is None:
            from nas.proxy.task import cached_proxy_task

            resolution = self.config.proxy.resolution or self.config.space.skeleton.resolution
            self.say(f"loading the '{self.config.data.source}' data at {resolution}x{resolution} ...")
            self.evaluator = cached_proxy_task(self.config, resolution)
            data = self.evaluator.data
            self.say(f"  {data.train_count} training and {len(data.val_labels)} validation images, "
                     f"{data.num_classes} classes")
        return self.evaluator

    def spec(self, index: int, decisions: list[int]) -> ModelSpec:
        # Named 1-based, as the summary and best.yaml's header count trials.
        return self.config.space.to_spec(decisions, name=f"{self.config.run.name}-trial{index + 1:04d}")

    def run(self, index: int, decisions: list[int], budget: float = 1.0) -> Trial:
        """The trial, finished or failed; only a `UserError` (bad data, files) propagates."""
        start = time.perf_counter()
        spec = self.spec(index, decisions)
        cost = model_cost(spec)
        accuracy = latency = reward = None
        epochs = budget_epochs(budget, self.config.proxy.epochs)
        extra: dict[str, Any] = {} if epochs is None else {"proxy_epochs": epochs}
        error = None
        try:
            latency = float(self.latency_model.predict_ms(spec))
            seed = trial_seed(self.config.run.seed, index)
            evaluator = self.load_evaluator()
            result = evaluator.evaluate(spec, seed) if epochs is None else evaluator.evaluate(spec, seed, epochs)
            accuracy = float(result.accuracy)
            extra.update(train_loss=round(float(result.train_loss), 6), proxy_s=round(float(result.seconds), 3))
            if not math.isfinite(accuracy):
                raise ValueError(f"accuracy is {accuracy}")
            reward = float(self.reward(accuracy, latency))
        except UserError:
            raise  # the user's input is wrong (data, files): stop, finished work stays saved
        except Exception as exc:  # this candidate failed; the search goes on
            error = one_line(exc)
            if not isinstance(exc, TrialFailed):  # an unexpected error: keep where it came from
                extra["traceback"] = traceback.format_exc(limit=-3)
        return Trial(index, list(decisions), spec.to_dict(), OK if error is None else FAILED,
                     accuracy if error is None else None, latency, reward if error is None else None,
                     cost.params, cost.macs, round(time.perf_counter() - start, 3), error, extra)

    def failed(self, index: int, decisions: list[int], error: str, wall_s: float = 0.0) -> Trial:
        """The record of a trial that never returned (its worker crashed every time it was tried)."""
        spec = self.spec(index, decisions)
        cost = model_cost(spec)
        latency = float(self.latency_model.predict_ms(spec))
        return Trial(index, list(decisions), spec.to_dict(), FAILED, None, latency, None,
                     cost.params, cost.macs, round(wall_s, 3), error, {})
