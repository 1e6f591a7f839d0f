"""The one compiled step of the one-shot search (TuNAS's order), traced once for every path.

    train the path on a training batch (batch statistics, the proxy's optimiser) ->
    score the same path, after that update, on a held-out validation batch (batch statistics)

The path arrives as tensors (`Path.tensors()`), so a new architecture never re-traces the step.
The optimiser is the proxy's (`ProxyConfig.optimizer`: Adam or Nesterov SGD, TensorFlow's fused
update ops as the proxy applies them), with one difference a shared supernet needs: an entry the
path does not use keeps its value and its optimiser slots (`Supernet.gates`), so momentum from
earlier steps cannot move weights of branches and channels this path left alone.
"""

from __future__ import annotations

import tensorflow as tf

from nas.oneshot.supernet import Supernet, _PathTensors
from nas.proxy.task import ADAM_BETA2, ADAM_EPSILON, ProxyConfig


class SupernetStep:
    def __init__(self, net: Supernet, proxy: ProxyConfig, weight_decay: float = 0.0):
        self.net, self.proxy, self.weight_decay = net, proxy, weight_decay
        self.variables = net.trainable
        count = 2 if proxy.optimizer == "adam" else 1
        self.slots = [[tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables] for _ in range(count)]
        self.step = tf.function(self._step, autograph=False)
        self.evaluate = tf.function(self._evaluate, autograph=False)

    def _apply(self, var, grad, slots, lr, t):
        c = self.proxy
        if c.optimizer == "adam":
            return tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=slots[0].handle, v=slots[1].handle, beta1_power=tf.pow(c.momentum, t),
                beta2_power=tf.pow(ADAM_BETA2, t), lr=lr, beta1=c.momentum, beta2=ADAM_BETA2,
                epsilon=ADAM_EPSILON, grad=grad)
        return tf.raw_ops.ResourceApplyKerasMomentum(var=var.handle, accum=slots[0].handle, lr=lr, grad=grad,
                                                     momentum=c.momentum, use_nesterov=True)

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
        t = tf.cast(updates, tf.float32)
        for i, (var, grad, gate) in enumerate(zip(self.variables, grads, gates)):
            grad = tf.zeros_like(var) if grad is None else grad
            holders = [var] + [s[i] for s in self.slots]
            olds = [h.read_value() for h in holders]
            with tf.control_dependencies(olds):
                applied = self._apply(var, grad, [s[i] for s in self.slots], learning_rate, t)
            with tf.control_dependencies([applied]):
                for holder, old in zip(holders, olds):
                    holder.assign(old + gate * (holder.read_value() - old))
        return loss, self._accuracy(val_images, val_labels, path)

    def _accuracy(self, images, labels, path):
        logits = self.net(images, path, batch_stats=True, update_stats=False)
        return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=labels.dtype), labels), tf.float32))

    def _evaluate(self, images, labels, weights, residual, in_ch, expanded_ch, out_ch):
        return self._accuracy(images, labels, _PathTensors(weights, residual, in_ch, expanded_ch, out_ch))
