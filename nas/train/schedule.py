"""Learning-rate schedules, as pure functions of the global step (so a resumed run needs only the step).

`reference` is tensorflow/tpu efficientnet's `utils.build_learning_rate` with main.py's arguments:
`tf.train.exponential_decay(lr, step, steps_per_epoch * 2.4, 0.97, staircase=True)`, replaced by a
linear warm-up `lr * step / int(5 * steps_per_epoch)` while `step < int(5 * steps_per_epoch)`. The decay
counts from step 0, so at the end of warm-up the rate drops to the already-decayed value (docs/training.md).
`steps_per_epoch` is a float there (`num_train_images / batch`), and so it is here.
"""

from __future__ import annotations

import math

SCHEDULES = ("exponential", "cosine")


def learning_rate(step: int, *, base: float, steps_per_epoch: float, total_steps: int, kind: str = "exponential",
                  warmup_epochs: float = 5.0, decay_rate: float = 0.97, decay_epochs: float = 2.4) -> float:
    """The rate used by the update that takes the model from `step` to `step + 1` (step counted from 0)."""
    if kind == "exponential":
        rate = base * decay_rate ** math.floor(step / (steps_per_epoch * decay_epochs))
    elif kind == "cosine":
        rate = 0.5 * base * (1.0 + math.cos(math.pi * step / total_steps))
    else:
        raise ValueError(f"unknown schedule {kind!r}")
    warmup_steps = int(warmup_epochs * steps_per_epoch)
    if warmup_steps and step < warmup_steps:
        return base * step / warmup_steps
    return rate
