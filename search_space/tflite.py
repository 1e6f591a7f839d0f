"""A built model's TFLite form: conversion (float, or full-int8 as the reference exporter does) and
the LiteRT interpreter that runs it.

The interpreter comes from `ai-edge-litert` (the successor of `tflite-runtime`, which does not work
with NumPy 2); `tflite_runtime` is used only when it is the one installed (as on some Coral boards).
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from search_space.errors import UserError

Representative = Callable[[], Iterable[np.ndarray]]


def convert(model, quantize: bool = False, representative: Representative | None = None) -> bytes:
    """Keras model -> .tflite bytes. `quantize`: full-int8, builtin int8 ops only, uint8 in and out.

    `representative()` yields float input batches of shape (1, H, W, 3), normalised as the model
    expects; build the model with `batch_size=1` so the converter can fold shapes statically.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize:
        if representative is None:
            raise ValueError("full-int8 conversion needs representative data")

        def dataset():
            for batch in representative():
                yield [np.asarray(batch, dtype=np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    # Keras prints the traced signature to stdout while exporting; keep the user's terminal clean.
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def random_representative(resolution: int, count: int = 4, seed: int = 0) -> Representative:
    """Standard-normal inputs: enough to fix quantisation ranges for timing, not for accuracy."""

    def batches():
        rng = np.random.default_rng(seed)
        for _ in range(count):
            yield rng.standard_normal((1, resolution, resolution, 3), dtype=np.float32)

    return batches


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        try:
            from tflite_runtime import interpreter  # type: ignore[no-redef]
        except ImportError:
            raise UserError("no TFLite interpreter: pip install ai-edge-litert") from None
    return interpreter


def load_interpreter(
    model: bytes | str | os.PathLike,
    num_threads: int = 1,
    delegates: list | None = None,
    default_delegates: bool = True,
    allocate: bool = True,
):
    """A LiteRT interpreter over a .tflite file or bytes, tensors allocated unless `allocate` is False
    (the graph's ops and tensor details are readable either way).

    `default_delegates=False` leaves out the default XNNPACK delegate, so the node list shows the
    builtin ops the file names rather than one DELEGATE node. A leading batch dimension unknown at
    conversion is allocated as 1, the batch every reader here runs; an input with an unknown inner
    dimension is refused (there is no size to allocate or time it at).
    """
    module = _interpreter_module()
    content = _read(model)
    kwargs = {"model_content": content, "num_threads": num_threads}
    if delegates:
        kwargs["experimental_delegates"] = delegates
    if not default_delegates:
        kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interp = module.Interpreter(**kwargs)
        if allocate:
            for d in interp.get_input_details():
                signature = d.get("shape_signature", d["shape"])
                if any(int(x) < 0 for x in signature[1:]):
                    raise UserError(f"{_describe(model)} has an input of unknown size {[int(x) for x in signature]} "
                                    "(-1: unknown); convert it with a fixed input size (only the batch may be unknown)")
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"{_describe(model)} is not a valid TFLite model: {str(exc).splitlines()[0]}") from None
    return interp


def _read(model: bytes | str | os.PathLike) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    path = Path(model)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read TFLite file '{path}': {exc.strerror or exc}") from None
    # Every flatbuffer-serialised TFLite model carries the identifier "TFL3" at bytes 4..8.
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise UserError(f"'{path}' is not a TFLite model (no TFL3 identifier)")
    return content


def _describe(model) -> str:
    return "the model" if isinstance(model, (bytes, bytearray)) else f"'{model}'"


def op_names(model: bytes | str | os.PathLike) -> list[str]:
    """The builtin op of every node, in execution order."""
    return [op["op_name"] for op in load_interpreter(model, default_delegates=False)._get_ops_details()]


def run(interp, images: np.ndarray) -> np.ndarray:
    """Feed float inputs (normalised as the model expects), get float outputs, one image at a time.

    For a quantised model the inputs are quantised with the input tensor's scale and zero point and
    the outputs dequantised, so float and int8 files are used the same way.
    """
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    results = []
    for image in np.asarray(images, np.float32):
        x = image[None]
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        results.append(y[0])
    return np.stack(results)
