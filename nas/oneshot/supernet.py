"""The weight-sharing supernet (TuNAS's method, in TensorFlow 2 / Keras 3 initialisers).

It walks the same op lists the builder walks (`SupernetPlan`, from `search_space.ops`), holding each
op's weights at the slot's largest widths. A forward pass takes a path's encoding as tensors:

- branch b of slot i runs only where its weight is above 0 (`tf.cond`: one branch on a sampled
  path, all of them, averaged, during op warm-up; none on a skipped slot, which is the identity);
- every op's output is multiplied by the mask of its path width (the first k channels), after its
  batch norm and activation, so the channels a path does not have stay exactly zero and the next
  op's extra input channels see zeros (its kernel rows there get no gradient);
- the residual is switched per branch by the path's own `Layer.residual`.

Batch norm: `batch_stats=True` normalises by the batch's statistics (TuNAS's stateless batch norm
during the search); the moving statistics are kept too, updated only on the channels and branches a
path runs, so that a path taken out (`path_model`) carries statistics for inference. `gates(path)`
says, per trainable variable, which of its entries the path uses: the step keeps every other entry
(and its optimiser slots) unchanged, and the L2 term sums only gated kernels.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from nas.oneshot.plan import BranchOp, SupernetPlan
from search_space.builder import CONV_INIT, DENSE_INIT
from search_space.ops import Op


class _Norm(tf.Module):
    def __init__(self, channels: int, name: str):
        super().__init__(name=name)
        self.gamma = tf.Variable(tf.ones([channels]), name="gamma")
        self.beta = tf.Variable(tf.zeros([channels]), name="beta")
        self.moving_mean = tf.Variable(tf.zeros([channels]), trainable=False, name="moving_mean")
        self.moving_variance = tf.Variable(tf.ones([channels]), trainable=False, name="moving_variance")

    def __call__(self, x, mask, batch_stats: bool, update: bool, momentum: float, epsilon: float):
        if batch_stats:
            # The same two calls Keras 3's BatchNormalization makes, so a built model agrees exactly.
            mean, variance = keras.ops.moments(x, axes=[0, 1, 2])
            if update:
                keep = 1.0 if mask is None else mask
                for var, value in ((self.moving_mean, mean), (self.moving_variance, variance)):
                    moved = var * momentum + value * (1.0 - momentum)
                    var.assign(var + keep * (moved - var))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return keras.ops.batch_normalization(x, mean, variance, axis=-1, offset=self.beta, scale=self.gamma,
                                             epsilon=epsilon)

    @property
    def arrays(self) -> list:
        return [self.gamma, self.beta, self.moving_mean, self.moving_variance]


class _Weighted(tf.Module):
    """One op's weights at full width (kernel, bias where the op has one) and its batch norm."""

    def __init__(self, op: Op, seed: int | None, name: str):
        super().__init__(name=name)
        self.op = op
        init = lambda base, shape: base.__class__.from_config({**base.get_config(), "seed": seed})(shape)  # noqa: E731
        if op.kind in ("conv", "conv1x1"):
            self.kernel = tf.Variable(init(CONV_INIT, (op.kernel, op.kernel, op.in_ch, op.out_ch)), name="kernel")
        elif op.kind == "depthwise":
            self.kernel = tf.Variable(init(CONV_INIT, (op.kernel, op.kernel, op.out_ch, 1)), name="kernel")
        elif op.kind == "dense":
            self.kernel = tf.Variable(init(DENSE_INIT, (op.in_ch, op.out_ch)), name="kernel")
            self.bias = tf.Variable(tf.zeros([op.out_ch]), name="bias")
        else:
            raise ValueError(f"op kind {op.kind!r} has no masked form")
        self.norm = _Norm(op.out_ch, name=name + "_bn") if op.norm else None

    def apply(self, x):
        op = self.op
        if op.kind in ("conv", "conv1x1"):
            return tf.nn.conv2d(x, self.kernel, op.stride, "SAME")
        if op.kind == "depthwise":
            return tf.nn.depthwise_conv2d(x, self.kernel, [1, op.stride, op.stride, 1], "SAME")
        return tf.matmul(x, self.kernel) + self.bias

    @property
    def arrays(self) -> list:
        """In the order the builder's layers hold them: kernel [bias], then gamma, beta, mean, variance."""
        out = [self.kernel] + ([self.bias] if self.op.kind == "dense" else [])
        return out + (self.norm.arrays if self.norm else [])


@dataclasses.dataclass
class _PathTensors:
    weights: tf.Tensor  # [slots, branches]
    residual: tf.Tensor
    in_ch: tf.Tensor
    expanded_ch: tf.Tensor
    out_ch: tf.Tensor


