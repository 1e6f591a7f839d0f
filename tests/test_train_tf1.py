"""The trainer's whole step against the reference's TF1 training graph, step by step.

The reference (tensorflow/tpu efficientnet, main.py `model_fn`; docs/guides/training.md) builds, in a
`tf.compat.v1` graph: the rate from `global_step` (`build_learning_rate`: staircase
`exponential_decay`, replaced by a linear warm-up while `global_step < int(5 * steps_per_epoch)`), the
loss (`softmax_cross_entropy` with label smoothing plus `weight_decay * sum(l2_loss)` over trainable
variables whose name lacks "batch_normalization"), `RMSPropOptimizer.minimize(loss, global_step)` under
control dependencies of the batch-norm updates, and `ExponentialMovingAverage(0.9999,
num_updates=global_step).apply(...)` under control dependencies of that train op (so the average sees
the incremented step) over the trainable variables and the batch-norm moving statistics.

That graph is written out here with plain TF ops and run in a `tf.compat.v1.Session` beside the
project's `Trainer.train_epoch` on the same batches, from the same initial values: the weights, both
RMSProp slots and every moving average must agree after every step. The model is small (conv, batch
norm, relu, pool, dense, named as the builder names layers) because what is compared is the step's
wiring, not the layers' arithmetic (the builder's layers are checked against released checkpoints
elsewhere). Batch norm in the TF1 graph does what Keras 3's does in training (biased batch variance,
`moving = moving * momentum + batch * (1 - momentum)`).

Two runs: from step 0 (warm-up from 0, the rate's drop at the end of warm-up, staircase boundaries,
the average's decay (1 + n) / (10 + n) at small n, where `decay_at(step)` instead of `decay_at(step + 1)`
shows) and resumed at global step 89,950 (the decay reaches its 0.9999 cap at n = 89,991, and warm-up
ends at 89,970). RMSProp's decay, momentum and epsilon are distinct, so a swap shows.
"""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas.train.trainer import Trainer
from nas.train.recipe import Recipe, TrainConfig
from search_space.builder import reference_weight_map

BATCH, SIZE, CHANNELS, FILTERS, CLASSES = 8, 6, 3, 4, 5
BN_MOMENTUM, BN_EPSILON = 0.9, 1e-3
CONFIG = TrainConfig(preset="reference", optimizer="rmsprop", rmsprop_decay=0.8, momentum=0.6, epsilon=0.02,
                     label_smoothing=0.1, weight_decay=0.05, ema_decay=0.9999, schedule="exponential",
                     warmup_epochs=5.0, decay_rate=0.97, decay_epochs=2.4, learning_rate=0.016, epochs=1)
STEPS = 60


def _keras_model():
    inputs = keras.Input((SIZE, SIZE, CHANNELS), name="images")
    x = keras.layers.Conv2D(FILTERS, 3, padding="same", use_bias=False, name="stem.conv2d",
                            kernel_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=1))(inputs)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="stem.tpu_batch_normalization",
                                        gamma_initializer=keras.initializers.RandomUniform(0.5, 1.5, seed=2),
                                        beta_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=3))(x)
    x = keras.layers.Activation("relu", name="stem.tpu_batch_normalization.act")(x)
    x = keras.layers.GlobalAveragePooling2D(name="head.pool")(x)
    x = keras.layers.Dense(CLASSES, name="head.dense",
                           kernel_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=4))(x)
    return keras.Model(inputs, x, name="tf1net")


