"""The cost model's view of any int8 .tflite file: the work summary of `latency.work`, op by op.

`tflite_work` reads the file's ops and tensor shapes through the LiteRT interpreter (no TensorFlow) into
plain `GraphOp`s; `graph_work` turns those into work, so the rules are testable on small made-up graphs.

Which ops the Edge TPU runs follows Coral's documentation ("TensorFlow models on the Edge TPU",
supported operations): int8/uint8 tensors of static shape, at most 4-D with only the 3 innermost
dimensions above 1, ops from its supported list. The compiler maps the graph from the start up to the
first op it cannot map; that op and every op after it run on the host CPU, even supported ones.

A leading batch dimension unknown at conversion (`TFLiteConverter.from_keras_model` on a Keras model
built without `batch_size`, as Coral's retraining tutorial converts) counts as 1: the Edge TPU compiler
fixes it so. The shape arithmetic such a graph computes at run time (SHAPE of an activation, then
STRIDED_SLICE / PACK / ... into a RESHAPE's target) is then constant, as the converter makes it for a
batch-1 model: it is folded, costing nothing. An unknown inner dimension (height, width, channels)
stays unknown: the op that has it, and every op after it, run on the host.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import NamedTuple

from latency.work import BIAS_BYTES, MAC_TILE, Work, op_work  # noqa: F401 (BIAS_BYTES public here)
from search_space.errors import UserError

# Layout-only ops the compiler folds away: no issue slot, no bytes moved.
FREE_OPS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"})
MAC_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"})
# MAC-free ops in Coral's supported list: each reads and writes whole activation maps.
MOVER_OPS = frozenset({
    "ADD", "SUB", "MUL", "CONCATENATION", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "PAD", "PADV2",
    "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "AVERAGE_POOL_2D", "MAX_POOL_2D", "SOFTMAX", "LOGISTIC", "TANH",
    "RELU", "RELU6", "RELU_N1_TO_1", "PRELU", "MAXIMUM", "MINIMUM", "TRANSPOSE", "SLICE", "STRIDED_SLICE",
    "SPLIT", "SPLIT_V", "PACK", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "L2_NORMALIZATION", "RSQRT",
    "QUANTIZE", "DEQUANTIZE", "HARD_SWISH", "SQUARED_DIFFERENCE",
})
EDGETPU_OPS = FREE_OPS | MAC_OPS | MOVER_OPS
# Ops the model knows the compiler leaves to the host (custom post-processing, arg max, gathers, ...).
HOST_OPS = frozenset({"CUSTOM", "TFLite_Detection_PostProcess", "ARG_MAX", "ARG_MIN", "GATHER", "GATHER_ND", "TOPK_V2", "WHERE", "CAST",
                      "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "SHAPE", "BATCH_TO_SPACE_ND",
                      "SPACE_TO_BATCH_ND", "LOG_SOFTMAX", "EXP", "LOG", "SQRT", "DIV", "POW"})


@dataclass(frozen=True)
class Tensor:
    id: int
    shape: tuple[int, ...]
    itemsize: int = 1
    const: bool = False  # a parameter: no op produces it and it is not a model input
    dynamic: bool = False  # a dimension unknown until run time other than a leading batch (counted as 1)
    model_output: bool = False  # one of the model's outputs (produced on the host: it never crosses USB)
    signature: tuple[int, ...] = ()  # the shape as converted, -1 where unknown (empty: as `shape`)
    name: str = ""

    @property
    def label(self) -> str:
        return f"'{self.name}'" if self.name else str(self.id)

    @property
    def bytes(self) -> int:
        return math.prod(self.shape) * self.itemsize


@dataclass(frozen=True)
class GraphOp:
    name: str  # the builtin op name, or a custom op's code
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]


# Ops that compute on shapes only: with every input constant (or folded) their output is a constant.
SHAPE_OPS = frozenset({"STRIDED_SLICE", "PACK", "CONCATENATION", "SLICE", "GATHER", "MUL", "ADD", "SUB",
                       "REDUCE_PROD", "CAST", "SQUEEZE", "EXPAND_DIMS", "RESHAPE", "FILL"})


def _why_unmappable(op: GraphOp, folded: frozenset[int] | set[int] = frozenset()) -> str | None:
    """Why the compiler cannot map `op`, or None when it can."""
    if op.name not in EDGETPU_OPS:
        return "not supported by the Edge TPU" if op.name in HOST_OPS else "unknown to the cost model"
    for t in op.inputs + op.outputs:
        if t.const or t.id in folded:  # weights (4-D, cout first), int32 biases, shapes: the compiler's to lay out
            continue
        if t.dynamic:
            return f"tensor {t.label} has an unknown dimension other than the batch (shape {list(t.signature)})"
        if len(t.shape) > 4 or any(d > 1 for d in t.shape[:-3]):
            return f"tensor {t.label} has shape {list(t.shape)} (at most 4-D, only the 3 innermost dimensions above 1)"
        if t.itemsize != 1:  # int8/uint8 activations only: a float one means a partial quantisation
            return f"tensor {t.label} is not int8/uint8 ({t.itemsize} bytes per value)"
    return None


class MacShape(NamedTuple):
    """What the cost model needs of a MAC op (latency.work.op_work's arguments)."""

    kind: str  # in latency.work.OP_KINDS
    macs: int
    reduce: int  # reduction dimension: taps x input channels (a depthwise conv's: its taps)
    out_ch: int
    taps: int


def _macs(op: GraphOp) -> MacShape:
    out = op.outputs[0].shape
    if op.name == "CONV_2D":
        cout, kh, kw, cin = op.inputs[1].shape
        return MacShape("conv1x1" if kh == kw == 1 else "conv", math.prod(out[:-1]) * kh * kw * cin * cout,
                        kh * kw * cin, cout, kh * kw)
    if op.name == "DEPTHWISE_CONV_2D":
        _, kh, kw, ch = op.inputs[1].shape
        return MacShape("depthwise", math.prod(out[:-1]) * kh * kw * ch, kh * kw, ch, kh * kw)
    if op.name == "TRANSPOSE_CONV":  # inputs: output shape, weights (cout, kh, kw, cin), input
        cout, kh, kw, cin = op.inputs[1].shape
        return MacShape("conv", math.prod(op.inputs[2].shape[:-1]) * kh * kw * cin * cout, kh * kw * cin, cout,
                        kh * kw)
    units, depth = op.inputs[1].shape  # FULLY_CONNECTED
    return MacShape("dense", math.prod(out[:-1]) * units * depth, depth, units, 1)


def graph_work(ops: list[GraphOp], io_bytes: int, tile: int = MAC_TILE) -> Work:
    """The work of a graph's ops in execution order; `io_bytes`: the model's input and output bytes."""
    work = Work(io_bytes=io_bytes)
    params: dict[int, int] = {}
    on_tpu: set[int] = set()  # tensors produced on the Edge TPU
    folded: set[int] = set()  # shape tensors that are constants once the batch is fixed
    fallen_back = False
    for op in ops:
        if _folds(op, folded):
            folded.update(t.id for t in op.outputs)
            continue
        if op.name not in FREE_OPS:  # a RESHAPE's constant input is its target shape, not a parameter
            params.update((t.id, t.bytes) for t in op.inputs if t.const)
        acts = [t for t in op.inputs if not t.const and t.id not in folded]
        in_bytes, out_bytes = sum(t.bytes for t in acts), sum(t.bytes for t in op.outputs)
        base = op.name
        unknown = (op.name,) if base not in EDGETPU_OPS and base not in HOST_OPS else ()
        if not fallen_back:
            why = _why_unmappable(op, folded)
            if why is not None:
                fallen_back = True
                work += Work(host_reason=f"{op.name}: {why}")
        if fallen_back:  # the host runs it; tensors it takes from the Edge TPU cross USB
            macs = _macs(op).macs if base in MAC_OPS else 0
            crossing = sum(t.bytes for t in acts if t.id in on_tpu)
            crossing -= sum(t.bytes for t in op.outputs if t.model_output)  # io_bytes counted it as crossing
            work += Work(io_bytes=crossing, host_ops=1, host_macs=macs, host_bytes=in_bytes + out_bytes,
                         on_host=(op.name,), unknown=unknown)
            continue
        on_tpu.update(t.id for t in op.outputs)
        if op.name in FREE_OPS:
            continue
        if op.name in MAC_OPS:
            m = _macs(op)
            work += op_work(m.kind, m.macs, reduce=m.reduce, out_ch=m.out_ch, tile=tile, in_bytes=in_bytes,
                            out_bytes=out_bytes, taps=m.taps)
        else:
            work += op_work(op.name.lower(), in_bytes=in_bytes, out_bytes=out_bytes)
    # a model that ends on the Edge TPU hands its outputs back: already counted in io_bytes
    return dataclasses.replace(work, param_bytes=sum(params.values()))


def _folds(op: GraphOp, folded: set[int]) -> bool:
    """Whether `op` computes a constant once the batch is fixed: the SHAPE of a tensor whose only unknown
    dimension is the batch, or shape arithmetic on constants and such shapes."""
    if op.name == "SHAPE":
        return not op.inputs[0].dynamic
    return (op.name in SHAPE_OPS and any(t.id in folded for t in op.inputs)
            and all(t.const or t.id in folded for t in op.inputs))


def read_graph(path: str | os.PathLike | bytes) -> tuple[list[GraphOp], int]:
    """The file's ops as GraphOps, and its input plus output bytes."""
    import numpy as np

    from search_space.tflite import load_interpreter

    # not allocated: a model with an unknown inner dimension may not allocate at the default size
    interp = load_interpreter(path, default_delegates=False, allocate=False)
    raw = interp._get_ops_details()
    details = {t["index"]: t for t in interp.get_tensor_details()}
    inputs = {d["index"] for d in interp.get_input_details()}
    outputs = [d["index"] for d in interp.get_output_details()]
    produced = {int(i) for op in raw for i in op["outputs"]}
    mac_ops = [op for op in raw if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    if mac_ops and all(np.dtype(details[int(op["inputs"][1])]["dtype"]) == np.float32 for op in mac_ops):
        where = "the model" if isinstance(path, (bytes, bytearray)) else f"'{path}'"
        raise UserError(f"{where} is a float TFLite model; the Edge TPU cost model needs a full-int8 file "
                        "(convert with quantisation, e.g. 'nas export ... --output-tflite')")

    def tensor(i: int) -> Tensor:
        d = details[i]
        signature = tuple(int(x) for x in d.get("shape_signature", d["shape"]))
        # a leading batch unknown at conversion counts as 1 (its `shape` says 1 there): the compiler fixes it
        return Tensor(i, tuple(max(1, int(x)) for x in d["shape"]), np.dtype(d["dtype"]).itemsize,
                      const=i not in produced and i not in inputs, dynamic=any(x < 0 for x in signature[1:]),
                      model_output=i in outputs, signature=signature, name=d.get("name", ""))

    ops = []
    for op in raw:
        name = op["op_name"]  # a custom op shows its custom code, e.g. TFLite_Detection_PostProcess
        ops.append(GraphOp(name, tuple(tensor(int(i)) for i in op["inputs"] if int(i) >= 0),
                           tuple(tensor(int(i)) for i in op["outputs"])))
    io = sum(tensor(i).bytes for i in (*inputs, *outputs))
    return ops, io


def tflite_work(path: str | os.PathLike | bytes, tile: int = MAC_TILE) -> Work:
    ops, io_bytes = read_graph(path)
    return graph_work(ops, io_bytes, tile)
