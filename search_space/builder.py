"""One Keras builder for every family: it walks the ops (`search_space.ops`) of `ModelSpec.layers()`.

Layer names mirror the reference's TF1 variable scopes with '.' for '/' (Keras forbids '/'):
`stem.conv2d`, `blocks_3.tpu_batch_normalization_1`, `blocks_5.se.conv2d`, `head.dense`, written and
read only through `search_space.layer_names`, so a released checkpoint variable
`<model>/<scope>/<weight>` maps to layer `<scope with .>`.
Initialisers are the reference's: conv kernels N(0, sqrt(2 / fan_out)), dense U(+-1/sqrt(out)).
"""

from __future__ import annotations

import collections
import math

import keras
from keras import layers as kl

from search_space import layer_names as ln
from search_space.ops import Op, block_kinds
from search_space.spec import Layer, ModelSpec

CONV_INIT = keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")
DENSE_INIT = keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_out", distribution="uniform")
_ACTIVATIONS = {"relu": "relu", "relu6": "relu6", "swish": "swish"}


class _Scope:
    """Names layers `<scope>.<type>`, `<scope>.<type>_1`, ... in creation order, as TF1 layers did."""

    def __init__(self, role: str, block: int | None):
        self.role, self.block = role, block
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def __call__(self, kind: str, sub: str = "") -> ln.LayerName:
        n = self.counts[sub, kind]
        self.counts[sub, kind] += 1
        return ln.LayerName(self.role, self.block, kind, sub, n)


class _Ops:
    def __init__(self, spec: ModelSpec, seed: int | None):
        self.spec = spec
        self.seed = seed
        self.act = _ACTIVATIONS[spec.activation]

    def _init(self, base):
        """A fresh initialiser per layer; with a seed, each layer gets its own, reproducibly."""
        config = base.get_config()
        if self.seed is not None:
            config["seed"] = self.seed
            self.seed += 1
        return base.__class__.from_config(config)

    def conv(self, x, name: ln.LayerName, filters, kernel, stride=1, use_bias=False):
        return kl.Conv2D(
            filters, kernel, strides=stride, padding="same", use_bias=use_bias,
            kernel_initializer=self._init(CONV_INIT), name=name.keras,
        )(x)

    def depthwise(self, x, name: ln.LayerName, kernel, stride):
        return kl.DepthwiseConv2D(
            kernel, strides=stride, padding="same", use_bias=False,
            depthwise_initializer=self._init(CONV_INIT), name=name.keras,
        )(x)

    def bn(self, x, name: ln.LayerName, activate=True):
        x = kl.BatchNormalization(momentum=self.spec.bn_momentum, epsilon=self.spec.bn_epsilon, name=name.keras)(x)
        return kl.Activation(self.act, name=name.activated().keras)(x) if activate else x


def _conv(ops: _Ops, x, op: Op, name: _Scope):
    return ops.conv(x, name(ln.CONV), op.out_ch, op.kernel, op.stride)


def _se(ops: _Ops, x, op: Op, name: _Scope):
    se = kl.GlobalAveragePooling2D(keepdims=True, name=name("pool", "se").keras)(x)
    se = ops.conv(se, name(ln.CONV, "se"), op.hidden, 1, use_bias=True)
    se = kl.Activation(ops.act, name=name("act", "se").keras)(se)
    se = ops.conv(se, name(ln.CONV, "se"), op.out_ch, 1, use_bias=True)
    se = kl.Activation("sigmoid", name=name("gate", "se").keras)(se)
    return kl.Multiply(name=name("excite", "se").keras)([x, se])


def _pool(ops: _Ops, x, op: Op, name: _Scope):
    # Whole-map average pooling, not a MEAN reduction: the reference's Edge TPU-friendly choice.
    pooled = kl.AveragePooling2D(pool_size=op.in_size, name=name("pool").keras)(x)
    return kl.Flatten(name=name("flatten").keras)(pooled)


def _dense(ops: _Ops, x, op: Op, name: _Scope):
    if ops.spec.dropout > 0:
        x = kl.Dropout(ops.spec.dropout, name=name("dropout").keras)(x)
    return kl.Dense(op.out_ch, kernel_initializer=ops._init(DENSE_INIT), name=name(ln.DENSE).keras)(x)


# Each op kind of search_space.ops as Keras layers; convs are followed by their batch norm there.
_KERAS = {
    "conv": _conv,
    "conv1x1": _conv,
    "depthwise": lambda ops, x, op, name: ops.depthwise(x, name(ln.DEPTHWISE), op.kernel, op.stride),
    "se": _se,
    "pool": _pool,
    "dense": _dense,
}


def _apply(ops: _Ops, x, layer: Layer, block: int, drop_connect: bool):
    """The layer's ops in order, named in the reference's scope: `blocks_<block>`, or the layer's role."""
    inputs = x
    name = _Scope(ln.BLOCKS, block) if layer.kind in block_kinds() else _Scope(layer.kind, None)
    for op in layer.ops:
        if op.kind == "add":
            drop = 1.0 - layer.survival_prob
            if drop > 0 and drop_connect:
                x = kl.Dropout(drop, noise_shape=(None, 1, 1, 1), name=name("drop_connect").keras)(x)
            x = kl.Add(name=name("add").keras)([x, inputs])
            continue
        x = _KERAS[op.kind](ops, x, op, name)
        if op.norm:
            x = ops.bn(x, name(ln.BATCH_NORM), activate=op.act)
    return x


def build_model(
    spec: ModelSpec, seed: int | None = None, drop_connect: bool = True, batch_size: int | None = None
) -> keras.Model:
    """The Keras model of `spec`: inputs are normalised images `(x - mean) / std`, outputs logits."""
    ops = _Ops(spec, seed)
    # A fixed batch size (1 for TFLite) lets the converter fold the flatten into a static RESHAPE.
    inputs = keras.Input((spec.resolution, spec.resolution, 3), batch_size=batch_size, name="images")
    x = inputs
    for i, layer in enumerate(spec.layers()):
        x = _apply(ops, x, layer, i - 1, drop_connect)
    return keras.Model(inputs, x, name=spec.name)


def build_layer_model(layer: Layer, spec: ModelSpec, seed: int | None = None) -> keras.Model:
    """One concrete layer alone, batch 1, on an input of its shape: what a latency table profiles.

    It is built by the same code as the whole model, so a table entry times exactly that layer.
    """
    ops = _Ops(spec, seed)
    inputs = keras.Input((layer.in_size, layer.in_size, layer.in_ch), batch_size=1, name="x")
    return keras.Model(inputs, _apply(ops, inputs, layer, 0, drop_connect=False))


def trainable_params(model: keras.Model) -> int:
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))


# Keras 3 calls every conv weight "kernel"; the reference's depthwise layers called it so.
_REFERENCE_WEIGHT_NAMES = {ln.DEPTHWISE: {"kernel": "depthwise_kernel"}}


def reference_weight_map(model: keras.Model) -> dict[str, "keras.Variable"]:
    """`{reference TF1 variable name: Keras variable}` for every weight of a built model."""
    mapping = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        name = ln.parse(layer.name)
        renames = _REFERENCE_WEIGHT_NAMES.get(name.kind, {})
        for weight in layer.weights:
            mapping[f"{model.name}/{name.reference_scope}/{renames.get(weight.name, weight.name)}"] = weight
    return mapping
