"""`nas export`: full-int8 / float TFLite (ops read back from the file), SavedModel, Edge TPU compiler."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from nas.deploy.checkpoints import load_model, save_checkpoint
from nas.data.images import normalize
from nas.data.offline import load_offline
from search_space import REGISTRY
from search_space.builder import build_model, trainable_params
from search_space.tflite import load_interpreter, op_names, run
from tests.cli_helpers import assert_one_line_error
from tests.cli_helpers import run_cli as nas
from tests.export_helpers import save_png, tiny_spec

# Every op the reference's EdgeTPU models need, in their builtin int8 form (QUANTIZE: uint8 <-> int8 at the ends).
INT8_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX",
            "QUANTIZE"}


def assert_full_int8(path) -> None:
    """uint8 in and out, builtin int8 ops only, no float tensor anywhere in the file."""
    interp = load_interpreter(path, default_delegates=False)
    assert interp.get_input_details()[0]["dtype"] == np.uint8
    assert interp.get_output_details()[0]["dtype"] == np.uint8
    ops = op_names(path)
    assert set(ops) <= INT8_OPS, set(ops) - INT8_OPS
    assert ops[-2:] == ["SOFTMAX", "QUANTIZE"]  # probabilities, as the reference exports, then int8 -> uint8
    floats = [t["name"] for t in interp.get_tensor_details() if t["dtype"] in (np.float32, np.float16)]
    assert not floats, floats[:5]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny spec's YAML and a project checkpoint of it."""
    root = tmp_path_factory.mktemp("tiny")
    spec = tiny_spec()
    spec_file = root / "tiny.yaml"
    spec_file.write_text(spec.to_yaml())
    model = build_model(spec, seed=4, drop_connect=False)
    return spec, spec_file, save_checkpoint(model, spec, root / "ckpt"), model


def test_int8_export_with_fresh_weights_and_the_offline_digits(tmp_path, tiny, capsys):
    _, spec_file, _, _ = tiny
    out = tmp_path / "out" / "tiny_int8.tflite"
    code, stdout, err = nas(capsys, "export", "--spec", spec_file, "--output-tflite", out,
                                "--num-calibration", "40")
    assert code == 0, err
    assert "freshly initialised" in stdout and "40 images of the built-in offline digits" in stdout
    assert "calibration 40/40" in stdout  # progress
    assert_full_int8(out)
    # Calibration saw (x - 127) / 128 of 0..255 pixels, so the uint8 input is the raw pixel value.
    scale, zero = load_interpreter(out).get_input_details()[0]["quantization"]
    assert abs(scale - 1 / 128) < 2e-4 and abs(zero - 127) <= 1


def test_float_tflite_and_saved_model_give_the_checkpoints_probabilities(tmp_path, tiny, capsys):
    import tensorflow as tf

    spec, _, ckpt, model = tiny
    code, stdout, err = nas(capsys, "export", "--ckpt", ckpt, "--no-quantize", "--output-tflite",
                                tmp_path / "f.tflite", "--output-saved-model-dir", tmp_path / "saved")
    assert code == 0, err
    assert "float32" in stdout and "weights: checkpoint" in stdout

    images, _ = load_offline(spec.resolution, "val")
    x = normalize(images[:8], spec.mean, spec.std)
    expected = tf.nn.softmax(model(x, training=False)).numpy()
    interp = load_interpreter(tmp_path / "f.tflite")
    assert interp.get_input_details()[0]["dtype"] == np.float32
    np.testing.assert_allclose(run(interp, x), expected, atol=1e-5)

    serving = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    np.testing.assert_allclose(serving(input=tf.constant(x))["output"].numpy(), expected, atol=1e-5)


def test_int8_calibration_from_an_image_directory(tmp_path, tiny, capsys):
    spec, _, ckpt, _ = tiny
    rng = np.random.default_rng(0)
    for i in range(6):
        save_png(tmp_path / "rep" / f"class{i % 2}" / f"{i}.png", rng.integers(0, 256, (48, 64, 3)))
    code, stdout, err = nas(capsys, "export", "--ckpt", ckpt, "--output-tflite", tmp_path / "q.tflite",
                                "--data-dir", tmp_path / "rep")
    assert code == 0, err
    assert (f"6 images from '{tmp_path / 'rep'}' (the reference's centre crop "
            "(side R / (R + 32) of the short side), TF1 bilinear resize to 32, (x - 127) / 128)" in stdout)
    assert_full_int8(tmp_path / "q.tflite")