class Supernet(tf.Module):
    def __init__(self, plan: SupernetPlan, seed: int | None = 0):
        super().__init__(name="supernet")
        self.plan = plan
        spec = plan.skeleton
        self.activation = keras.activations.get(spec.activation)
        self.momentum, self.epsilon, self.dropout = spec.bn_momentum, spec.bn_epsilon, spec.dropout
        counter = iter(range(10 ** 9))
        fresh = lambda: None if seed is None else seed + next(counter)  # noqa: E731
        stem_ops, head_ops = plan.stem.ops, plan.head.ops
        self.stem = _Weighted(stem_ops[0], fresh(), "stem")
        self.slot_ops: list[dict[tuple, _Weighted]] = []
        for i, slot in enumerate(plan.slots):
            owned: dict[tuple, _Weighted] = {}
            for branch in slot.ops:
                for bop in branch:
                    if bop.key not in owned:
                        owned[bop.key] = _Weighted(bop.op, fresh(), f"slot{i}_{len(owned)}")
            self.slot_ops.append(owned)
        last = plan.slots[-1].max_out
        head_conv, _, dense = head_ops
        self.head_conv = _Weighted(dataclasses.replace(head_conv, in_ch=last), fresh(), "head_conv")
        self.head_dense = _Weighted(dense, fresh(), "head_dense")
        self._trainable = [v for w in self._modules() for v in w.arrays if v.trainable]

    def _modules(self) -> list[_Weighted]:
        return [self.stem] + [w for owned in self.slot_ops for w in owned.values()] + [self.head_conv, self.head_dense]

    @property
    def trainable(self) -> list[tf.Variable]:
        return self._trainable

    @property
    def stat_variables(self) -> list[tf.Variable]:
        return [v for w in self._modules() for v in w.arrays if not v.trainable]

    # The forward pass ---------------------------------------------------------------------------

    @staticmethod
    def path_tensors(path) -> _PathTensors:
        return _PathTensors(*(tf.convert_to_tensor(a) for a in path))

    def _masks(self, p: _PathTensors, i: int) -> dict[str, tf.Tensor]:
        slot = self.plan.slots[i]
        return {"in": tf.sequence_mask(p.in_ch[i], slot.max_in, tf.float32),
                "expanded": tf.sequence_mask(p.expanded_ch[i], slot.max_expanded, tf.float32),
                "out": tf.sequence_mask(p.out_ch[i], slot.max_out, tf.float32)}

    def _op(self, w: _Weighted, x, mask, batch_stats, update):
        x = w.apply(x)
        if w.norm is not None:
            x = w.norm(x, mask, batch_stats, update, self.momentum, self.epsilon)
        if w.op.act:
            x = self.activation(x)
        return x if mask is None else x * mask

    def _branch(self, i: int, ops: tuple[BranchOp, ...], x, masks, batch_stats, update):
        for bop in ops:
            x = self._op(self.slot_ops[i][bop.key], x, masks[bop.out_role], batch_stats, update)
        return x

    def __call__(self, images, path, batch_stats: bool = True, update_stats: bool = False, dropout_seed=None):
        """Logits of `path` (a `Path`'s tensors, or `_PathTensors`) on normalised images; with a
        `dropout_seed` (shape [2]) the head's dropout is on, drawn statelessly from that seed."""
        p = path if isinstance(path, _PathTensors) else self.path_tensors(path)
        x = self._op(self.stem, images, None, batch_stats, update_stats)
        for i, slot in enumerate(self.plan.slots):
            masks = self._masks(p, i)
            first = slot.ops[0][0].op
            size, stride = first.in_size, max(o.op.stride for o in slot.ops[0])
            out_size = -(-size // stride)
            shortcut = None
            if stride == 1:  # the input, fitted to the output's width (channels past a path's width are 0)
                shortcut = x[..., :slot.max_out] if slot.max_in >= slot.max_out else tf.pad(
                    x, [[0, 0], [0, 0], [0, 0], [0, slot.max_out - slot.max_in]])
            total = None
            for b, ops in enumerate(slot.ops):
                weight, residual = p.weights[i, b], p.residual[i, b]

                def run(ops=ops, weight=weight, residual=residual):
                    y = self._branch(i, ops, x, masks, batch_stats, update_stats)
                    if shortcut is not None:
                        y = y + residual * shortcut
                    return weight * y

                def idle():
                    return tf.zeros([tf.shape(x)[0], out_size, out_size, slot.max_out])

                y = tf.cond(weight > 0, run, idle)
                total = y if total is None else total + y
            if slot.position:  # a tail slot a path skips is the identity
                total = total + (1.0 - tf.reduce_sum(p.weights[i])) * shortcut
            x = total
        x = self._op(self.head_conv, x, None, batch_stats, update_stats)
        x = tf.reduce_mean(x, axis=[1, 2])
        if dropout_seed is not None and self.dropout > 0:
            x = tf.nn.experimental.stateless_dropout(x, self.dropout, seed=dropout_seed)
        return self.head_dense.apply(x)

    # What a path uses ---------------------------------------------------------------------------

    def gates(self, path) -> list[tf.Tensor]:
        """Per trainable variable (in `trainable` order), 1 where the path uses it, else 0 (broadcastable)."""
        p = path if isinstance(path, _PathTensors) else self.path_tensors(path)
        gates: dict[int, tf.Tensor] = {}
        last_out = tf.sequence_mask(p.out_ch[-1], self.plan.slots[-1].max_out, tf.float32)
        for v in self.stem.arrays + self.head_dense.arrays + self.head_conv.norm.arrays:
            gates[id(v)] = tf.ones([])
        gates[id(self.head_conv.kernel)] = last_out[None, None, :, None]
        for i, slot in enumerate(self.plan.slots):
            masks = self._masks(p, i)
            users: dict[tuple, list[int]] = {}
            roles: dict[tuple, BranchOp] = {}
            for b, ops in enumerate(slot.ops):
                for bop in ops:
                    users.setdefault(bop.key, []).append(b)
                    roles[bop.key] = bop
            for key, w in self.slot_ops[i].items():
                active = tf.cast(tf.reduce_any(tf.gather(p.weights[i], users[key]) > 0), tf.float32)
                bop = roles[key]
                out_mask = active * masks[bop.out_role]
                if w.op.kind == "depthwise":
                    gates[id(w.kernel)] = out_mask[None, None, :, None]
                else:
                    gates[id(w.kernel)] = masks[bop.in_role][None, None, :, None] * out_mask[None, None, None, :]
                for v in w.norm.arrays:
                    gates[id(v)] = out_mask
        return [gates[id(v)] for v in self._trainable]

    def l2(self, path, gates=None) -> tf.Tensor:
        """Half the sum of squares of the kernels' gated entries (the L2 term sees only the path)."""
        gates = self.gates(path) if gates is None else gates
        kernels = {id(w.kernel) for w in self._modules()}
        return tf.add_n([0.5 * tf.reduce_sum(tf.square(v * g)) for v, g in zip(self._trainable, gates)
                         if id(v) in kernels])

    # Taking a path out --------------------------------------------------------------------------

    def path_arrays(self, decisions) -> list[np.ndarray]:
        """The path's weights, sliced to its widths, in the order the builder's layers hold them."""
        plan = self.plan
        path = plan.encode(decisions)
        out = [a.numpy() for a in self.stem.arrays]
        for i, slot in enumerate(plan.slots):
            chosen = np.flatnonzero(path.branch_weights[i])
            if not len(chosen):
                continue
            widths = {"in": path.in_ch[i], "expanded": path.expanded_ch[i], "out": path.out_ch[i]}
            for bop in slot.ops[int(chosen[0])]:
                w = self.slot_ops[i][bop.key]
                cin, cout = widths[bop.in_role], widths[bop.out_role]
                kernel = w.kernel.numpy()
                out.append(kernel[:, :, :cout, :] if w.op.kind == "depthwise" else kernel[:, :, :cin, :cout])
                out += [a.numpy()[:cout] for a in w.norm.arrays]
        out.append(self.head_conv.kernel.numpy()[:, :, :int(path.out_ch[-1]), :])
        out += [a.numpy() for a in self.head_conv.norm.arrays]
        out += [a.numpy() for a in self.head_dense.arrays]
        return out

    def path_model(self, decisions, dropout: bool = True):
        """The ordinary builder's model of the path (proxy size), holding the supernet's weights for it."""
        from search_space.builder import build_model

        spec = self.plan.path_spec(decisions)
        if not dropout:
            spec = dataclasses.replace(spec, dropout=0.0)
        model = build_model(spec, drop_connect=False)
        load_arrays(model, self.path_arrays(decisions))
        return model


def load_arrays(model, arrays: list[np.ndarray]) -> None:
    """Set a built model's weights from `path_arrays` (its weighted layers, in order)."""
    weights = [w for layer in model.layers for w in layer.weights]
    if len(weights) != len(arrays):
        raise ValueError(f"the built model has {len(weights)} weights, the path {len(arrays)}")
    for w, a in zip(weights, arrays):
        if tuple(w.shape) != a.shape:
            raise ValueError(f"weight {w.path} has shape {tuple(w.shape)}, the path's is {a.shape}")
        w.assign(a)
