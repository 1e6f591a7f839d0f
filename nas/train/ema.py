"""The exponential moving average of tf.compat.v1.train.ExponentialMovingAverage, with num_updates.

The reference averages every trainable variable AND the batch-norm moving statistics with
`ExponentialMovingAverage(0.9999, num_updates=global_step)` applied after each optimizer step (so it
sees the incremented step), which TF1 computes as

    decay  = min(0.9999, (1 + n) / (10 + n))        n = updates done, this one included
    shadow = shadow - (shadow - var) * (1 - decay)  (assign_moving_average, zero_debias=False)

Shadows start at the variables' values when the average is created (TF1: their initial values).
Keras 3's optimizer EMA averages trainable variables only, with a fixed decay: not the recipe.

All shadows live in ONE flat variable, the variables' values concatenated in order: a step is then
one concatenation and one fused update for the whole model instead of a read, a subtraction and an
update per variable (hundreds of tiny ops, which cost a small model's step more than the arithmetic).
The arithmetic per element is TF1's, unchanged. `values` / `assign` give the per-variable view that
checkpoints and the weight swap need.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class MovingAverage:
    def __init__(self, variables, decay: float = 0.9999):
        self.decay = decay
        dtypes = {v.dtype for v in variables}
        if len(dtypes) != 1:
            raise ValueError(f"the averaged variables must share one dtype, not {sorted(map(str, dtypes))}")
        self.shapes = [tuple(v.shape) for v in variables]
        self.splits = np.cumsum([int(np.prod(s)) for s in self.shapes])[:-1]
        # Created under the caller's strategy scope, mirrored like the weights.
        self.shadow = tf.Variable(self.flatten(variables), trainable=False, name="ema")

    @staticmethod
    def flatten(variables):
        return tf.concat([tf.reshape(v, [-1]) for v in variables], 0)

    def decay_at(self, num_updates):
        n = tf.cast(num_updates, tf.float32)
        return tf.minimum(tf.constant(self.decay, tf.float32), (1.0 + n) / (10.0 + n))

    def update(self, shadow, variables, one_minus_decay):
        """One average step of the flat (per-device) `shadow` towards `variables`, given `1 - decay`.

        TF1's arithmetic: shadow -= (shadow - var) * (1 - decay), which ResourceApplyGradientDescent
        computes in one kernel (var -= alpha * delta)."""
        return tf.raw_ops.ResourceApplyGradientDescent(
            var=shadow.handle, alpha=tf.cast(one_minus_decay, shadow.dtype), delta=shadow - self.flatten(variables))

    def values(self) -> list[np.ndarray]:
        """The shadow of each variable, in the order given at creation (writable host copies)."""
        flat = np.array(self.shadow.numpy())  # a tensor's numpy() may be a read-only view
        return [part.reshape(shape) for part, shape in zip(np.split(flat, self.splits), self.shapes)]

    def assign(self, values) -> None:
        self.shadow.assign(np.concatenate([np.reshape(v, -1) for v in values]).astype(self.shadow.dtype.as_numpy_dtype))
