"""What travels with a trained model: its preprocessing record and labels; `nas eval`'s class checks;
the Edge TPU delegate path of `nas eval`; a quiet `nas export`."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from nas.common.errors import UserError
from nas.deploy import edgetpu
from nas.deploy.checkpoints import save_checkpoint
from nas.deploy.preprocessing import (LABELS_FILE, RECORD_FILE, InputRecord, load_image, prepare_pixels,
                                      read_record, sidecars)
from search_space.builder import build_model
from tests.cli_helpers import assert_one_line_error
from tests.cli_helpers import run_cli as nas
from tests.export_helpers import save_png, tiny_spec


# Preprocessing records ----------------------------------------------------------------------------


def test_square_pil_is_how_the_directory_source_loads(tmp_path):
    """The record a directory run writes (`square-pil`) prepares a file exactly as the run's held-out
    images were loaded: training's held-out top-1 and `nas eval` see the same pixels."""
    from nas.data import DataConfig, load_dataset

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            for i in range(2):
                save_png(tmp_path / split / c / f"{i}.png", rng.integers(0, 256, (37 + 9 * i, 61, 3)))
    data = load_dataset(DataConfig(source="directory", path=str(tmp_path)), 24)
    assert data.preprocessing == "square-pil" and data.class_names == ("a", "b")
    files = sorted((tmp_path / "val").rglob("*.png"))
    ours = np.stack([prepare_pixels(load_image(p), 24, "square-pil") for p in files])
    np.testing.assert_array_equal(ours, data.val_images.astype(np.float32))
    reference = np.stack([prepare_pixels(load_image(p), 24, "reference") for p in files])
    assert np.abs(reference - ours).max() > 50  # the padded crop is another image


def test_square_tf_is_how_the_tfrecord_sources_decode(tmp_path):
    import tensorflow as tf

    from nas.data.tfrecords import decode_example

    image = np.random.default_rng(1).integers(0, 256, (45, 70, 3)).astype(np.uint8)
    encoded = tf.io.encode_png(image).numpy()
    example = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[3]))}))
    decoded, _ = decode_example(example.SerializeToString(), 20)
    np.testing.assert_array_equal(prepare_pixels(image, 20, "square-tf"), decoded.numpy().astype(np.float32))


def test_record_round_trip_and_damage(tmp_path):
    record = InputRecord("square-pil", 32, (127.0,) * 3, (128.0,) * 3)
    assert read_record(record.write(tmp_path / RECORD_FILE)) == record
    (tmp_path / "bad.yaml").write_text("method: square-pil\n")
    with pytest.raises(UserError, match="is not a preprocessing record"):
        read_record(tmp_path / "bad.yaml")
    (tmp_path / "bad.yaml").write_text("method: crop\nresolution: 3\nmean: [1, 2, 3]\nstd: [1, 2, 3]\n")
    with pytest.raises(UserError, match="method must be one of square-pil, square-tf, reference"):
        read_record(tmp_path / "bad.yaml")
    # A compiled m_edgetpu.tflite uses m.tflite's files.
    (tmp_path / f"m.{RECORD_FILE}").write_text(record.to_yaml())
    assert sidecars(tmp_path / "m_edgetpu.tflite") == (tmp_path / f"m.{RECORD_FILE}", tmp_path / f"m.{LABELS_FILE}")


# Labels and class checks in nas eval --------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Checkpoints of a 1001-output (background + 1000) and a 3-class tiny model, and a 5-class tree."""
    root = tmp_path_factory.mktemp("records")
    big = tiny_spec(num_classes=1001)
    small = tiny_spec(name="tiny3", num_classes=3, include_background=False)
    ckpts = {s.num_classes: save_checkpoint(build_model(s, seed=1), s, root / s.name) for s in (big, small)}
    rng = np.random.default_rng(2)
    for name in ("bolt", "nut", "gear", "spring", "washer"):
        save_png(root / "parts" / name / "0.png", rng.integers(0, 256, (40, 52, 3)))
    return ckpts, root / "parts"


