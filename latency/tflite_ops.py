"""The cost model's view of any int8 .tflite file: the work summary of `latency.work`, op by op.

`tflite_work` reads the file's ops and tensor shapes through the LiteRT interpreter (no TensorFlow) into
plain `GraphOp`s; `graph_work` turns those into work, so the rules are testable on small made-up graphs.

Which ops the Edge TPU runs follows Coral's documentation ("TensorFlow models on the Edge TPU",
supported operations): int8/uint8 tensors of static shape, at most 4-D with only the 3 innermost
dimensions above 1, ops from its supported list. The compiler maps the graph from the start up to the
first op it cannot map; that op and every op after it run on the host CPU, even supported ones.
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
    dynamic: bool = False  # some dimension unknown until run time
    model_output: bool = False  # one of the model's outputs (produced on the host: it never crosses USB)

    @property
    def bytes(self) -> int:
        return math.prod(self.shape) * self.itemsize


@dataclass(frozen=True)
class GraphOp:
    name: str  # the builtin op name, or a custom op's code
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]


def _mappable(op: GraphOp) -> bool:
    if op.name not in EDGETPU_OPS:
        return False
    for t in op.inputs + op.outputs:
        if t.const:  # weights (4-D, cout first) and int32 biases are the compiler's to lay out
            continue
        if t.dynamic or len(t.shape) > 4 or any(d > 1 for d in t.shape[:-3]) or t.itemsize != 1:
            return False  # int8/uint8 activations only: a float one means a partial quantisation
    return True


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
    fallen_back = False
    for op in ops:
        params.update((t.id, t.bytes) for t in op.inputs if t.const)
        acts = [t for t in op.inputs if not t.const]
        in_bytes, out_bytes = sum(t.bytes for t in acts), sum(t.bytes for t in op.outputs)
        base = op.name
        unknown = (op.name,) if base not in EDGETPU_OPS and base not in HOST_OPS else ()
        fallen_back = fallen_back or not _mappable(op)
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


def read_graph(path: str | os.PathLike | bytes) -> tuple[list[GraphOp], int]:
    """The file's ops as GraphOps, and its input plus output bytes."""
    import numpy as np

    from search_space.tflite import load_interpreter

    interp = load_interpreter(path, default_delegates=False)
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
        signature = d.get("shape_signature", d["shape"])
        return Tensor(i, tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).itemsize,
                      const=i not in produced and i not in inputs, dynamic=any(int(x) < 0 for x in signature),
                      model_output=i in outputs)

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
