"""A model's *work summary* for the Edge TPU cost model, from the ops of a `ModelSpec`'s layers
(`search_space.ops`) or of an int8 .tflite file (`latency.tflite_ops`). Pure Python: no TensorFlow, no NumPy.

Besides MACs it records what the chip does beyond them: MACs padded to whole tiles of the MAC array,
activation bytes moved by MAC-free ops (element-wise, pooling, resize, pad; concatenations are written in
place and cost nothing), activation
working sets too large for on-chip memory, and the ops the compiler leaves to the host CPU.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

from search_space.ops import Op
from search_space.spec import Layer, ModelSpec

OP_KINDS = ("conv", "depthwise", "conv1x1", "dense")  # kinds with their own MAC efficiency
BIAS_BYTES = 4  # int8 models keep int32 biases (batch norm folds into them)
# The array is taken to be 64 lanes wide in output channels (4096 MACs x 2 ops x ~500 MHz is the published
# 4 TOPS: 64 lanes each working on 64 outputs at once): output channels are padded to whole multiples of
# the lane count (65 channels take two passes). The reduction is fed tap by tap in vectors of REDUCE_TILE
# input channels: each kernel tap's input channels are padded to a whole multiple of it (a 3x3 conv on 32
# channels takes 9 x 64 cycles per output vector, not 9 x 32), so convolutions on few input channels
# (EfficientNet-EdgeTPU's fused 3x3 convs on 24-48 channels at 112x112 and 56x56) use the array poorly.
# A conv on at most FOLD_MAX_CIN input channels (the first conv, on the RGB image) is the exception: its
# taps are folded into the channels (im2col / space-to-depth, what TPU compilers do to the first layer),
# so its whole reduction (taps x channels) is padded once. A depthwise conv's reduction (its taps, one
# channel each) is not padded: its own efficiency covers how it uses the array. Google does not publish
# the layout; the benchmark picks the lane count among 16, 32 and 64 and the reduction vector among 1
# (unpadded), 8, 16, 32 and 64 by leave-one-family-out error (bench_edgetpu_model.md).
MAC_TILE = 64
REDUCE_TILE = 64
FOLD_MAX_CIN = 4
# Each output vector (one pixel's tile of output channels) takes the reduction's cycles (taps x padded input
# channels; a depthwise conv's taps) plus a fixed DRAIN_CYCLES to drain the accumulators and requantize:
# the MACs of an op are charged (cycles + DRAIN_CYCLES) / reduce times over. It makes ops with a short
# reduction (depthwise, 1x1 convs on few channels) cost more per MAC. Not published by Google: a systolic
# array's per-vector latency; the value is chosen among 0, 32 and 64 by leave-one-family-out error
# (bench_edgetpu_model.md).
DRAIN_CYCLES = 32
# An op whose input and output activations together exceed the chip's ~8 MB cannot keep them on chip;
# the USB Accelerator has no DRAM of its own, so the excess goes out to the host and back.
ACT_SRAM_BYTES = 8 * 1024 * 1024
# A concatenation (along channels, the innermost axis) costs nothing: the compiler has its producers write
# straight into their slices of its output buffer, so it issues no op and moves no bytes; the buffer still
# takes on-chip memory. Evidence: the concatenation-heavy rows (Inception v1, SqueezeNet) are the ones a
# copying concatenation over-predicts (benchmarks/results/bench_edgetpu_model.md).
IN_PLACE_KINDS = frozenset({"concatenation"})
# Ops that only copy activations into another layout, at their own fitted rate.
LAYOUT_KINDS = frozenset({"pad", "padv2", "split", "split_v", "slice", "strided_slice", "pack",
                          "transpose", "space_to_depth", "depth_to_space"})


class ByKind(NamedTuple):
    """A quantity per MAC op kind (OP_KINDS, in this order)."""

    conv: float = 0
    depthwise: float = 0
    conv1x1: float = 0
    dense: float = 0

    def __add__(self, other: "ByKind") -> "ByKind":  # type: ignore[override]  # element-wise, not concatenation
        return ByKind(self.conv + other.conv, self.depthwise + other.depthwise, self.conv1x1 + other.conv1x1,
                      self.dense + other.dense)

    @classmethod
    def one(cls, kind: str, value: float) -> "ByKind":
        return cls(**{kind: value})


class OpRecord(NamedTuple):
    """One Edge TPU op's own work: the op overhead is hidden behind it up to its time
    (edgetpu_model.hidden_overhead_ms)."""

    padded_macs: ByKind = ByKind()
    moved_bytes: int = 0
    layout_bytes: int = 0


@dataclass(frozen=True)
class Work:
    """What one inference asks of the chip and of the host."""

    macs: ByKind = ByKind()  # as computed
    padded_macs: ByKind = ByKind()  # ... partial array tiles counted whole
    ops: int = 0  # ops mapped to the Edge TPU (layout-only RESHAPE/SQUEEZE not counted)
    param_bytes: int = 0
    io_bytes: int = 0  # model input and output, and tensors handed between Edge TPU and host
    moved_bytes: int = 0  # activation bytes read and written by MAC-free arithmetic ops (add, pool, ...)
    layout_bytes: int = 0  # ... by MAC-free copies (pad, slice, transpose; not concatenation: in place)
    spill_bytes: int = 0  # per-op activation working set beyond ACT_SRAM_BYTES
    peak_act_bytes: int = 0  # largest activation working set (inputs + output) of one op: on-chip memory
    # it takes is memory the parameter cache does not get
    host_ops: int = 0  # ops run by the host CPU (unsupported, or after the first unsupported one)
    host_macs: int = 0
    host_bytes: int = 0  # activation bytes the host ops read and write
    on_host: tuple[str, ...] = ()  # names of the host ops, in order
    unknown: tuple[str, ...] = ()  # ops the model does not know, costed with the default
    host_reason: str = ""  # the first op the compiler cannot map, and why (the host runs it and all after it)
    per_op: tuple[OpRecord, ...] = ()  # per Edge TPU op, in order

    def __post_init__(self):  # plain tuples (as a caller may write them) become named ones
        for name in ("macs", "padded_macs"):
            value = getattr(self, name)
            if not isinstance(value, ByKind):
                object.__setattr__(self, name, ByKind(*value))

    def __add__(self, other: "Work") -> "Work":
        a, b = self, other
        return Work(macs=a.macs + b.macs, padded_macs=a.padded_macs + b.padded_macs, ops=a.ops + b.ops,
                    param_bytes=a.param_bytes + b.param_bytes, io_bytes=a.io_bytes + b.io_bytes,
                    moved_bytes=a.moved_bytes + b.moved_bytes, layout_bytes=a.layout_bytes + b.layout_bytes,
                    spill_bytes=a.spill_bytes + b.spill_bytes, peak_act_bytes=max(a.peak_act_bytes, b.peak_act_bytes),
                    host_ops=a.host_ops + b.host_ops, host_macs=a.host_macs + b.host_macs,
                    host_bytes=a.host_bytes + b.host_bytes, on_host=a.on_host + b.on_host,
                    unknown=a.unknown + b.unknown, host_reason=a.host_reason or b.host_reason,
                    per_op=a.per_op + b.per_op)

    @property
    def total_macs(self) -> int:
        return sum(self.macs)


def tiling(n: int, tile: int) -> float:
    """How many array lanes `n` channels occupy per useful one: 65 channels on 64 lanes take two passes
    (tile 1: no padding)."""
    return -(-n // tile) * tile / n if n > 0 else 1.0


def spill(in_bytes: int, out_bytes: int) -> int:
    return max(0, in_bytes + out_bytes - ACT_SRAM_BYTES)


def reduce_cycles(kind: str, reduce: int, taps: int = 1) -> int:
    """Cycles one output vector's reduction takes on the array: `reduce` (taps x input channels) with each
    tap's input channels padded to REDUCE_TILE; padded whole when the op has at most FOLD_MAX_CIN input
    channels (taps folded into channels); a depthwise conv's taps unpadded."""
    if kind == "depthwise" or reduce <= 0:
        return reduce
    cin = reduce // max(1, taps)
    if cin <= FOLD_MAX_CIN:
        return -(-reduce // REDUCE_TILE) * REDUCE_TILE
    return taps * (-(-cin // REDUCE_TILE) * REDUCE_TILE)


def op_work(kind: str, macs: int = 0, param_bytes: int = 0, reduce: int = 0, out_ch: int = 0,
            tile: int = MAC_TILE, in_bytes: int = 0, out_bytes: int = 0, taps: int = 1) -> Work:
    """One Edge TPU op. `kind` in OP_KINDS: MACs on the array, `out_ch` tiled over its `tile` lanes and the
    reduction dimension `reduce` (`taps` kernel taps x input channels; a depthwise conv's: its taps) fed in
    vectors of REDUCE_TILE channels per tap (reduce_cycles), each output vector DRAIN_CYCLES longer than
    its reduction. Any other kind is MAC-free and moves its activations."""
    if kind in IN_PLACE_KINDS:  # its inputs are slices of its output: only the output buffer is held
        return Work(param_bytes=param_bytes, spill_bytes=spill(0, out_bytes), peak_act_bytes=out_bytes)
    if kind in LAYOUT_KINDS:
        return Work(ops=1, param_bytes=param_bytes, layout_bytes=in_bytes + out_bytes,
                    spill_bytes=spill(in_bytes, out_bytes), peak_act_bytes=in_bytes + out_bytes,
                    per_op=(OpRecord(layout_bytes=in_bytes + out_bytes),))
    if kind not in OP_KINDS:
        return Work(ops=1, param_bytes=param_bytes, moved_bytes=in_bytes + out_bytes,
                    spill_bytes=spill(in_bytes, out_bytes), peak_act_bytes=in_bytes + out_bytes,
                    per_op=(OpRecord(moved_bytes=in_bytes + out_bytes),))
    padded = macs * ((reduce_cycles(kind, reduce, taps) + DRAIN_CYCLES) / reduce if reduce else 1.0) * (
        tiling(out_ch, tile) if out_ch else 1.0)
    padded_by_kind = ByKind.one(kind, padded)
    return Work(macs=ByKind.one(kind, macs), padded_macs=padded_by_kind, ops=1, param_bytes=param_bytes,
                spill_bytes=spill(in_bytes, out_bytes), peak_act_bytes=in_bytes + out_bytes,
                per_op=(OpRecord(padded_by_kind),))


def _map(size: int, ch: int) -> int:
    return size * size * ch  # int8: one byte per value


def tflite_op_work(op: Op, tile: int = MAC_TILE) -> Work:
    """The int8 TFLite ops `op` becomes: batch norm and ReLU fold into the convs; squeeze-excite is a
    pool, two 1x1 convs on the pooled map, a sigmoid and a multiply."""
    in_map, out_map = _map(op.in_size, op.in_ch), _map(op.out_size, op.out_ch)
    if op.kind == "se":
        e, s, m = op.out_ch, op.hidden, _map(op.in_size, op.out_ch)
        return (op_work("pool", in_bytes=m, out_bytes=e)
                + op_work("conv1x1", e * s, e * s + BIAS_BYTES * s, reduce=e, out_ch=s, tile=tile, in_bytes=e,
                          out_bytes=s)
                + op_work("conv1x1", s * e, s * e + BIAS_BYTES * e, reduce=s, out_ch=e, tile=tile, in_bytes=s,
                          out_bytes=e)
                + op_work("logistic", in_bytes=e, out_bytes=e) + op_work("mul", in_bytes=m + e, out_bytes=m))
    if op.kind in OP_KINDS:
        reduce = {"conv": op.kernel * op.kernel * op.in_ch, "conv1x1": op.in_ch, "dense": op.in_ch,
                  "depthwise": op.kernel * op.kernel}[op.kind]
        return op_work(op.kind, op.macs, op.weights + BIAS_BYTES * op.out_ch, reduce=reduce, out_ch=op.out_ch,
                       tile=tile, in_bytes=in_map, out_bytes=out_map,
                       taps=op.kernel * op.kernel if op.kind in ("conv", "depthwise") else 1)
    if op.kind == "add":
        return op_work("add", in_bytes=2 * in_map, out_bytes=out_map)
    return op_work(op.kind, in_bytes=in_map, out_bytes=out_map)


@functools.lru_cache(maxsize=65536)
def layer_work(layer: Layer, tile: int = MAC_TILE) -> Work:
    """The builder's layer as int8 TFLite ops (the head's flatten is a RESHAPE, counted as free)."""
    work = Work()
    for op in layer.ops:
        work += tflite_op_work(op, tile)
    return work


def spec_work_io(spec: ModelSpec) -> Work:
    """What a spec's work has beyond its layers: uint8 in and out, each with a QUANTIZE op to and from
    the int8 the graph computes in."""
    return _io_work(spec.resolution, spec.num_classes)


@functools.lru_cache(maxsize=64)
def _io_work(resolution: int, classes: int) -> Work:
    image = _map(resolution, 3)
    return (Work(io_bytes=image + classes) + op_work("quantize", in_bytes=image, out_bytes=image)
            + op_work("quantize", in_bytes=classes, out_bytes=classes))


def spec_work(spec: ModelSpec, tile: int = MAC_TILE) -> Work:
    work = spec_work_io(spec)
    for layer in spec.layers():
        work += layer_work(layer, tile)
    return work
