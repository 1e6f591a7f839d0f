"""A model's *work summary* for the Edge TPU cost model: MACs per op kind, op count, parameter and I/O
bytes, from the ops of a `ModelSpec`'s layers (`search_space.ops`) or of an int8 .tflite file
(`latency.tflite_ops`). Pure Python: no TensorFlow, no NumPy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from search_space.ops import Op
from search_space.spec import Layer, ModelSpec

OP_KINDS = ("conv", "depthwise", "conv1x1", "dense")  # kinds with their own MAC efficiency
BIAS_BYTES = 4  # int8 models keep int32 biases (batch norm folds into them)


@dataclass(frozen=True)
class Work:
    """What one inference asks of the chip: MACs per op kind, op count, parameter and I/O bytes."""

    macs: tuple[int, int, int, int] = (0, 0, 0, 0)  # in OP_KINDS order
    ops: int = 0
    param_bytes: int = 0
    io_bytes: int = 0

    def __add__(self, other: "Work") -> "Work":
        return Work(tuple(a + b for a, b in zip(self.macs, other.macs)), self.ops + other.ops,
                    self.param_bytes + other.param_bytes, self.io_bytes + other.io_bytes)

    @property
    def total_macs(self) -> int:
        return sum(self.macs)


def op_work(kind: str, macs: int = 0, param_bytes: int = 0) -> Work:
    """One op: `kind` is one of OP_KINDS, or anything else for an op without MACs (add, pool, ...)."""
    macs_by_kind = tuple(macs if k == kind else 0 for k in OP_KINDS)
    return Work(macs_by_kind, 1, param_bytes, 0)  # type: ignore[arg-type]


def _weighted(kind: str, weights: int, macs: int, out_ch: int) -> Work:
    return op_work(kind, macs, weights + BIAS_BYTES * out_ch)


def tflite_op_work(op: Op) -> Work:
    """The int8 TFLite ops `op` becomes: batch norm and ReLU fold into the convs; squeeze-excite is a
    pool, two 1x1 convs on the pooled map, a sigmoid and a multiply."""
    if op.kind == "se":
        e, s = op.out_ch, op.hidden
        return (op_work("pool") + _weighted("conv1x1", e * s, e * s, s) + _weighted("conv1x1", s * e, s * e, e)
                + op_work("logistic") + op_work("mul"))
    if op.kind in OP_KINDS:
        return _weighted(op.kind, op.weights, op.macs, op.out_ch)
    return op_work(op.kind)


@functools.lru_cache(maxsize=65536)
def layer_work(layer: Layer) -> Work:
    """The builder's layer as int8 TFLite ops (the head's flatten is a RESHAPE, counted as free)."""
    work = Work()
    for op in layer.ops:
        work += tflite_op_work(op)
    return work


def spec_work(spec: ModelSpec) -> Work:
    # uint8 in and out, each with a QUANTIZE op to and from the int8 the graph computes in
    work = Work(io_bytes=spec.resolution * spec.resolution * 3 + spec.num_classes)
    work += op_work("quantize") + op_work("quantize")
    for layer in spec.layers():
        work += layer_work(layer)
    return work
