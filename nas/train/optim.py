"""Optimisers with TF1 semantics, applied by TensorFlow's own fused kernels.

Keras 3's `RMSprop` starts its mean-square accumulator at zeros and puts epsilon outside the square
root; the reference recipe ran TF1's `tf.compat.v1.train.RMSPropOptimizer`, whose kernel
(`ResourceApplyRMSProp`) is used here unchanged, with the accumulator created at ONES as TF1 creates it:

    ms  <- decay * ms + (1 - decay) * g^2          (ms starts at 1)
    mom <- momentum * mom + lr * g / sqrt(ms + epsilon)
    var <- var - mom

Slots carry TF1's checkpoint names (`<var>/RMSProp` = ms, `<var>/RMSProp_1` = momentum; Adam:
`<var>/Adam`, `<var>/Adam_1`), which `nas.checkpoints` already knows to ignore when loading weights.
`apply` works on plain (per-device) variables: the loop calls it inside `strategy.extended.update`.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

OPTIMIZERS = ("rmsprop", "adam")


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "rmsprop"
    decay: float = 0.9  # rmsprop: rho; adam: beta2 is ADAM_BETA2
    momentum: float = 0.9  # rmsprop: momentum; adam: beta1
    epsilon: float = 1e-3


ADAM_BETA2 = 0.999


class Optimizer:
    """The slots of every trained variable and one update per variable."""

    def __init__(self, config: OptimizerConfig, variables, names: list[str]):
        self.config = config
        if config.name == "rmsprop":
            self.slot_names = ("RMSProp", "RMSProp_1")
            inits = (tf.ones_like, tf.zeros_like)  # TF1: ms at ONES, momentum at zeros
        elif config.name == "adam":
            self.slot_names = ("Adam", "Adam_1")
            inits = (tf.zeros_like, tf.zeros_like)
        else:
            raise ValueError(f"unknown optimizer {config.name!r}")
        # One tf.Variable per slot and variable, created under the caller's strategy scope so that
        # they are mirrored like the weights they belong to.
        self.slots = [[tf.Variable(init(v), trainable=False, name=f"{n}/{s}".replace("/", "_"))
                       for v, n in zip(variables, names)] for init, s in zip(inits, self.slot_names)]

    def slot_map(self, names: list[str]) -> dict[str, tf.Variable]:
        """{TF1 checkpoint name: slot variable}."""
        return {f"{n}/{s}": slot[i] for s, slot in zip(self.slot_names, self.slots)
                for i, n in enumerate(names)}

    def apply(self, var, grad, slot_a, slot_b, lr, step):
        """One update of `var` (a plain variable); `step` is the number of updates before this one."""
        c = self.config
        if c.name == "rmsprop":
            return tf.raw_ops.ResourceApplyRMSProp(
                var=var.handle, ms=slot_a.handle, mom=slot_b.handle, lr=tf.cast(lr, var.dtype),
                rho=tf.constant(c.decay, var.dtype), momentum=tf.constant(c.momentum, var.dtype),
                epsilon=tf.constant(c.epsilon, var.dtype), grad=grad)
        t = tf.cast(step + 1, var.dtype)
        return tf.raw_ops.ResourceApplyAdam(
            var=var.handle, m=slot_a.handle, v=slot_b.handle,
            beta1_power=tf.pow(tf.constant(c.momentum, var.dtype), t),
            beta2_power=tf.pow(tf.constant(ADAM_BETA2, var.dtype), t), lr=tf.cast(lr, var.dtype),
            beta1=tf.constant(c.momentum, var.dtype), beta2=tf.constant(ADAM_BETA2, var.dtype),
            epsilon=tf.constant(c.epsilon, var.dtype), grad=grad)
