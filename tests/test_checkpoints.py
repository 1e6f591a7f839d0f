"""Checkpoints: released TF1 ones (written here by tf.compat.v1.train.Saver in the released layout)
and this project's own, mapped onto the builder's layers by name and shape."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from nas.deploy.checkpoints import EMA, load_model, open_checkpoint, restore, save_checkpoint
from search_space import REGISTRY, UserError
from search_space.builder import build_model, reference_weight_map
from tests.cli_helpers import assert_one_line_error
from tests.cli_helpers import run_cli as nas
from tests.export_helpers import released_layout, tiny_spec, write_tf1_checkpoint

REFERENCE_VARS = Path(__file__).resolve().parent / "data" / "checkpoint_vars"  # copies of the released lists


def logits(model, seed=0):
    x = np.random.default_rng(seed).standard_normal((3, model.input_shape[1], model.input_shape[1], 3))
    return np.asarray(model(x.astype(np.float32), training=False))


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A released-style checkpoint of a tiny EdgeTPU-like model trained with the release's stride placement."""
    spec = tiny_spec()
    reference = build_model(dataclasses.replace(spec, fused_stride_on="project"), seed=1, drop_connect=False)
    values, extras = released_layout(reference)
    directory = write_tf1_checkpoint(tmp_path_factory.mktemp("released") / "tiny-edgetpu", values, extras)
    return spec, reference, values, directory


def test_released_checkpoint_loads_the_moving_averages_with_the_release_stride_placement(released):
    spec, reference, _, directory = released
    loaded = load_model(directory, spec)
    assert loaded.checkpoint.released and loaded.ema
    assert loaded.spec.fused_stride_on == "project"
    assert np.array_equal(logits(loaded.model), logits(reference))
    assert "moving averages" in loaded.describe() and "1x1 project conv" in loaded.describe()


def test_released_checkpoint_raw_weights_and_stride_override(released):
    spec, reference, values, directory = released
    raw = load_model(directory, spec, use_ema=False)
    assert not raw.ema
    for name, variable in reference_weight_map(raw.model).items():
        assert np.array_equal(np.asarray(variable), values[name]), name

    expand = load_model(directory, spec, fused_stride_on="expand")
    assert expand.spec.fused_stride_on == "expand"
    same_weights = build_model(spec, drop_connect=False)
    same_weights.set_weights(reference.get_weights())
    assert np.array_equal(logits(expand.model), logits(same_weights))
    # The placement matters: the same weights give other outputs with the stride moved.
    assert not np.allclose(logits(expand.model), logits(reference), atol=1e-3)


def test_checkpoint_without_moving_averages_loads_the_weights(tmp_path):
    spec = tiny_spec()
    reference = build_model(dataclasses.replace(spec, fused_stride_on="project"), seed=2, drop_connect=False)
    values, extras = released_layout(reference, ema=False, slots=False)
    loaded = load_model(write_tf1_checkpoint(tmp_path, values, extras), spec)
    assert not loaded.ema
    assert np.array_equal(logits(loaded.model), logits(reference))


def test_project_checkpoint_round_trip_keeps_spec_and_weights(tmp_path):
    import tensorflow as tf

    spec = tiny_spec(name="searched-7", fused_stride_on="expand")
    model = build_model(spec, seed=3, drop_connect=False)
    directory = save_checkpoint(model, spec, tmp_path / "ckpt")
    assert {"spec.yaml", "checkpoint", "model.ckpt.index"} <= {p.name for p in directory.iterdir()}
    # The same layout as the released checkpoints: reference names, nothing else.
    assert {n for n, _ in tf.train.list_variables(str(directory))} == set(reference_weight_map(model))

    for where in (directory, directory / "model.ckpt", directory / "model.ckpt.index"):
        loaded = load_model(where)
        assert loaded.spec == spec and not loaded.checkpoint.released and not loaded.ema
        assert np.array_equal(logits(loaded.model), logits(model))


def test_restore_into_an_existing_model(released):
    spec, reference, _, directory = released
    model = build_model(dataclasses.replace(spec, fused_stride_on="project"), seed=9, drop_connect=False)
    assert restore(model, open_checkpoint(directory)) is True
    assert np.array_equal(logits(model), logits(reference))


def test_missing_variables_are_listed(tmp_path, released):
    spec, reference, values, _ = released
    dropped = [n for n in values if "blocks_1/" in n]
    kept = {n: v for n, v in values.items() if n not in dropped}
    directory = write_tf1_checkpoint(tmp_path, kept)
    with pytest.raises(UserError, match=r"lacks \d+ of the \d+ variables of 'tiny-edgetpu', e\.g\. tiny-edgetpu/blocks_1/"):
        load_model(directory, spec)


