"""The MNAS controller: an autoregressive LSTM policy trained with PPO on the reward.

MNAS (Tan et al., 2019, section 4.2) samples each model's decisions with an RNN, one decision per
step, and trains it with Proximal Policy Optimization (Schulman et al., 2017) to maximise the
expected reward. Here, batch-synchronously: proposals are drawn from a fixed policy; once
`batch_size` results are told, the policy takes `ppo_epochs` Adam steps up the clipped surrogate

    J = mean_i min(rho_i * A_i, clip(rho_i, 1 - clip, 1 + clip) * A_i) + entropy_weight * mean_i H_i

where rho_i is the probability ratio of sequence i under the current and the sampling policy,
A_i = reward_i - baseline with the baseline an exponential moving average of rewards (decay
`baseline_decay`, NASNet's 0.95), and H_i the summed per-step entropy along sequence i (a bonus
that keeps the policy exploring). Defaults suit a few hundred samples; the paper's runs sampled
about 8,000 models with NASNet's smaller learning rate (0.00035) and entropy weight (1e-5).

Two options make tiny budgets (a few PPO updates over batches of 8) robust:

- `advantage: batch` normalises A_i within the batch, `(r_i - mean) / std`. With the moving-average
  baseline, a batch that lands below the baseline has only negative advantages, and the update
  pushes the policy away from everything it just sampled, good or bad, into regions it has never
  seen; batch-normalised advantages always rank the batch's own samples against each other (half
  up, half down) and do not depend on the reward's scale, so one learning rate suits any objective.
- `unique: true` redraws (up to `UNIQUE_TRIES` times) a sequence this controller has already
  proposed: the runner would train it again for a reward it already knows, and a repeat carries no
  new ranking information. The log-probability kept is the accepted draw's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.controllers.adam import Adam
from nas.controllers.base import register_controller, Controller, batch_open, arrays_to_lists, lists_to_arrays, log_softmax
from nas.controllers.lstm import LstmPolicy
from nas.common.schema import setting

ADVANTAGES = ("baseline", "batch")
UNIQUE_TRIES = 50  # then a repeat is accepted: a policy that has converged keeps proposing its mode


@dataclass(frozen=True)
class MnasOptions:
    hidden_size: int = setting(100, min=1)  # NASNet's / MNAS's controller: one LSTM layer of 100 units
    embedding_size: int = setting(32, min=1)
    learning_rate: float = setting(0.02, above=0.0)
    batch_size: int = setting(8, min=1)
    ppo_epochs: int = setting(4, min=1)
    clip: float = setting(0.2, above=0.0)
    entropy_weight: float = setting(0.001, min=0.0)
    baseline_decay: float = setting(0.95, min=0.0, max=1.0)
    init_range: float = setting(0.1, above=0.0)
    advantage: str = setting("baseline", choices=ADVANTAGES)  # batch: (r - batch mean) / batch std
    unique: bool = False  # redraw a sequence already proposed


def ppo_objective(policy: LstmPolicy, actions: np.ndarray, advantages: np.ndarray, old_logp: np.ndarray,
                  clip: float, entropy_weight: float) -> tuple[float, dict[str, np.ndarray]]:
    """The clipped surrogate J (above) of a batch, and its gradient on every policy parameter."""
    batch = len(actions)
    logits, cache = policy.forward(actions)
    logp = np.zeros(batch)
    entropy = np.zeros(batch)
    steps = []
    for t, z in enumerate(logits):
        logprobs = log_softmax(z)
        probs = np.exp(logprobs)
        step_entropy = -(probs * logprobs).sum(axis=1)
        logp += logprobs[np.arange(batch), actions[:, t]]
        entropy += step_entropy
        steps.append((logprobs, probs, step_entropy))
    ratio = np.exp(logp - old_logp)
    clipped = np.clip(ratio, 1.0 - clip, 1.0 + clip)
    value = float(np.mean(np.minimum(ratio * advantages, clipped * advantages)) + entropy_weight * entropy.mean())
    # The min picks the clipped term (zero gradient) exactly when the ratio has left the trust region
    # in the direction the advantage pushes it.
    outside = ((advantages > 0) & (ratio > 1.0 + clip)) | ((advantages < 0) & (ratio < 1.0 - clip))
    weight = np.where(outside, 0.0, ratio * advantages) / batch
    dlogits = []
    for t, (logprobs, probs, step_entropy) in enumerate(steps):
        d = -probs * weight[:, None]
        d[np.arange(batch), actions[:, t]] += weight  # d log p(a) / d logits = onehot(a) - p
        d += (entropy_weight / batch) * -probs * (logprobs + step_entropy[:, None])  # dH / d logits
        dlogits.append(d)
    return value, policy.backward(actions, cache, dlogits)


@register_controller("mnas")
class MnasController(Controller):
    proposes_ahead = True
    Options = MnasOptions

    def __init__(self, cardinalities, options=None, seed=0):
        super().__init__(cardinalities, options, seed)
        o = self.options
        steps = [self.cardinalities[i] for i in self.free]
        self.policy = LstmPolicy(steps, o.hidden_size, o.embedding_size, self.rng, o.init_range)
        self.adam = Adam(o.learning_rate)
        self.baseline: float | None = None
        self.pending: list[tuple[list[int], float]] = []  # asked, not yet told: (steps, log p when sampled)
        self.batch: list[tuple[list[int], float, float]] = []  # told, awaiting the update: (steps, reward, log p)
        self.updates = 0
        self.seen: set[tuple[int, ...]] = set()  # every sequence proposed (`unique`)

    def can_ask(self) -> bool:
        return batch_open(self.asked, self.told, self.options.batch_size)

    def _ask(self) -> list[int]:
        steps, logp = self.policy.sample(self.rng) if self.free else ([], 0.0)
        if self.options.unique:
            for _ in range(UNIQUE_TRIES):
                if tuple(steps) not in self.seen:
                    break
                steps, logp = self.policy.sample(self.rng)
            self.seen.add(tuple(steps))
        self.pending.append((steps, logp))
        out = [0] * len(self.cardinalities)
        for i, a in zip(self.free, steps):
            out[i] = a
        return out

    def _tell(self, decisions: list[int], reward: float) -> None:
        steps = [decisions[i] for i in self.free]
        match = next((k for k, (s, _) in enumerate(self.pending) if s == steps), None)
        if match is not None:
            logp = self.pending.pop(match)[1]
        else:  # proposed elsewhere (e.g. a seeded architecture): its probability under the current policy
            logits, _ = self.policy.forward(np.array([steps], dtype=np.int64))
            logp = float(sum(log_softmax(z[0])[a] for z, a in zip(logits, steps)))
        self.batch.append((steps, reward, logp))
        if len(self.batch) >= self.options.batch_size:
            self._update()

    def _update(self) -> None:
        o = self.options
        rewards = np.array([r for _, r, _ in self.batch])
        baseline = rewards.mean() if self.baseline is None else self.baseline
        if self.free:
            actions = np.array([s for s, _, _ in self.batch], dtype=np.int64)
            old_logp = np.array([lp for _, _, lp in self.batch])
            if o.advantage == "batch":
                # A batch of equal rewards carries no ranking: zero advantages (entropy term only).
                advantages = (rewards - rewards.mean()) / max(rewards.std(), 1e-8)
            else:
                advantages = rewards - baseline
            for _ in range(o.ppo_epochs):
                _, grads = ppo_objective(self.policy, actions, advantages, old_logp, o.clip, o.entropy_weight)
                self.adam.ascend(self.policy.params, grads)
        for r in rewards:
            baseline = o.baseline_decay * baseline + (1.0 - o.baseline_decay) * r
        self.baseline = float(baseline)
        self.batch = []
        self.updates += 1

    def _state(self) -> dict[str, Any]:
        return {"params": arrays_to_lists(self.policy.params), "adam": self.adam.state(),
                "baseline": self.baseline, "updates": self.updates, "seen": sorted(list(s) for s in self.seen),
                "pending": [[s, lp] for s, lp in self.pending],
                "batch": [[s, r, lp] for s, r, lp in self.batch]}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.policy.params = lists_to_arrays(state["params"])
        self.adam.load_state(state["adam"])
        self.baseline, self.updates = state["baseline"], state["updates"]
        self.seen = {tuple(s) for s in state.get("seen", [])}
        self.pending = [(list(s), float(lp)) for s, lp in state["pending"]]
        self.batch = [(list(s), float(r), float(lp)) for s, r, lp in state["batch"]]