def test_eval_refuses_a_model_whose_outputs_are_not_the_data_classes(models, capsys):
    ckpts, parts = models
    # The report's case: a 1001-output model on a 5-class folder printed "top1_acc = 0.00%", exit 0.
    code, out, err = nas(capsys, "eval", "--ckpt", ckpts[1001], "--data-dir", parts)
    assert_one_line_error(code, err, "the model has 1001 outputs but", "has 5 classes (bolt, gear, nut, spring, ...)",
                          "5 outputs (6 with a background class)")
    assert "top1_acc" not in out
    code, _, err = nas(capsys, "eval", "--ckpt", ckpts[3], "--data-dir", parts)
    assert_one_line_error(code, err, "the model has 3 outputs but", "has 5 classes")
    code, _, err = nas(capsys, "eval", "--ckpt", ckpts[3], "--offline")
    assert_one_line_error(code, err, "the model has 3 outputs but the built-in digits has 10 classes")


def test_eval_uses_the_recorded_labels_and_allows_the_background(models, tmp_path, capsys):
    ckpts, parts = models
    run = tmp_path / "run"
    shutil.copytree(ckpts[3], run)
    (run / LABELS_FILE).write_text("bolt\ngear\nnut\n")
    image = sorted(parts.rglob("*.png"))[0]
    code, out, err = nas(capsys, "eval", "--ckpt", run, "--image", image)
    assert code == 0, err
    assert f"labels: 3 class names from '{run / LABELS_FILE}'" in out
    names = [line.rsplit(": ", 1)[1] for line in out.splitlines() if line.startswith("  -> top_")]
    assert sorted(names) == ["bolt", "gear", "nut"]
    # Folders named by the recorded labels are matched by name: a subset of the classes evaluates.
    subset = tmp_path / "subset"
    shutil.copytree(parts / "nut", subset / "nut")
    shutil.copytree(parts / "bolt", subset / "bolt")
    code, out, err = nas(capsys, "eval", "--ckpt", run, "--data-dir", subset)
    assert code == 0, err
    assert "folder names looked up in the labels map" in out
    # 1001 outputs = 1000 classes + background: a 1000-class tree is accepted (the spec says output 0 is
    # the background), checked here on the labels: 1000 recorded names make 1001 outputs fit.
    big = tmp_path / "big"
    shutil.copytree(ckpts[1001], big)
    (big / LABELS_FILE).write_text("".join(f"c{i}\n" for i in range(1000)))
    code, out, err = nas(capsys, "eval", "--ckpt", big, "--image", image)
    assert code == 0, err
    assert "labels: 1000 class names" in out


# Edge TPU -----------------------------------------------------------------------------------------

# A TFLite external delegate in C: `tflite_plugin_create_delegate` returns NULL with a message (as
# libedgetpu does when it finds no device), or, with -DDEVICE, a delegate whose Prepare claims no node
# (so the model runs on the CPU through the delegate-loading path).
FAKE_DELEGATE = r"""
#include <stdlib.h>
static int prepare(void* context, void* delegate) { return 0; }
void* tflite_plugin_create_delegate(char** keys, char** values, size_t n, void (*report)(const char*)) {
#ifndef DEVICE
  if (report) report("Failed to open device");
  return NULL;
#else
  void** delegate = calloc(32, sizeof(void*));  /* TfLiteDelegate: data_, Prepare, ... all else zero */
  delegate[1] = (void*)prepare;
  return delegate;
#endif
}
void tflite_plugin_destroy_delegate(void* delegate) { free(delegate); }
"""


