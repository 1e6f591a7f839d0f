"""The recipe's pieces against TF1's implementations and the reference formula; the whole step against the
reference's TF1 training graph is tests/test_train_tf1.py."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas.train.ema import MovingAverage
from nas.train.optim import Optimizer, OptimizerConfig
from nas.train.schedule import learning_rate


def _grads(steps, shape, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype(np.float32) * (1 + 10 * (i % 3)) for i in range(steps)]


def test_first_rmsprop_step_uses_ones_accumulator():
    var = tf.Variable([1.0])
    opt = Optimizer(OptimizerConfig(), [var], ["w"])
    opt.apply(var, tf.constant([1.0]), [opt.slots[0][0], opt.slots[1][0]], tf.constant(0.1), 0)
    # ms = 0.9 * 1 + 0.1 * 1 = 1; mom = 0.1 * 1 / sqrt(1 + 1e-3)
    assert var.numpy()[0] == pytest.approx(1.0 - 0.1 / math.sqrt(1.001), rel=1e-6)


def test_adam_matches_tf1():
    init = np.ones((5,), np.float32)
    ours, theirs = tf.Variable(init), tf.Variable(init)
    opt = Optimizer(OptimizerConfig("adam", momentum=0.9, epsilon=1e-7), [ours], ["w"])
    ref = tf.compat.v1.train.AdamOptimizer(0.01, beta1=0.9, beta2=0.999, epsilon=1e-7)
    for i, g in enumerate(_grads(5, (5,))):
        opt.apply(ours, tf.constant(g), [opt.slots[0][0], opt.slots[1][0]], tf.constant(0.01), i)
        ref.apply_gradients([(tf.constant(g), theirs)])
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5)


def test_sgd_is_keras_nesterov_momentum():
    """The proxy's `sgd` (the shared step, one slot): Keras's SGD with Nesterov momentum, step by step."""
    init = np.linspace(-1, 1, 6).astype(np.float32)
    ours, theirs = tf.Variable(init), keras.Variable(init)
    opt = Optimizer(OptimizerConfig("sgd", momentum=0.8), [ours], ["w"])
    ref = keras.optimizers.SGD(0.05, momentum=0.8, nesterov=True)
    assert opt.slot_names == ("Momentum",)
    for i, g in enumerate(_grads(6, (6,))):
        opt.apply(ours, tf.constant(g), [opt.slots[0][0]], tf.constant(0.05), i)
        ref.apply_gradients([(tf.constant(g), theirs)])
        np.testing.assert_allclose(ours.numpy(), keras.ops.convert_to_numpy(theirs), rtol=1e-6, atol=1e-7)


def test_moving_average_values_round_trip():
    ours = MovingAverage([tf.Variable(np.zeros((2, 2), np.float32)), tf.Variable(np.zeros(3, np.float32))])
    parts = [np.arange(4, dtype=np.float32).reshape(2, 2), np.array([7, 8, 9], np.float32)]
    ours.assign(parts)
    for got, want in zip(ours.values(), parts):
        np.testing.assert_array_equal(got, want)


def _reference_lr(step, batch, images, epochs_warmup=5):
    """The reference recipe (docs/guides/training.md) written out: 0.016 * batch / 256, warm-up from 0 over 5 epochs, staircase 0.97 every 2.4."""
    lr = 0.016 * batch / 256
    steps_per_epoch = images / batch
    warm = int(epochs_warmup * steps_per_epoch)
    if step < warm:
        return lr * step / warm
    return lr * 0.97 ** math.floor(step / (2.4 * steps_per_epoch))


@pytest.mark.parametrize("batch,images", [(2048, 1281167), (64, 1500), (256, 10000)])
def test_reference_schedule(batch, images):
    spe = images / batch
    total = int(350 * spe)
    base = 0.016 * batch / 256
    for step in list(range(0, int(8 * spe), max(1, int(spe / 7)))) + [total - 1]:
        ours = learning_rate(step, base=base, steps_per_epoch=spe, total_steps=total)
        assert ours == pytest.approx(_reference_lr(step, batch, images), rel=1e-12), step
    warm = int(5 * spe)
    # At the end of warm-up the rate drops to the already-decayed value (5 / 2.4 -> two decays).
    assert learning_rate(warm, base=base, steps_per_epoch=spe, total_steps=total) == pytest.approx(
        base * 0.97 ** math.floor(warm / (2.4 * spe)))
    assert learning_rate(0, base=base, steps_per_epoch=spe, total_steps=total) == 0.0


def test_cosine_schedule():
    kw = dict(base=0.01, steps_per_epoch=10.0, total_steps=100, kind="cosine", warmup_epochs=1)
    assert learning_rate(5, **kw) == pytest.approx(0.005)
    assert learning_rate(50, **kw) == pytest.approx(0.005)
    assert learning_rate(99, **kw) < 1e-4
