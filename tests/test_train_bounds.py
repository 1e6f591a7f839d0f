"""Issue 29.4 and 29.5 at the CLI: a model too large for the machine is refused before it is built, by
every command that builds one (one estimate: nas.common.bounds, the search's); a full disk during a
checkpoint is one line naming the directory and the space needed, and leaves no partial file."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest
import yaml

from nas.common import bounds
from nas.search import memory as search_memory
from search_space import get_spec
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.test_train_cli import tiny_spec


def _huge(path, name="huge"):
    """A spec every field of which is in bounds (the largest stem a spec may have, at the largest
    resolution a command builds) that no machine here can hold: the stem's output alone is
    512 x 512 x 65,536 values, about 64 GiB per image."""
    spec = dataclasses.replace(get_spec("efficientnet-edgetpu-S"), name=name, depth=0.25, resolution=1024,
                               stem_filters=65536)
    path.write_text(spec.to_yaml())
    return path


def test_one_estimator_for_the_search_and_the_commands():
    assert search_memory.model_bytes is bounds.model_bytes
    assert search_memory.available_memory is bounds.available_memory
    spec = get_spec("efficientnet-edgetpu-S")
    # Training holds 5 float32 copies of the parameters (weights, gradients, two slots, the average).
    from search_space.counting import model_cost

    params, acts = model_cost(spec).params, bounds.activation_values(spec)
    assert bounds.model_bytes(spec, 8, 5, 4) == 4 * (5 * params + 4 * 8 * acts)
    bounds.check_model_memory(spec, 8, True, "x", available=bounds.model_bytes(spec, 8, 5, 4))
    with pytest.raises(bounds.UserError, match="would need about .* to train .*batch 8 at 224x224"):
        bounds.check_model_memory(spec, 8, True, "x", available=bounds.model_bytes(spec, 8, 5, 4) - 1)


def test_train_refuses_a_model_too_large_before_allocating(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--spec", _huge(tmp_path / "h.yaml"), "--epochs", "1",
                           "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "model 'huge' would need about", "GiB to train", "is available",
                          "--batch-size")
    assert not list((tmp_path / "r").glob("model.ckpt*")) and not (tmp_path / "r" / "train.yaml").exists()


def test_export_and_latency_measure_refuse_a_model_too_large(tmp_path, capsys):
    huge = _huge(tmp_path / "h.yaml")
    code, _, err = run_cli(capsys, "export", "--spec", huge, "--output-tflite", tmp_path / "m.tflite")
    assert_one_line_error(code, err, "model 'huge' would need about", "to build and run", "is available")
    assert not (tmp_path / "m.tflite").exists()
    code, _, err = run_cli(capsys, "latency", "measure", huge, "--source", "tflite-cpu")
    assert_one_line_error(code, err, "model 'huge' would need about", "to build and run")


def test_the_bound_uses_what_the_machine_has(tmp_path, capsys, monkeypatch):
    """A model that fits a large machine is refused on a small one: the check reads available memory."""
    spec = tiny_spec(tmp_path / "s.yaml")
    monkeypatch.setattr(bounds, "available_memory", lambda: 2**20)  # 1 MiB free
    code, _, err = run_cli(capsys, "train", "--spec", spec, "--epochs", "1", "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "model 'tiny' would need about", "0.0 GiB is available")


def _mount_tmpfs(path, size: str) -> bool:
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_disk_during_a_checkpoint_is_one_line_and_leaves_no_partial_file(tmp_path, capsys):
    """A real full file system (a 600 KiB tmpfs, mounted as root): the run's small files fit, the
    checkpoint (about 1.2 MB for this model) does not."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "600k"):
        pytest.skip("mounting a tmpfs needs root")
    try:
        spec = tiny_spec(tmp_path / "s.yaml")
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({"data": {"source": "offline", "max_train": 96, "max_val": 32},
                                          "train": {"batch_size": 32, "epochs": 1}}))
        run = disk / "run"
        code, out, err = run_cli(capsys, "train", "--spec", spec, "--config", config, "--run-dir", run)
        assert_one_line_error(code, err, f"cannot write checkpoint 3 into '{run}'", "the disk is full",
                              "the checkpoint needs about", "MB is free there")
        for internal in ("SaveV2", "function_node", "Op:", "tempstate"):
            assert internal not in err, err
        assert not list(run.glob("model.ckpt*")), list(run.iterdir())  # TF's .tempstate files too
        assert not (run / "checkpoint").exists()
        assert (run / "metrics.csv").is_file()  # the epoch's results are kept
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_disk_that_fills_between_the_data_and_the_index_leaves_no_partial_file(tmp_path):
    """The case users hit: TensorFlow finishes the data shard, then the index finds the disk full and
    the shard stays behind (as large as the model's state). The tmpfs holds the shard and not one page more."""
    import numpy as np

    from nas.common.errors import UserError
    from nas.train import state

    weights = {"m/a/kernel": np.ones(100_000, np.float32)}
    shadows = {"m/a/kernel": np.ones(100_000, np.float32)}
    slots = {"m/a/kernel/RMSProp": np.ones(100_000, np.float32)}
    data = 3 * 400_000 + 8  # the three arrays and global_step
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, str(-(-data // 4096) * 4096)):
        pytest.skip("mounting a tmpfs needs root")
    try:
        with pytest.raises(UserError) as caught:
            state.save(disk, 7, weights, shadows, slots)
        message = str(caught.value)
        assert f"cannot write checkpoint 7 into '{disk}': the disk is full (the checkpoint needs about 1.2 MB" in message
        assert "SaveV2" not in message and "function_node" not in message
        assert sorted(p.name for p in disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)
