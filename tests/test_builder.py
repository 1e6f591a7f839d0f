"""The Keras builder: shapes, reference layer names, stride placement, seeds, TFLite conversion."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from search_space import REGISTRY, decode_block
from search_space.spec import ModelSpec

# Copies of the released checkpoints' variable lists (shared/reference/checkpoint_vars), kept in the
# repository so that the check runs on a fresh clone.
CHECKPOINT_VARS = Path(__file__).resolve().parent / "data" / "checkpoint_vars"


def small(name="efficientnet-edgetpu-S", **changes):
    return dataclasses.replace(REGISTRY[name], resolution=32, **changes)


def test_edgetpu_s_forward_pass_gives_1001_logits():
    from search_space.builder import build_model

    model = build_model(REGISTRY["efficientnet-edgetpu-S"])
    out = model(np.zeros((1, 224, 224, 3), np.float32), training=False)
    assert tuple(out.shape) == (1, 1001)


@pytest.mark.parametrize("size", "SML")
def test_weight_names_and_shapes_match_the_released_checkpoints(size):
    from search_space.builder import build_model, reference_weight_map

    name = f"efficientnet-edgetpu-{size}"
    lines = (CHECKPOINT_VARS / f"{name}.txt").read_text().splitlines()[1:]
    released = {}
    for line in lines:
        var, shape = line.split(" ", 1)
        if var.startswith(name + "/") and not var.endswith("/ExponentialMovingAverage"):
            released[var] = [int(d) for d in shape.strip("[]").split(",")]
    ours = {k: list(v.shape) for k, v in reference_weight_map(build_model(REGISTRY[name])).items()}
    assert list(ours.items()) == list(released.items())  # same names, shapes and creation order


def test_se_blocks_are_named_like_the_reference():
    from search_space.builder import build_model, reference_weight_map

    names = reference_weight_map(build_model(small("efficientnet-b0")))
    assert "efficientnet-b0/blocks_0/se/conv2d/kernel" in names
    assert "efficientnet-b0/blocks_0/se/conv2d_1/bias" in names
    # an e1 block has no expansion: the depthwise conv comes first and the project conv is conv2d
    assert list(names["efficientnet-b0/blocks_0/conv2d/kernel"].shape) == [1, 1, 32, 16]


def _conv_strides(model):
    return {layer.name: layer.strides for layer in model.layers if type(layer).__name__ == "Conv2D"}


def test_fused_stride_placement_follows_the_spec():
    from search_space.builder import build_model

    expand = _conv_strides(build_model(small()))
    release = _conv_strides(build_model(small(fused_stride_on="project")))
    assert expand["blocks_1.conv2d"] == (2, 2) and expand["blocks_1.conv2d_1"] == (1, 1)
    assert release["blocks_1.conv2d"] == (1, 1) and release["blocks_1.conv2d_1"] == (2, 2)


def test_same_seed_same_weights_and_different_seed_different_weights():
    from search_space.builder import build_model

    a, b, c = (build_model(small(), seed=s) for s in (3, 3, 4))
    wa, wb, wc = (m.get_layer("blocks_8.depthwise_conv2d").get_weights()[0] for m in (a, b, c))
    assert np.array_equal(wa, wb) and not np.array_equal(wa, wc)


def test_initialisers_follow_the_reference_fan_out_rule():
    from search_space.builder import build_model

    model = build_model(REGISTRY["efficientnet-edgetpu-S"], seed=0)
    kernel = model.get_layer("head.conv2d").get_weights()[0]  # 1x1, 192 -> 1280: std sqrt(2 / 1280)
    assert kernel.std() == pytest.approx(np.sqrt(2.0 / 1280), rel=0.02)
    dense = model.get_layer("head.dense").get_weights()[0]  # uniform +-1/sqrt(1001)
    assert np.abs(dense).max() <= 1 / np.sqrt(1001) and np.abs(dense).max() > 0.99 / np.sqrt(1001)


def test_drop_connect_only_on_residual_blocks_and_only_in_training():
    from search_space.builder import build_model

    spec = small(drop_connect=0.5)
    model = build_model(spec, seed=0)
    drops = [l.name.split(".")[0] for l in model.layers if l.name.endswith("drop_connect")]
    residual = [f"blocks_{i}" for i, l in enumerate(spec.layers()[1:-1]) if l.residual and i > 0]
    assert drops == residual
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    assert np.array_equal(model(x, training=False), model(x, training=False))


def test_swish_models_use_swish_everywhere_and_sigmoid_gates():
    from search_space.builder import build_model

    spec = ModelSpec(blocks=(decode_block("r1_k3_s11_e1_i32_o16_se0.25"),), resolution=32, activation="swish")
    acts = {l.activation.__name__ for l in build_model(spec).layers if type(l).__name__ == "Activation"}
    assert acts == {"silu", "sigmoid"}  # Keras names swish silu


def test_tiny_spec_converts_to_full_int8_tflite_that_runs(tmp_path):
    from search_space import tflite
    from search_space.builder import build_model

    spec = ModelSpec(blocks=(decode_block("r1_k3_s22_e4_i32_o16_c1"), decode_block("r2_k5_s22_e4_i16_o24")),
                     resolution=32, num_classes=10, head_filters=64)
    model = build_model(spec, seed=0, batch_size=1)
    content = tflite.convert(model, quantize=True, representative=tflite.random_representative(32))
    interp = tflite.load_interpreter(content)
    assert interp.get_input_details()[0]["dtype"] == np.uint8
    assert interp.get_output_details()[0]["dtype"] == np.uint8
    assert set(tflite.op_names(content)) <= {"QUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D",
                                             "FULLY_CONNECTED", "RESHAPE"}
    x = np.random.default_rng(1).standard_normal((4, 32, 32, 3)).astype(np.float32)
    keras_out = model.predict(x, verbose=0)
    float_out = tflite.run(tflite.load_interpreter(tflite.convert(model)), x)
    np.testing.assert_allclose(float_out, keras_out, atol=1e-4)
    int8_out = tflite.run(interp, x)
    assert int8_out.shape == (4, 10) and np.abs(int8_out - keras_out).max() < 0.25 * np.abs(keras_out).max()


def test_corrupt_tflite_files_are_user_errors(tmp_path):
    from search_space import UserError, tflite

    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(UserError, match="not a TFLite model"):
        tflite.load_interpreter(junk)
    with pytest.raises(UserError, match="cannot read"):
        tflite.load_interpreter(tmp_path / "missing.tflite")
