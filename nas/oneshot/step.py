"""The one compiled step of the one-shot search (TuNAS's order), traced once for every path.

    train the path on a training batch (batch statistics, the proxy's optimiser) ->
    score the same path, after that update, on a held-out validation batch (batch statistics)

The path arrives as tensors (`Path.tensors()`), so a new architecture never re-traces the step.
The optimiser is the proxy's (`ProxyConfig.optimizer`), applied by the project's one optimiser step
(`nas.train.optim.Optimizer`, as the proxy builds it), with one difference a shared supernet needs: an
entry the path does not use keeps its value and its optimiser slots (`Supernet.gates`), so momentum
from earlier steps cannot move weights of branches and channels this path left alone.
"""

from __future__ import annotations

import tensorflow as tf

from nas.oneshot.supernet import Supernet, _PathTensors
from nas.proxy.task import ADAM_EPSILON, ProxyConfig
from nas.train.optim import Optimizer, OptimizerConfig


class SupernetStep:
    def __init__(self, net: Supernet, proxy: ProxyConfig, weight_decay: float = 0.0):
        self.net, self.proxy, self.weight_decay = net, proxy, weight_decay
        self.variables = net.trainable
        self.optimizer = Optimizer(OptimizerConfig(proxy.optimizer, momentum=proxy.momentum, epsilon=ADAM_EPSILON),
                                   self.variables, [v.name.split(":")[0] for v in self.variables])
        self.slots = self.optimizer.slots
        self.step = tf.function(self._step, autograph=False)
        self.evaluate = tf.function(self._evaluate, autograph=False)

    def _step(self, images, labels, val_images, val_labels, weights, residual, in_ch, expanded_ch, out_ch,
              learning_rate, updates, seed):
        """One weight update of the path and its validation accuracy after it; `updates` counts this
        update (1 on the first), for Adam's bias correction; `seed` ([2] ints) draws the dropout."""
        net = self.net
        path = _PathTensors(weights, residual, in_ch, expanded_ch, out_ch)
        gates = net.gates(path)
        with tf.GradientTape() as tape:
            logits = net(images, path, batch_stats=True, update_stats=True, dropout_seed=seed)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            total = loss + self.weight_decay * net.l2(path, gates) if self.weight_decay else loss
        grads = tape.gradient(total, self.variables)
        before = tf.cast(updates, tf.int64) - 1  # the optimiser counts the updates before this one
        for i, (var, grad, gate) in enumerate(zip(self.variables, grads, gates)):
            grad = tf.zeros_like(var) if grad is None else grad
            holders = [var] + [s[i] for s in self.slots]
            olds = [h.read_value() for h in holders]
            with tf.control_dependencies(olds):
                applied = self.optimizer.apply(var, grad, [s[i] for s in self.slots], learning_rate, before)
            with tf.control_dependencies([applied]):
                for holder, old in zip(holders, olds):
                    holder.assign(old + gate * (holder.read_value() - old))
        return loss, self._accuracy(val_images, val_labels, path)

    def _accuracy(self, images, labels, path):
        logits = self.net(images, path, batch_stats=True, update_stats=False)
        return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=labels.dtype), labels), tf.float32))

    def _evaluate(self, images, labels, weights, residual, in_ch, expanded_ch, out_ch):
        return self._accuracy(images, labels, _PathTensors(weights, residual, in_ch, expanded_ch, out_ch))
