"""TuNAS's controller and schedules (numpy; no TensorFlow).

- one zero-initialised logit vector per decision with a choice, sampled independently;
- REINFORCE: the logits ascend `(R - b) * grad log p(sample)`, `b` a zero-debiased exponential
  moving average of the rewards (momentum `baseline_decay`) updated with the current reward first,
  as TuNAS's `update_exponential_moving_average` does; Adam with beta1 = 0, beta2 = 0.999;
- the RL delay: the controller's learning rate is 0 for the first `rl_delay` of the steps, then
  rises exponentially to `lr_increase` times its start by the end;
- op warm-up: with probability p, falling linearly from 1 to 0 over the first `op_warmup` of the
  steps, each kind / kernel decision runs all its options averaged; filter warm-up: with the same
  kind of schedule over `filter_warmup`, each expansion / filter decision takes its largest option.
  A replaced decision gives the controller no gradient (TuNAS: a constant log-probability).

`step` and `total` are counted in search steps (one sampled path each); every random draw comes
from the controller's generator, so its state (`state()`) is all a resumed run needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from nas.common.errors import ConfigError
from nas.common.schema import setting
from nas.controllers.adam import Adam
from nas.controllers.base import arrays_to_lists, lists_to_arrays, log_softmax, sample_categorical
from nas.oneshot.plan import FILTER_DECISIONS, OP_DECISIONS
from search_space.space import DECISIONS, SearchSpace

NAME = "tunas"  # `controller: {name: tunas}` selects the one-shot search


@dataclass(frozen=True)
class OneShotOptions:
    """`controller:` of a one-shot search (name `tunas`): the controller's and the supernet's settings.

    The number of steps is `run.trials` (each step samples, trains and scores one path)."""

    learning_rate: float = setting(0.02, above=0.0)  # TuNAS: 3e-4 * B / 256 over ~30,000 steps
    lr_increase: float = setting(10.0, min=1.0)  # the rate grows to this multiple by the end
    baseline_decay: float = setting(0.95, min=0.0, max=0.999)
    rl_delay: float = setting(0.25, min=0.0, max=0.95)  # share of the steps before the controller learns
    op_warmup: float = setting(0.25, min=0.0, max=0.95)  # share of the steps over which op warm-up fades
    filter_warmup: float = setting(0.25, min=0.0, max=0.95)
    validation_multiplier: int = setting(4, min=1)  # validation batch = this x proxy.batch_size
    weight_decay: float = setting(0.0, min=0.0)  # L2 on the path's kernels; 0: the proxy's recipe (none)
    checkpoint_every: int = setting(50, min=1)  # steps between checkpoints of supernet, controller, data
    snapshot_every: int = setting(10, min=1)  # steps between snapshots of the controller's probabilities

    def __post_init__(self) -> None:
        for name in ("op_warmup", "filter_warmup"):
            if getattr(self, name) > self.rl_delay:
                raise ConfigError(f"controller.{name}: {getattr(self, name)} is longer than controller.rl_delay "
                                  f"({self.rl_delay}); TuNAS lets the controller learn only after warm-up")


def linear_decay(step: int, total: int, fraction: float) -> float:
    """1 at step 0, falling linearly to 0 at `fraction * total` steps, 0 after."""
    span = fraction * total
    return 0.0 if span <= 0 else max(0.0, 1.0 - step / span)


def rl_learning_rate(step: int, total: int, options: OneShotOptions) -> float:
    """0 during the RL delay, then `learning_rate * lr_increase ** (progress after the delay)`."""
    start = options.rl_delay * total
    if step < start:
        return 0.0
    progress = (step - start) / max(total - start, 1)
    return options.learning_rate * options.lr_increase ** progress


@dataclass(frozen=True)
class Sample:
    decisions: list[int]  # the controller's draw
    trained: list[int]  # what the supernet runs (filter warm-up forces the largest options)
    mixed: list[tuple[bool, bool]]  # per stage: (all kinds, all kernels) run averaged (op warm-up)
    replaced: list[bool]  # per decision: replaced by a warm-up (no gradient)


class TunasController:
    def __init__(self, space: SearchSpace, options: OneShotOptions, total: int, seed: int = 0):
        self.space, self.options, self.total = space, options, int(total)
        self.cardinalities = space.cardinalities
        self.free = [i for i, n in enumerate(self.cardinalities) if n > 1]
        self.logits = {str(i): np.zeros(self.cardinalities[i]) for i in self.free}
        self.adam = Adam(options.learning_rate, beta1=0.0, beta2=0.999)
        self.rng = np.random.default_rng(seed)
        self.average, self.steps = 0.0, 0  # the baseline's raw EMA and the number of rewards in it

    def probabilities(self) -> dict[int, np.ndarray]:
        return {int(k): np.exp(log_softmax(v)) for k, v in self.logits.items()}

    def sample(self, step: int) -> Sample:
        n = len(DECISIONS)
        decisions = [0] * len(self.cardinalities)
        for i, probs in self.probabilities().items():
            decisions[i] = sample_categorical(self.rng, probs)
        trained = list(decisions)
        replaced = [False] * len(decisions)
        mixed = [[False, False] for _ in self.space.stages]
        p_op = linear_decay(step, self.total, self.options.op_warmup)
        p_filter = linear_decay(step, self.total, self.options.filter_warmup)
        for s, stage in enumerate(self.space.stages):
            for j, name in enumerate(DECISIONS):
                i = s * n + j
                if i not in self.free or name not in OP_DECISIONS + FILTER_DECISIONS:
                    continue
                draw = self.rng.random()
                if name in OP_DECISIONS and draw < p_op:
                    replaced[i] = mixed[s][OP_DECISIONS.index(name)] = True
                elif name in FILTER_DECISIONS and draw < p_filter:
                    options = stage.options(name)
                    trained[i] = options.index(max(options))
                    replaced[i] = True
        return Sample(decisions, trained, [tuple(m) for m in mixed], replaced)

    def baseline(self, reward: float) -> float:
        """Fold `reward` into the moving average and return it, zero-debiased."""
        decay = self.options.baseline_decay
        self.average = decay * self.average + (1.0 - decay) * reward
        self.steps += 1
        return self.average / (1.0 - decay ** self.steps) if decay else self.average

    def tell(self, sample: Sample, reward: float, step: int) -> dict[str, float]:
        """One REINFORCE step for `sample`'s reward; returns the baseline and the rate used."""
        baseline = self.baseline(reward)
        lr = rl_learning_rate(step, self.total, self.options)
        grads = reinforce_gradient(self.logits, sample.decisions, reward - baseline, sample.replaced)
        if lr > 0 and grads:
            self.adam.learning_rate = lr
            self.adam.ascend(self.logits, grads)
        return {"baseline": baseline, "rl_learning_rate": lr}

    def best(self) -> list[int]:
        """The most likely architecture (TuNAS's export: the argmax of every decision)."""
        out = [0] * len(self.cardinalities)
        for i, p in self.probabilities().items():
            out[i] = int(np.argmax(p))
        return out

    def state(self) -> dict[str, Any]:
        return {"logits": arrays_to_lists(self.logits), "adam": self.adam.state(), "rng": self.rng.bit_generator.state,
                "average": self.average, "steps": self.steps}

    def load_state(self, state: dict[str, Any]) -> None:
        self.logits = lists_to_arrays(state["logits"])
        self.adam.load_state(state["adam"])
        self.rng.bit_generator.state = state["rng"]
        self.average, self.steps = float(state["average"]), int(state["steps"])


def log_prob(logits: dict[str, np.ndarray], decisions: Sequence[int], replaced: Sequence[bool]) -> float:
    """log p(decisions) under independent softmaxes, replaced decisions left out."""
    return float(sum(log_softmax(v)[decisions[int(k)]] for k, v in logits.items() if not replaced[int(k)]))


def reinforce_gradient(logits: dict[str, np.ndarray], decisions: Sequence[int], advantage: float,
                       replaced: Sequence[bool]) -> dict[str, np.ndarray]:
    """`advantage * d log p(decisions) / d logits` (onehot - softmax per decision)."""
    grads = {}
    for k, v in logits.items():
        if replaced[int(k)]:
            continue
        g = -np.exp(log_softmax(v))
        g[decisions[int(k)]] += 1.0
        grads[k] = advantage * g
    return grads