def _fake_delegate(tmp_path, device: bool) -> str:
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler to build a stand-in delegate")
    source = tmp_path / "fake.c"
    source.write_text(FAKE_DELEGATE)
    library = tmp_path / ("fake_device.so" if device else "fake_none.so")
    subprocess.run(["gcc", "-shared", "-fPIC", *(["-DDEVICE"] if device else []), "-o", str(library), str(source)],
                   check=True)
    return str(library)


@pytest.fixture(scope="module")
def int8_file(models, tmp_path_factory):
    ckpts, _ = models
    out = tmp_path_factory.mktemp("int8") / "m.tflite"
    from tests.cli_helpers import main

    assert main(["export", "--ckpt", str(ckpts[3]), "--output-tflite", str(out), "--num-calibration", "8"]) == 0
    return out


def test_eval_of_a_compiled_file_without_the_runtime_is_one_line(int8_file, tmp_path, capsys):
    if edgetpu_runtime_installed():
        pytest.skip("libedgetpu.so.1 is installed here")
    compiled = tmp_path / "m_edgetpu.tflite"
    shutil.copy(int8_file, compiled)
    code, out, err = nas(capsys, "eval", "--tflite", compiled, "--offline")
    assert_one_line_error(code, err, f"cannot run '{compiled}' on the Edge TPU", "libedgetpu.so.1 is not installed",
                          "libedgetpu1-std")
    # The compiler's custom op marks a compiled file whatever its name.
    renamed = tmp_path / "renamed.tflite"
    renamed.write_bytes(int8_file.read_bytes() + edgetpu.EDGETPU_OP)
    assert edgetpu.is_compiled(renamed) and not edgetpu.is_compiled(int8_file)


def edgetpu_runtime_installed() -> bool:
    import ctypes

    try:
        ctypes.CDLL(edgetpu.EDGETPU_LIBRARY)
        return True
    except OSError:
        return False


def test_delegate_loading_no_device_and_a_device(int8_file, tmp_path):
    from nas.deploy import evaluate

    with pytest.raises(UserError, match=r"no Edge TPU device found .*Failed to open device.*plug in"):
        edgetpu.load_delegate("m_edgetpu.tflite", _fake_delegate(tmp_path, device=False))
    delegate = edgetpu.load_delegate("m_edgetpu.tflite", _fake_delegate(tmp_path, device=True))
    record = read_record(sidecars(int8_file)[0])
    through = evaluate.tflite_classifier(int8_file, record=record, delegate=delegate)
    plain = evaluate.tflite_classifier(int8_file, record=record)
    images = np.random.default_rng(3).normal(size=(4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(through.predict(images), plain.predict(images))
    assert through.num_outputs == 3


# A quiet export -----------------------------------------------------------------------------------


def test_export_keeps_the_converter_output_unless_verbose(models, tmp_path, capfd):
    from tests.cli_helpers import main

    ckpts, _ = models
    assert main(["export", "--ckpt", str(ckpts[3]), "--output-tflite", str(tmp_path / "q.tflite"),
                 "--num-calibration", "4"]) == 0
    quiet = capfd.readouterr()
    assert quiet.err == "", quiet.err
    assert main(["export", "--ckpt", str(ckpts[3]), "--output-tflite", str(tmp_path / "v.tflite"),
                 "--num-calibration", "4", "--verbose"]) == 0
    loud = capfd.readouterr()
    assert "Statistics for quantized inputs were expected" in loud.err or "fully_quantize" in loud.err, loud.err
    assert [l for l in quiet.out.splitlines() if "q." not in l] == [l for l in loud.out.splitlines() if "v." not in l]


def test_help_names_the_compiled_file(capsys):
    code, out, _ = nas(capsys, "export", "--help")
    assert code == 0
    assert "writes <stem>_edgetpu.tflite beside --output-tflite (m.tflite -> m_edgetpu.tflite)" in " ".join(out.split())
    code, out, _ = nas(capsys, "eval", "--help")
    assert "a compiled <stem>_edgetpu.tflite runs through the Edge TPU delegate" in " ".join(out.split())
