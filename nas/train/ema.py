"""The exponential moving average of tf.compat.v1.train.ExponentialMovingAverage, with num_updates.

The reference averages every trainable variable AND the batch-norm moving statistics with
`ExponentialMovingAverage(0.9999, num_updates=global_step)` applied after each optimizer step (so it
sees the incremented step), which TF1 computes as

    decay  = min(0.9999, (1 + n) / (10 + n))        n = updates done, this one included
    shadow = shadow - (shadow - var) * (1 - decay)  (assign_moving_average, zero_debias=False)

Shadows start at the variables' values when the average is created (TF1: their initial values).
Keras 3's optimizer EMA averages trainable variables only, with a fixed decay: not the recipe.
"""

from __future__ import annotations

import tensorflow as tf


class MovingAverage:
    def __init__(self, variables, decay: float = 0.9999):
        self.decay = decay
        # Created under the caller's strategy scope, mirrored like the weights.
        self.shadows = [tf.Variable(v.read_value() if hasattr(v, "read_value") else v, trainable=False,
                                    name=f"ema_{i}") for i, v in enumerate(variables)]

    def decay_at(self, num_updates):
        n = tf.cast(num_updates, tf.float32)
        return tf.minimum(tf.constant(self.decay, tf.float32), (1.0 + n) / (10.0 + n))

    @staticmethod
    def update(shadow, var, one_minus_decay):
        """One average step of a plain (per-device) shadow towards `var`, given `1 - decay`.

        TF1's arithmetic: shadow -= (shadow - var) * (1 - decay). ResourceApplyGradientDescent computes
        exactly that product and subtraction in one kernel (var -= alpha * delta): two ops per variable
        instead of four, which is most of what the average costs a small model's step."""
        return tf.raw_ops.ResourceApplyGradientDescent(
            var=shadow.handle, alpha=tf.cast(one_minus_decay, shadow.dtype),
            delta=shadow - tf.cast(var, shadow.dtype))
