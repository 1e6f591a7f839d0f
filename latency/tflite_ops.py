"""The cost model's view of any int8 .tflite file: MACs per op kind, op count, parameter and I/O bytes.

Reads the file's ops and tensor shapes through the LiteRT interpreter (no TensorFlow): a convolution's
MACs are output pixels x kernel area x input channels x output channels, a depthwise one's output
pixels x kernel area x channels, a fully connected one's weight count. Parameter bytes are the bytes
of every constant tensor (an op input that no op produces and that is not a model input).
"""

from __future__ import annotations

import math
import os

import numpy as np

from search_space.errors import UserError
from latency.work import Work, op_work

# MAC-free ops still cost an issue slot each; these are the layout-only ones the compiler drops.
_FREE_OPS = frozenset({"RESHAPE", "SQUEEZE"})


def _bytes(detail: dict) -> int:
    return int(math.prod(int(d) for d in detail["shape"])) * np.dtype(detail["dtype"]).itemsize


def tflite_work(path: str | os.PathLike | bytes) -> Work:
    from search_space.tflite import load_interpreter

    interp = load_interpreter(path, default_delegates=False)
    ops = interp._get_ops_details()
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    inputs = {d["index"] for d in interp.get_input_details()}
    outputs = [d["index"] for d in interp.get_output_details()]
    produced = {int(i) for op in ops for i in op["outputs"]}
    int8_ops = [op for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    if int8_ops and all(np.dtype(tensors[int(op["inputs"][1])]["dtype"]) == np.float32 for op in int8_ops):
        where = "the model" if isinstance(path, (bytes, bytearray)) else f"'{path}'"
        raise UserError(f"{where} is a float TFLite model; the Edge TPU cost model needs a full-int8 file "
                        "(convert with quantisation, e.g. 'nas export ... --output-tflite')")
    work = Work(io_bytes=sum(_bytes(tensors[i]) for i in (*inputs, *outputs)))
    constants: set[int] = set()
    for op in ops:
        name = op["op_name"]
        args = [int(i) for i in op["inputs"] if int(i) >= 0]
        constants.update(i for i in args if i not in produced and i not in inputs)
        if name in _FREE_OPS:
            continue
        out_shape = [int(d) for d in tensors[int(op["outputs"][0])]["shape"]]
        if name == "CONV_2D":
            cout, kh, kw, cin = (int(d) for d in tensors[args[1]]["shape"])
            pixels = math.prod(out_shape[:-1])
            kind = "conv1x1" if kh == kw == 1 else "conv"
            work += op_work(kind, pixels * kh * kw * cin * cout)
        elif name == "DEPTHWISE_CONV_2D":
            _, kh, kw, ch = (int(d) for d in tensors[args[1]]["shape"])
            work += op_work("depthwise", math.prod(out_shape[:-1]) * kh * kw * ch)
        elif name == "FULLY_CONNECTED":
            units, depth = (int(d) for d in tensors[args[1]]["shape"])
            work += op_work("dense", math.prod(out_shape[:-1]) * units * depth)
        else:
            work += op_work(name.lower())
    return Work(work.macs, work.ops, sum(_bytes(tensors[i]) for i in constants), work.io_bytes)
