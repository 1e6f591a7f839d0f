"""Fine-tuning: --init-from a project or a released TF1 checkpoint, --freeze-until BLOCK."""

import dataclasses

import keras
import numpy as np
import pytest
import yaml

from nas.deploy.checkpoints import load_model, save_checkpoint
from nas.train.session import _init_from
from search_space.builder import build_model, reference_weight_map
from tests.cli_helpers import run_cli
from tests.export_helpers import released_layout, tiny_spec, write_tf1_checkpoint

CLASSIFIER = ("head/dense/kernel", "head/dense/bias")


def _numpy(model) -> dict:
    return {n: keras.ops.convert_to_numpy(v) for n, v in reference_weight_map(model).items()}


def _data_spec():
    """The tiny spec as `nas train` makes it for the offline digits: 10 classes, no background."""
    return tiny_spec(num_classes=10, include_background=False)


@pytest.fixture(scope="module")
def project_checkpoint(tmp_path_factory):
    """A project checkpoint (spec.yaml beside it) of the tiny model with 5 classes."""
    spec = tiny_spec(num_classes=5, include_background=False)
    source = build_model(spec, seed=3)
    directory = save_checkpoint(source, spec, tmp_path_factory.mktemp("src") / "five")
    return directory, _numpy(source)


def test_init_from_project_checkpoint_replaces_only_the_classifier(project_checkpoint):
    directory, source = project_checkpoint
    spec = _data_spec()
    model = build_model(spec, seed=0)
    fresh = _numpy(model)
    line = _init_from(model, spec, str(directory), spec.fused_stride_on)
    assert "classifier replaced: the checkpoint has 5 classes, the data 10" in line and "\n" not in line
    after = _numpy(model)
    for name, value in after.items():
        if name.endswith(CLASSIFIER):
            np.testing.assert_array_equal(value, fresh[name])  # left as freshly initialised
            assert value.shape[-1] == 10
        else:
            np.testing.assert_array_equal(value, source[name], err_msg=name)
    assert not np.array_equal(after["tiny-edgetpu/stem/conv2d/kernel"], fresh["tiny-edgetpu/stem/conv2d/kernel"])


def test_init_from_released_tf1_checkpoint(tmp_path):
    """A released-layout checkpoint (tf.compat.v1 Saver, 11 outputs with background, EMA twins, RMSProp
    slots): the moving averages are copied in, the classifier is replaced."""
    reference = build_model(dataclasses.replace(tiny_spec(), fused_stride_on="project"), seed=1, drop_connect=False)
    values, extras = released_layout(reference)
    directory = write_tf1_checkpoint(tmp_path / "tiny-edgetpu", values, extras)
    spec = _data_spec()
    model = build_model(spec, seed=0)
    line = _init_from(model, spec, str(directory), spec.fused_stride_on)
    assert "(moving averages)" in line and "the checkpoint has 11 classes, the data 10" in line
    for name, value in _numpy(model).items():
        if not name.endswith(CLASSIFIER):
            np.testing.assert_array_equal(value, values[f"{name}/ExponentialMovingAverage"], err_msg=name)
    # The same class count: everything is copied, the classifier too, and the line says nothing of it.
    same = tiny_spec()
    model = build_model(same, seed=0)
    line = _init_from(model, same, str(directory), same.fused_stride_on)
    assert "replaced" not in line
    np.testing.assert_array_equal(_numpy(model)["tiny-edgetpu/head/dense/kernel"],
                                  values["tiny-edgetpu/head/dense/kernel/ExponentialMovingAverage"])


def test_freeze_until_keeps_early_blocks_through_an_epoch(tmp_path, capsys, project_checkpoint):
    directory, source = project_checkpoint
    (tmp_path / "s.yaml").write_text(tiny_spec().to_yaml())
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": "offline", "max_train": 128},
                                      "train": {"batch_size": 32, "epochs": 1}}))
    code, out, err = run_cli(capsys, "train", "--spec", tmp_path / "s.yaml", "--config", config,
                             "--init-from", directory, "--freeze-until", "1", "--run-dir", tmp_path / "run")
    assert code == 0, err
    assert "classifier replaced: the checkpoint has 5 classes, the data 10" in out
    assert "frozen: stem and blocks 0..0" in out
    raw = _numpy(load_model(tmp_path / "run", use_ema=False).model)
    averaged = _numpy(load_model(tmp_path / "run").model)
    frozen = [n for n in raw if n.split("/")[1] in ("stem", "blocks_0")]
    trained = [n for n in raw if n.split("/")[1] == "blocks_1" and "moving_" not in n]
    assert frozen and trained
    for name in frozen:  # weights AND batch-norm statistics (inference mode), raw and averaged
        np.testing.assert_array_equal(raw[name], source[name], err_msg=name)
        np.testing.assert_allclose(averaged[name], source[name], rtol=1e-6, atol=1e-7, err_msg=name)
    assert all(not np.array_equal(raw[n], source[n]) for n in trained)
