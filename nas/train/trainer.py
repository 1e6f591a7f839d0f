"""The training loop: a `tf.function` step under `strategy.run`, TF1 updates applied per device.

Each replica computes its share of the loss (sum over its images / global batch, plus the L2 term /
replicas), the gradients are summed across replicas (`batch_reduce_to`), and every variable is
updated by `extended.update` with the TF1 kernel on its local copy, then the moving average steps
towards the new weights and batch-norm statistics. `model.fit` is not used: it would apply Keras 3's
optimiser and EMA, which differ from the recipe (optim.py, ema.py).

Evaluation and checkpoints use the averaged weights (swapped in, then back), as the reference does.
"""

from __future__ import annotations

import math
import re
import time

import numpy as np
import tensorflow as tf

from nas.train import data as train_data
from nas.train import state
from nas.train.ema import MovingAverage
from nas.train.optim import Optimizer, OptimizerConfig
from nas.train.schedule import learning_rate
from search_space import layer_names


class Trainer:
    def __init__(self, model, spec, recipe, strategy, weight_names: dict):
        """`weight_names`: {reference name: keras variable} of `model` (built under strategy.scope())."""
        c = recipe.config
        self.model, self.spec, self.recipe, self.strategy = model, spec, recipe, strategy
        self.weights = weight_names
        by_id = {id(v): n for n, v in weight_names.items()}
        self.train_vars = list(model.trainable_variables)
        self.train_names = [by_id[id(v)] for v in self.train_vars]
        # The reference's L2: trainable variables whose name lacks "batch_normalization", i.e. not batch norm's.
        self.decayed = [v for v, n in zip(self.train_vars, self.train_names)
                        if not layer_names.parse_variable(n)[1].is_batch_norm]
        self.all_names = list(weight_names)
        self.all_vars = [weight_names[n] for n in self.all_names]
        opt = OptimizerConfig(c.optimizer, c.rmsprop_decay, c.momentum, c.epsilon)
        with strategy.scope():
            self.optimizer = Optimizer(opt, [v.value for v in self.train_vars], self.train_names)
            self.ema = MovingAverage([v.value for v in self.all_vars], c.ema_decay)
        self.slot_map = self.optimizer.slot_map(self.train_names)
        self.step = 0
        self._step_fn = self._make_step()
        self._predict = tf.function(lambda x: model(x, training=False))

    def _make_step(self, average: bool = True):
        """The step; `average=False` leaves the moving average out (the benchmark's ablation only)."""
        strategy, recipe, c = self.strategy, self.recipe, self.recipe.config
        replicas = strategy.num_replicas_in_sync
        classes = self.spec.num_classes
        opt, ema = self.optimizer, self.ema
        tvars = [v.value for v in self.train_vars]
        avars = [v.value for v in self.all_vars]

        def apply(dist, grads, lr, step):
            reduced = dist.extended.batch_reduce_to(tf.distribute.ReduceOp.SUM, list(zip(grads, tvars)))
            updates = []
            for g, v, *slots in zip(reduced, tvars, *opt.slots):
                updates.append(dist.extended.update(
                    v, lambda var, g, *slots: opt.apply(var, g, slots, lr, step), args=(g, *slots), group=False))
            if not average:
                return
            # The average sees the incremented step, as TF1's did.
            one_minus = 1.0 - ema.decay_at(step + 1)
            with tf.control_dependencies(tf.nest.flatten(updates)):
                dist.extended.update(ema.shadow, lambda s, *vs: ema.update(s, vs, one_minus), args=tuple(avars),
                                     group=False)

        def replica(images, labels, lr, step):
            with tf.GradientTape() as tape:
                logits = tf.cast(self.model(images, training=True), tf.float32)
                onehot = tf.one_hot(labels, classes)
                smooth = onehot * (1.0 - c.label_smoothing) + c.label_smoothing / classes
                ce = tf.nn.softmax_cross_entropy_with_logits(smooth, logits)
                loss = tf.reduce_sum(ce) / recipe.batch_size
                if c.weight_decay and self.decayed:
                    loss += c.weight_decay * tf.add_n([tf.nn.l2_loss(v) for v in self.decayed]) / replicas
            grads = tape.gradient(loss, self.train_vars)
            tf.distribute.get_replica_context().merge_call(apply, args=(grads, lr, step))
            return loss

        @tf.function
        def step_fn(images, labels, lr, step):
            losses = strategy.run(replica, args=(images, labels, lr, step))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

        return step_fn

    # -- state -------------------------------------------------------------------------------------

    def save(self, run_dir) -> str:
        shadows = dict(zip(self.all_names, self.ema.values()))
        return state.save(run_dir, self.step, self.weights, shadows, self.slot_map)

    def restore(self, prefix: str) -> None:
        shadows = dict(zip(self.all_names, self.ema.values()))  # filled in place by state.restore
        self.step = state.restore(prefix, self.weights, shadows, self.slot_map)
        self.ema.assign([shadows[n] for n in self.all_names])

    def swap_average(self):
        """Exchange the weights and their averages (call twice to undo)."""
        averages = self.ema.values()
        self.ema.assign([var.numpy() for var in self.all_vars])
        for var, average in zip(self.all_vars, averages):
            var.assign(average)

    # -- epochs ------------------------------------------------------------------------------------

    def lr(self, step: int) -> float:
        return learning_rate(step, **self.recipe.lr_args())

    def train_epoch(self, batches: tf.data.Dataset, epoch: int, on_step=None) -> dict:
        """One epoch over `batches` (`train_data.epoch_dataset`): exactly `steps_per_epoch` of them."""
        from nas.common.errors import ConfigError

        self._seed_dropout(epoch)
        dist = iter(self.strategy.experimental_distribute_dataset(batches))
        start, losses, lr = time.perf_counter(), [], 0.0
        for _ in range(self.recipe.steps_per_epoch):
            try:  # only reading the data: a failing step is not the files' fault
                batch_images, batch_labels = next(dist)
            except tf.errors.OpError as exc:
                # The message leads with the op's function node ({{function_node ...}}): noise to a user.
                reason = re.sub(r"^\{\{.*?\}\}\s*", "", exc.message.splitlines()[0])
                raise ConfigError(f"data.path: cannot read the training data: {reason}") from None
            except StopIteration:
                raise ConfigError(f"data: the training data ended after {len(losses)} of {self.recipe.steps_per_epoch} "
                                  "batches (did the files change after they were counted?)") from None
            lr = self.lr(self.step)
            loss = self._step_fn(batch_images, batch_labels, tf.constant(lr, tf.float32),
                                 tf.constant(self.step, tf.int64))
            self.step += 1
            losses.append(float(loss))
            if not math.isfinite(losses[-1]):
                from nas.common.errors import UserError

                raise UserError(f"training loss became {losses[-1]} at step {self.step}: lower the learning rate")
            if on_step:
                on_step()
        seconds = time.perf_counter() - start
        return {"loss": float(np.mean(losses)), "lr": lr, "seconds": seconds,
                "images_per_s": len(losses) * self.recipe.batch_size / max(seconds, 1e-9)}

    def _seed_dropout(self, epoch: int) -> None:
        """Dropout and drop-connect masks come from Keras seed generators whose state is not a weight:
        setting it from (seed, epoch) makes a resumed epoch draw the masks an uninterrupted one does."""
        for i, layer in enumerate(self.model.layers):
            generator = getattr(layer, "seed_generator", None)
            if generator is not None:
                state = generator.state
                state.assign(np.array([self.recipe.config.seed * 1000 + i, epoch], state.dtype))

    def evaluate(self, images: np.ndarray, labels: np.ndarray, averaged: bool = True) -> tuple[float, float]:
        """Held-out (top-1, top-5) of the averaged (or raw) weights."""
        if averaged:
            self.swap_average()
        try:
            logits = np.concatenate([self._predict(x).numpy() for x in train_data.eval_batches(images, self.spec)])
        finally:
            if averaged:
                self.swap_average()
        top = np.argsort(-logits, axis=1)[:, :5]
        return float(np.mean(top[:, 0] == labels)), float(np.mean((top == labels[:, None]).any(axis=1)))