class _Reference:
    """The reference's training graph, in a TF1 session, starting from `initial` at `start_step`."""

    def __init__(self, initial: dict, recipe: Recipe, start_step: int):
        c = recipe.config
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.images = tf.compat.v1.placeholder(tf.float32, (BATCH, SIZE, SIZE, CHANNELS))
            self.labels = tf.compat.v1.placeholder(tf.int32, (BATCH,))
            global_step = tf.compat.v1.train.create_global_step()
            v = {name: tf.compat.v1.get_variable(name, initializer=tf.constant(value), use_resource=True,
                                                 trainable=not name.endswith(("moving_mean", "moving_variance")))
                 for name, value in initial.items()}
            self.variables = v
            # The forward pass (training mode).
            x = tf.nn.conv2d(self.images, v["tf1net/stem/conv2d/kernel"], 1, "SAME")
            mean, variance = tf.nn.moments(x, [0, 1, 2])
            bn = "tf1net/stem/tpu_batch_normalization/"
            for stat, batch in (("moving_mean", mean), ("moving_variance", variance)):
                tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS, v[bn + stat].assign(
                    v[bn + stat] * BN_MOMENTUM + batch * (1.0 - BN_MOMENTUM)))
            x = tf.nn.batch_normalization(x, mean, variance, v[bn + "beta"], v[bn + "gamma"], BN_EPSILON)
            x = tf.reduce_mean(tf.nn.relu(x), [1, 2])
            logits = tf.matmul(x, v["tf1net/head/dense/kernel"]) + v["tf1net/head/dense/bias"]

            # utils.build_learning_rate, as main.py calls it (steps_per_epoch = images / batch, a float).
            steps_per_epoch = recipe.images_per_epoch / recipe.batch_size
            lr = tf.compat.v1.train.exponential_decay(recipe.base_lr, global_step, steps_per_epoch * c.decay_epochs,
                                                      c.decay_rate, staircase=True)
            warmup_steps = int(c.warmup_epochs * steps_per_epoch)
            warmup_lr = recipe.base_lr * tf.cast(global_step, tf.float32) / tf.cast(warmup_steps, tf.float32)
            lr = tf.cond(global_step < warmup_steps, lambda: warmup_lr, lambda: lr)

            onehot = tf.one_hot(self.labels, CLASSES)
            loss = tf.compat.v1.losses.softmax_cross_entropy(onehot, logits, label_smoothing=c.label_smoothing)
            loss += c.weight_decay * tf.add_n([tf.nn.l2_loss(t) for t in tf.compat.v1.trainable_variables()
                                               if "batch_normalization" not in t.name])
            self.optimizer = tf.compat.v1.train.RMSPropOptimizer(lr, decay=c.rmsprop_decay, momentum=c.momentum,
                                                                 epsilon=c.epsilon)
            with tf.control_dependencies(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)):
                train_op = self.optimizer.minimize(loss, global_step)
            self.ema = tf.compat.v1.train.ExponentialMovingAverage(c.ema_decay, num_updates=global_step)
            ema_vars = list(tf.compat.v1.trainable_variables()) + [
                t for t in tf.compat.v1.global_variables() if "moving_mean" in t.name or "moving_variance" in t.name]
            with tf.control_dependencies([train_op]):
                self.train_op = self.ema.apply(ema_vars)
            self.loss = loss
            self.session = tf.compat.v1.Session(graph=self.graph)
            self.session.run(tf.compat.v1.global_variables_initializer())
            self.session.run(global_step.assign(start_step))
            self.global_step = global_step

    def step(self, images, labels) -> float:
        return self.session.run([self.train_op, self.loss], {self.images: images, self.labels: labels})[1]

    def state(self) -> dict:
        """{name: weight}, {name/RMSProp: ms}, {name/RMSProp_1: momentum}, {name/ExponentialMovingAverage: ...}."""
        out = {}
        with self.graph.as_default():
            for name, var in self.variables.items():
                out[name] = var
                out[name + "/ExponentialMovingAverage"] = self.ema.average(var)
                if var.trainable:
                    out[name + "/RMSProp"] = self.optimizer.get_slot(var, "rms")
                    out[name + "/RMSProp_1"] = self.optimizer.get_slot(var, "momentum")
            out["global_step"] = self.global_step
        return self.session.run(out)


def _state(trainer: Trainer) -> dict:
    out = {name: var.numpy() for name, var in trainer.weights.items()}
    out.update({f"{name}/ExponentialMovingAverage": value for name, value in zip(trainer.all_names, trainer.ema.values())})
    out.update({name: slot.numpy() for name, slot in trainer.slot_map.items()})
    out["global_step"] = trainer.step
    return out


@pytest.mark.parametrize("start,images", [(0, 37), (89_950, 17_994 * BATCH)], ids=["from-0", "resumed-past-cap"])
def test_trainer_matches_tf1_graph_step_by_step(start, images):
    """`images` sets the schedule's steps_per_epoch (images / batch): from 0, 4.625 (warm-up ends at 23,
    decays at 33.3, 44.4, 55.5); resumed, 17,994 (warm-up ends at 89,970, where the rate drops to 0.97^2)."""
    keras.utils.set_random_seed(0)
    model = _keras_model()
    recipe = Recipe(CONFIG, "reference", BATCH, STEPS, 0.5, images_per_epoch=images)
    trainer = Trainer(model, types.SimpleNamespace(num_classes=CLASSES), recipe, tf.distribute.get_strategy(),
                      reference_weight_map(model))
    assert len(trainer.decayed) == 3  # the conv and dense kernels and the dense bias: not batch norm's
    trainer.step = start  # a resumed run: the step restored, the slots and averages fresh on both sides
    reference = _Reference({n: v.numpy() for n, v in trainer.weights.items()}, recipe, start)

    rng = np.random.default_rng(0)
    images_ = rng.normal(size=(STEPS, BATCH, SIZE, SIZE, CHANNELS)).astype(np.float32)
    labels = rng.integers(0, CLASSES, size=(STEPS, BATCH)).astype(np.int32)
    lrs, compared = [], []

    def compare():
        i = trainer.step - start - 1
        reference.step(images_[i], labels[i])
        ours, theirs = _state(trainer), reference.state()
        assert sorted(ours) == sorted(theirs)
        assert ours["global_step"] == theirs["global_step"] == start + i + 1
        for name in theirs:
            np.testing.assert_allclose(ours[name], theirs[name], rtol=2e-5, atol=1e-6,
                                       err_msg=f"{name} after step {start + i}")
        lrs.append(trainer.lr(trainer.step - 1))
        compared.append(name)

    trainer.train_epoch(tf.data.Dataset.from_tensor_slices((images_, labels)), epoch=0, on_step=compare)
    assert len(compared) == STEPS
    # The run covered what it claims to: warm-up, the drop at its end, and (resumed) the capped decay.
    assert lrs[0] == 0.0 if start == 0 else lrs[0] > 0
    spe = images / BATCH
    warmup = int(5 * spe)
    assert start < warmup < start + STEPS
    assert lrs[warmup - start] < lrs[warmup - start - 1]
    if start:
        capped = [n for n in range(start + 1, start + STEPS + 1) if (1 + n) / (10 + n) >= 0.9999]
        assert 15 <= len(capped) < STEPS  # steps below the cap, then at least 15 at it
