"""`nas latency` through the CLI: results, and every user mistake as one line with exit status 2."""

import dataclasses

import pytest
import yaml

from latency.edgetpu_model import spec_work
from latency.lookup_table import LookupTable
from latency.tflite_ops import tflite_work
from nas.cli import main
from tests.cli_helpers import assert_one_line_error, run_cli
from search_space import REGISTRY

TINY = {"search_space": {
    "skeleton": {"name": "tiny", "blocks": ["r1_k3_s11_e4_i16_o16_c1_noskip", "r2_k3_s22_e4_i16_o24"],
                 "stem_filters": 16, "head_filters": 64, "num_classes": 10, "resolution": 32},
    "choices": {"kernel": [3, 5], "expand_ratio": [4], "filter_multiplier": [1.0], "repeats_delta": [0],
                "skip": [True, False]}}}


def one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nas: error:"), err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def build_sim_table(tmp_path, config_data: dict):
    """(config, table) of `nas latency build-lut --source sim` over `config_data`'s space: the same
    code path as CPU tables, without TensorFlow."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(config_data))
    lut = tmp_path / "lut.csv"
    assert main(["latency", "build-lut", "--config", str(config), "--source", "sim", "-o", str(lut)]) == 0
    return config, lut


@pytest.fixture
def sim_table(tmp_path):
    return build_sim_table(tmp_path, TINY)


def test_predict_sim_prints_ms(capsys):
    assert main(["latency", "predict", "efficientnet-edgetpu-S"]) == 0
    assert "ms (sim)" in capsys.readouterr().out


def test_unknown_source(capsys):
    assert main(["latency", "predict", "efficientnet-edgetpu-S", "--source", "gpu"]) == 2
    one_line_error(capsys, "unknown latency source 'gpu'", "sim")


def test_unreadable_and_corrupt_tflite(tmp_path, capsys):
    assert main(["latency", "predict", str(tmp_path / "none.tflite")]) == 2
    one_line_error(capsys, "none.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    assert main(["latency", "predict", str(bad)]) == 2
    one_line_error(capsys, "bad.tflite", "not a TFLite model")
    assert main(["latency", "measure", str(bad)]) == 2
    one_line_error(capsys, "bad.tflite")


def test_absent_edgetpu_compiler_or_runtime(capsys):
    assert main(["latency", "measure", "efficientnet-edgetpu-S", "--source", "edgetpu"]) == 2
    line = one_line_error(capsys)
    assert ("edgetpu_compiler" in line and "edgetpu-compiler" in line) or "libedgetpu1-std" in line


def test_table_for_another_space(sim_table, tmp_path, capsys):
    config, lut = sim_table
    other = dict(TINY["search_space"], choices=dict(TINY["search_space"]["choices"], kernel=[3]))
    other_config = tmp_path / "other.yaml"
    other_config.write_text(yaml.safe_dump({"search_space": other}))
    assert main(["latency", "calibrate", "--config", str(other_config), "--lut", str(lut)]) == 2
    one_line_error(capsys, "another search space")
    assert main(["latency", "build-lut", "--config", str(other_config), "--source", "sim", "-o", str(lut)]) == 2
    one_line_error(capsys, "another search space")
    assert main(["latency", "build-lut", "--config", str(config), "--source", "tflite-cpu", "-o", str(lut)]) == 2
    one_line_error(capsys, "source sim")


def test_missing_entry_names_the_layer(sim_table, capsys):
    _, lut = sim_table
    assert main(["latency", "predict", "efficientnet-edgetpu-S", "--source", f"lut:{lut}"]) == 2
    one_line_error(capsys, "no entry for layer", "stem 224x224x3")


def test_corrupt_table(sim_table, capsys):
    _, lut = sim_table
    lut.write_text(lut.read_text().replace("# format", "# formatx"))
    assert main(["latency", "predict", "efficientnet-edgetpu-S", "--source", f"lut:{lut}"]) == 2
    one_line_error(capsys, "not a latency lookup table")


def test_sim_table_calibrates_to_the_sim_itself(sim_table, capsys):
    config, lut = sim_table
    assert main(["latency", "calibrate", "--config", str(config), "--lut", str(lut), "--count", "8"]) == 0
    out = capsys.readouterr().out
    assert "held-out" in out
    assert LookupTable.load(lut).correction is not None


def test_bad_config(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("search_space: {choices: {kernel: [4]}}\n")
    assert main(["latency", "build-lut", "--config", str(config), "--source", "sim", "-o", str(tmp_path / "x.csv")]) == 2
    one_line_error(capsys, "kernel")


def test_tflite_reader_agrees_with_spec_layers(tmp_path, capsys):
    """The cost model reads the same work from a spec's layers() and from its int8 .tflite file."""
    from latency.measure import spec_to_tflite

    spec = dataclasses.replace(REGISTRY["efficientnet-edgetpu-S"], resolution=32, num_classes=10)
    path = tmp_path / "s32.tflite"
    path.write_bytes(spec_to_tflite(spec))
    from_file, from_spec = tflite_work(path), spec_work(spec)
    assert from_file.macs == from_spec.macs and from_file.ops == from_spec.ops
    assert from_file.param_bytes == pytest.approx(from_spec.param_bytes, rel=0.01)
    assert main(["latency", "predict", str(path)]) == 0
    assert "ms (sim)" in capsys.readouterr().out
    assert main(["latency", "measure", str(path), "--repeats", "3", "--warmup", "1"]) == 0
    assert "min / median / max of 3" in capsys.readouterr().out


