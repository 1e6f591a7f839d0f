"""The one optimiser step of the project (the trainer's and the proxy's), by TensorFlow's fused kernels.

Keras 3's `RMSprop` starts its mean-square accumulator at zeros and puts epsilon outside the square
root; the reference recipe ran TF1's `tf.compat.v1.train.RMSPropOptimizer`, whose kernel
(`ResourceApplyRMSProp`) is used here unchanged, with the accumulator created at ONES as TF1 creates it:

    ms  <- decay * ms + (1 - decay) * g^2          (ms starts at 1)
    mom <- momentum * mom + lr * g / sqrt(ms + epsilon)
    var <- var - mom

Adam is TF1's `ResourceApplyAdam` with beta1 = `momentum`, beta2 = 0.999, its powers beta^t computed in
double precision from the step and rounded once to the variable's dtype: the arithmetic the proxy's
trials were always trained with (TF1's AdamOptimizer multiplies float32 powers step by step instead,
which drifts from beta^t by about t float32 roundings). `sgd` (the proxy's alternative;
not a `train:` choice) is Keras's Nesterov momentum (`ResourceApplyKerasMomentum`), one slot at zeros.

Slots carry TF1's checkpoint names (`<var>/RMSProp` = ms, `<var>/RMSProp_1` = momentum; Adam:
`<var>/Adam`, `<var>/Adam_1`), which `nas.deploy.checkpoints` ignores when loading weights (docs/guides/training.md).
`apply` works on plain (per-device) variables: the training loop calls it inside
`strategy.extended.update`, the proxy (`nas.proxy.task`) through `apply_all` on one device.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

OPTIMIZERS = ("rmsprop", "adam", "sgd")


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "rmsprop"
    decay: float = 0.9  # rmsprop: rho; adam: beta2 is ADAM_BETA2
    momentum: float = 0.9  # rmsprop, sgd: momentum; adam: beta1
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
        elif config.name == "sgd":
            self.slot_names = ("Momentum",)
            inits = (tf.zeros_like,)
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

    def apply(self, var, grad, slots, lr, step):
        """One update of `var` (a plain variable) with its `slots` (a sequence, in `slot_names` order);
        `step` is the number of updates before this one (an integer tensor)."""
        c = self.config
        if c.name == "rmsprop":
            return tf.raw_ops.ResourceApplyRMSProp(
                var=var.handle, ms=slots[0].handle, mom=slots[1].handle, lr=tf.cast(lr, var.dtype),
                rho=tf.constant(c.decay, var.dtype), momentum=tf.constant(c.momentum, var.dtype),
                epsilon=tf.constant(c.epsilon, var.dtype), grad=grad)
        if c.name == "sgd":
            return tf.raw_ops.ResourceApplyKerasMomentum(
                var=var.handle, accum=slots[0].handle, lr=tf.cast(lr, var.dtype), grad=grad,
                momentum=tf.constant(c.momentum, var.dtype), use_nesterov=True)
        t = tf.cast(step + 1, tf.float64)
        return tf.raw_ops.ResourceApplyAdam(
            var=var.handle, m=slots[0].handle, v=slots[1].handle,
            beta1_power=tf.cast(tf.pow(tf.constant(c.momentum, tf.float64), t), var.dtype),
            beta2_power=tf.cast(tf.pow(tf.constant(ADAM_BETA2, tf.float64), t), var.dtype), lr=tf.cast(lr, var.dtype),
            beta1=tf.constant(c.momentum, var.dtype), beta2=tf.constant(ADAM_BETA2, var.dtype),
            epsilon=tf.constant(c.epsilon, var.dtype), grad=grad)

    def apply_all(self, variables, grads, lr, step) -> None:
        """One update of every variable (those given at creation, in order) on one device."""
        for i, (var, grad) in enumerate(zip(variables, grads)):
            self.apply(var, grad, [slot[i] for slot in self.slots], lr, step)