def write_standin_compiler(folder: Path, script: str) -> None:
    """An executable named edgetpu_compiler: it stands in for Coral's tool, which cannot run here."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "edgetpu_compiler"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_edgetpu_compiles_the_int8_file_with_edgetpu_compiler(tmp_path, tiny, capsys, monkeypatch):
    _, _, ckpt, _ = tiny
    # Coral's CLI: edgetpu_compiler [-s] [-o OUT_DIR] MODEL.tflite -> OUT_DIR/MODEL_edgetpu.tflite
    write_standin_compiler(tmp_path / "bin", 'echo "$@" > "$3/args.txt"\n'
                                             'cp "$4" "$3/q_edgetpu.tflite"\n'
                                             'echo "Number of operations that will run on Edge TPU: 7"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "m" / "q.tflite"
    code, stdout, err = nas(capsys, "export", "--ckpt", ckpt, "--output-tflite", out, "--num-calibration", "8",
                                "--edgetpu")
    assert code == 0, err
    assert (tmp_path / "m" / "args.txt").read_text().split() == ["-s", "-o", str(out.parent), str(out)]
    assert "will run on Edge TPU: 7" in stdout and f"wrote {out.parent / 'q_edgetpu.tflite'}" in stdout

    write_standin_compiler(tmp_path / "bin", 'echo "Edge TPU Compiler version 16.0"\n'
                                             'echo "ERROR: Attempting to use a delegate that only supports '
                                             'static-sized tensors" >&2\nexit 1\n')
    code, _, err = nas(capsys, "export", "--ckpt", ckpt, "--output-tflite", out, "--num-calibration", "8",
                           "--edgetpu")
    assert_one_line_error(code, err, "edgetpu_compiler failed", "static-sized tensors")


# Mistakes: one line, exit status 2, before any long work ---------------------------------------


def test_edgetpu_without_the_compiler_says_how_to_install_it(tmp_path, tiny, capsys, monkeypatch):
    _, spec_file, _, _ = tiny
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing named edgetpu_compiler here
    code, _, err = nas(capsys, "export", "--spec", spec_file, "--output-tflite", tmp_path / "x.tflite",
                           "--edgetpu")
    assert_one_line_error(code, err, "edgetpu_compiler is not installed", "edgetpu-compiler")
    assert not (tmp_path / "x.tflite").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--output-tflite", "{file}/x.tflite"], "cannot write"),
    (["--output-tflite", "{tmp}"], "it is a directory"),
    (["--output-saved-model-dir", "{file}/saved"], "cannot write"),
    ([], "nothing to write"),
    (["--output-tflite", "{tmp}/x.tflite", "--edgetpu", "--no-quantize"], "only full-int8"),
    (["--output-tflite", "{tmp}/x.tflite", "--data-dir", "{tmp}/nowhere"], "does not exist"),
    (["--output-tflite", "{tmp}/x.tflite", "--data-dir", "{tmp}/empty"], "no images (.jpg, .jpeg, .png"),
])
def test_export_mistakes(tmp_path, tiny, capsys, args, fragment):
    _, spec_file, _, _ = tiny
    (tmp_path / "file").write_text("a file, not a folder")
    (tmp_path / "empty").mkdir()
    args = [a.format(tmp=tmp_path, file=tmp_path / "file") for a in args]
    code, _, err = nas(capsys, "export", "--spec", spec_file, *args)
    assert_one_line_error(code, err, fragment)


def test_export_needs_a_model(tmp_path, capsys):
    code, _, err = nas(capsys, "export", "--output-tflite", tmp_path / "x.tflite")
    assert_one_line_error(code, err, "no model given", "--model")


# Full size: S, M and L ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["efficientnet-edgetpu-S",  # full size in every run (about 30 s)
                                  pytest.param("efficientnet-edgetpu-M", marks=pytest.mark.slow),
                                  pytest.param("efficientnet-edgetpu-L", marks=pytest.mark.slow)])
def test_released_models_export_to_full_int8_and_float(tmp_path, capsys, name):
    code, stdout, err = nas(capsys, "export", "--model", name, "--output-tflite", tmp_path / "q.tflite",
                                "--num-calibration", "16")
    assert code == 0, err
    assert_full_int8(tmp_path / "q.tflite")
    code, _, err = nas(capsys, "export", "--model", name, "--no-quantize", "--output-tflite",
                           tmp_path / "f.tflite")
    assert code == 0, err
    interp = load_interpreter(tmp_path / "f.tflite", default_delegates=False)
    assert interp.get_input_details()[0]["dtype"] == np.float32
    assert set(op_names(tmp_path / "f.tflite")) <= INT8_OPS - {"QUANTIZE"}

    params = trainable_params(build_model(REGISTRY[name], drop_connect=False))
    int8_bytes, float_bytes = (tmp_path / "q.tflite").stat().st_size, (tmp_path / "f.tflite").stat().st_size
    # About one byte per weight, four for float (BN gamma/beta fold away; int32 biases and the
    # file's bookkeeping add a little).
    assert 1.0 <= int8_bytes / params < 1.15, int8_bytes / params
    assert 3.9 <= float_bytes / params < 4.1, float_bytes / params


@pytest.mark.slow
def test_efficientnet_edgetpu_s_saved_model_round_trip(tmp_path, capsys):
    import tensorflow as tf

    code, _, err = nas(capsys, "export", "--model", "efficientnet-edgetpu-S", "--seed", "3",
                           "--output-saved-model-dir", tmp_path / "saved")
    assert code == 0, err
    model = load_model(spec=REGISTRY["efficientnet-edgetpu-S"], seed=3).model
    x = np.random.default_rng(0).uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    serving = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    np.testing.assert_allclose(serving(input=tf.constant(x))["output"].numpy(),
                               tf.nn.softmax(model(x, training=False)).numpy(), atol=1e-5)
