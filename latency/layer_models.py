"""Single-layer models for profiling: each `Layer` alone, many of them in one .tflite file.

Conversion (~1 s of fixed cost per call, more for int8 calibration) dominates profiling, so a batch
of layers becomes one TFLite file with one *signature* per layer: each signature is an independent
subgraph with its own input, run on its own through `get_signature_runner`, and XNNPACK delegates
every subgraph (checked: signatures run 2-3x faster with the default delegates than without them).

A layer is timed as the same layer runs inside a whole model: its input and output are int8 (inside
a model there is no uint8 quantise op between layers; the model's own uint8 ends belong to the whole
model), its input is set once and each timed call is the subgraph's bare `Invoke` (the signature
runner would resize, allocate and copy in and out on every call; a whole model pays none of that).

Each layer model is the builder's own code for that layer (`build_layer_model`), on an input of
the layer's shape.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from search_space.spec import Layer, ModelSpec


def signature_keys(count: int) -> list[str]:
    """The converter names a lone function's signature `serving_default`, several after their graphs."""
    return ["serving_default"] if count == 1 else [f"l{i}" for i in range(count)]


def layers_to_tflite(layers: Sequence[Layer], spec: ModelSpec, quantize: bool = True, seed: int = 0,
                     io_type: str = "int8") -> bytes:
    """One .tflite with signature `signature_keys(n)[i]` (input `x`) for `layers[i]`; int8 calibrated on
    random inputs, with `io_type` (int8, or uint8 as a whole model's ends) inputs and outputs."""
    import contextlib
    import io

    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from search_space.builder import build_layer_model

    models = [build_layer_model(layer, spec, seed) for layer in layers]
    keys = signature_keys(len(models))
    functions = []
    for key, model in zip(keys, models):
        signature = [tf.TensorSpec(model.inputs[0].shape, tf.float32, name="x")]
        frozen = convert_variables_to_constants_v2(_signature(model, key, signature).get_concrete_function())
        frozen.graph.name = key  # the converter names each signature after its function's graph
        functions.append(frozen)
    holder = tf.Module()
    holder.models = models  # the converter needs the functions' owner to take one signature per function
    converter = tf.lite.TFLiteConverter.from_concrete_functions(functions, holder)
    if quantize:
        def representative():
            rng = np.random.default_rng(seed)
            for key, model in zip(keys, models):
                for _ in range(2):
                    yield key, {"x": rng.standard_normal(tuple(model.inputs[0].shape)).astype(np.float32)}

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = getattr(tf, io_type)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return converter.convert()
    finally:
        keras.backend.clear_session()


def _signature(model, name: str, input_signature):
    import tensorflow as tf

    def call(x):
        return {"y": model(x, training=False)}

    call.__name__ = name
    return tf.function(call, input_signature=input_signature)


def signature_invokes(content: bytes, count: int, threads: int = 1, delegates: list | None = None) -> list:
    """No-argument callables, each a bare invoke of one layer's subgraph of a layers file, its input set
    once to random values.

    LiteRT's public API runs a signature only through `SignatureRunner.__call__` (resize, allocate,
    copy in and out every call), so this uses the runner's own wrapper calls once and keeps `Invoke`.
    """
    import functools

    from latency.measure import random_inputs
    from search_space.tflite import load_interpreter

    interp = load_interpreter(content, num_threads=threads, delegates=delegates)
    invokes = []
    for i, key in enumerate(signature_keys(count)):
        runner = interp.get_signature_runner(key)
        wrapper, index = runner._interpreter_wrapper, runner._subgraph_index
        (x,) = random_inputs([runner.get_input_details()["x"]], seed=i)
        wrapper.AllocateTensors(index)
        wrapper.SetTensor(runner._inputs["x"], x, index)
        invokes.append(functools.partial(wrapper.Invoke, index))
    return invokes