def test_refine_keeps_the_faster_pass(sim_table, capsys):
    config, lut = sim_table
    table = LookupTable.load(lut)
    (slow_key, slow), (fast_key, fast) = list(table.entries.items())[:2]
    table.entries[slow_key] = dict(slow, ms=slow["ms"] * 3)  # as if measured under load
    table.entries[fast_key] = dict(fast, ms=fast["ms"] / 3)
    table.save()
    assert main(["latency", "build-lut", "--config", str(config), "--source", "sim", "-o", str(lut), "--refine"]) == 0
    refined = LookupTable.load(lut)
    assert refined.entries[slow_key]["ms"] == pytest.approx(slow["ms"], rel=1e-5)
    assert refined.entries[fast_key]["ms"] == pytest.approx(fast["ms"] / 3, rel=1e-5)


def _converted(tmp_path, name, batch_size, spatial=(24, 24), flatten=False):
    """A small Keras classifier converted to full-int8 with TFLiteConverter.from_keras_model, the way
    Coral's retraining tutorial converts (a model built without a batch size leaves the batch unknown)."""
    import keras
    import numpy as np
    from keras import layers as kl

    from search_space.tflite import convert

    inp = keras.Input((*spatial, 3), batch_size=batch_size)
    x = kl.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inp)
    x = kl.DepthwiseConv2D(3, padding="same")(x)
    x = kl.Flatten()(x) if flatten else kl.GlobalAveragePooling2D()(x)
    x = kl.Dense(5, activation="softmax")(x)

    def representative():
        yield np.random.default_rng(0).standard_normal((1, 24, 24, 3)).astype(np.float32)

    path = tmp_path / f"{name}.tflite"
    try:
        path.write_bytes(convert(keras.Model(inp, x), quantize=True, representative=representative))
    finally:
        keras.backend.clear_session()
    return path


@pytest.mark.parametrize("flatten", [False, True], ids=["pooled", "flatten"])
def test_unknown_batch_counts_as_one(tmp_path, capsys, flatten):
    """A .tflite whose batch was unknown at conversion predicts and times as the batch-1 file does: every
    op on the Edge TPU (a Flatten's run-time shape arithmetic, SHAPE -> STRIDED_SLICE -> PACK, folds away
    once the batch is fixed)."""
    from search_space.tflite import load_interpreter

    dynamic = _converted(tmp_path, "dynamic", None, flatten=flatten)
    static = _converted(tmp_path, "static", 1, flatten=flatten)
    assert load_interpreter(dynamic).get_input_details()[0]["shape_signature"][0] == -1
    outputs = {}
    for path in (dynamic, static):
        code, out, err = run_cli(capsys, "latency", "predict", path)
        assert code == 0, err
        outputs[path] = out.replace(str(path), "FILE")
    assert outputs[dynamic] == outputs[static] and "host" not in outputs[dynamic]
    assert tflite_work(dynamic) == tflite_work(static)
    code, out, err = run_cli(capsys, "latency", "measure", dynamic, "--repeats", "2", "--warmup", "1")
    assert code == 0 and "ms (min / median / max of 2" in out, err


def test_unknown_inner_dimension_stays_on_the_host_and_predict_says_why(tmp_path, capsys):
    path = _converted(tmp_path, "spatial", None, spatial=(None, None))
    code, out, err = run_cli(capsys, "latency", "predict", path)
    assert code == 0, err
    assert "7 op(s) on the host CPU" in out  # quantize, conv, depthwise, mean, dense, softmax, quantize
    assert "first op on the host: QUANTIZE: tensor 'serving_default_keras_tensor" in out
    assert "unknown dimension other than the batch (shape [-1, -1, -1, 3])" in out
    code, out, err = run_cli(capsys, "latency", "measure", path, "--repeats", "2")
    assert_one_line_error(code, err, "has an input of unknown size [-1, -1, -1, 3]", "fixed input size")