def test_other_shapes_and_other_architectures_are_refused(tmp_path):
    spec = tiny_spec()
    wider = build_model(tiny_spec(width=2.0), seed=0, drop_connect=False)
    values, _ = released_layout(wider, ema=False, slots=False)
    with pytest.raises(UserError, match=r"shaped unlike 'tiny-edgetpu', e\.g\. tiny-edgetpu/stem/conv2d/kernel \[3, 3, 3, 16\] \(model: \[3, 3, 3, 8\]\)"):
        load_model(write_tf1_checkpoint(tmp_path / "wide", values), spec)

    deeper_spec = tiny_spec(blocks=spec.blocks[:1] + (dataclasses.replace(spec.blocks[1], repeats=3),))
    deeper = build_model(deeper_spec, seed=0, drop_connect=False)
    values, _ = released_layout(deeper, ema=False, slots=False)
    with pytest.raises(UserError, match="variables 'tiny-edgetpu' lacks, e.g. tiny-edgetpu/blocks_3/.*another architecture"):
        load_model(write_tf1_checkpoint(tmp_path / "deep", values), spec)


def test_unregistered_released_checkpoint_needs_a_spec(released):
    _, _, _, directory = released
    with pytest.raises(UserError, match="'tiny-edgetpu', which is not registered .* --spec"):
        load_model(directory)


def test_save_into_an_unwritable_place_is_a_user_error(tmp_path):
    spec = tiny_spec()
    model = build_model(spec, seed=0, drop_connect=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write"):
        save_checkpoint(model, spec, tmp_path / "file" / "ckpt")


# Through the CLI: one line, exit status 2 ------------------------------------------------------


def test_cli_checkpoint_missing_variables(tmp_path, released, capsys):
    spec, _, values, _ = released
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(spec.to_yaml())
    kept = {n: v for n, v in values.items() if "head/" not in n}
    directory = write_tf1_checkpoint(tmp_path / "ckpt", kept)
    code, _, err = nas(capsys, "eval", "--spec", str(spec_file), "--ckpt", str(directory), "--offline")
    assert_one_line_error(code, err, "lacks", "tiny-edgetpu/head/")


def test_cli_checkpoint_of_another_model(tmp_path, released, capsys):
    _, _, values, _ = released
    renamed = {n.replace("tiny-edgetpu/", "efficientnet-edgetpu-M/", 1): v for n, v in values.items()}
    directory = write_tf1_checkpoint(tmp_path / "m", renamed)
    code, _, err = nas(capsys, "export", "--model", "efficientnet-edgetpu-S", "--ckpt", str(directory),
                           "--output-tflite", str(tmp_path / "s.tflite"))
    assert_one_line_error(code, err, "is of model 'efficientnet-edgetpu-M', not 'efficientnet-edgetpu-S'",
                          "--model efficientnet-edgetpu-M")
    assert not (tmp_path / "s.tflite").exists()


@pytest.mark.parametrize("make, fragment", [
    (lambda d: d / "absent", "does not exist"),
    (lambda d: d, "no checkpoint (model.ckpt*.index) in directory"),
    (lambda d: (d / "weights.h5").write_bytes(b"\x89HDF") and d / "weights.h5", "is not a TensorFlow checkpoint"),
    (lambda d: (d / "model.ckpt.index").write_bytes(b"garbage" * 10) and d, "cannot read checkpoint"),
])
def test_cli_unusable_checkpoint_paths(tmp_path, capsys, make, fragment):
    code, _, err = nas(capsys, "eval", "--model", "efficientnet-edgetpu-S", "--ckpt", str(make(tmp_path)),
                           "--offline")
    assert_one_line_error(code, err, fragment)


# Full size -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_released_efficientnet_edgetpu_s_checkpoint_loads_by_its_scope(tmp_path):
    spec = REGISTRY["efficientnet-edgetpu-S"]
    reference = build_model(dataclasses.replace(spec, fused_stride_on="project"), seed=5, drop_connect=False)
    values, extras = released_layout(reference)
    directory = write_tf1_checkpoint(tmp_path / "efficientnet-edgetpu-S", values, extras)
    listed = (REFERENCE_VARS / "efficientnet-edgetpu-S.txt").read_text().splitlines()[1:]
    written = {n for n in values if not n.endswith(EMA)} | {"global_step"}
    assert written == {line.split()[0] for line in listed}

    loaded = load_model(directory)  # no spec: the scope names the registered model
    assert loaded.spec.name == spec.name and loaded.spec.fused_stride_on == "project" and loaded.ema
    assert np.array_equal(logits(loaded.model), logits(reference))
