"""`nas train` through the CLI: learning on the offline digits, the run directory export/eval take, bad input."""

import dataclasses
import fcntl
import os

import numpy as np
import pytest
import yaml

from nas.deploy.checkpoints import load_model
from search_space import get_spec
from tests.cli_helpers import assert_one_line_error, run_cli


def tiny_spec(path, name="tiny", **changes):
    spec = dataclasses.replace(get_spec("efficientnet-edgetpu-S"), name=name, width=0.25, depth=0.25,
                               resolution=32, **changes)
    path.write_text(spec.to_yaml())
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import pytest as _pytest

    tmp = tmp_path_factory.mktemp("train")
    spec = tiny_spec(tmp / "tiny.yaml")
    run_dir = tmp / "run"
    capsys = _pytest.MonkeyPatch()  # run_cli needs capsys; call main directly instead
    from nas.cli import main
    import contextlib, io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["train", "--spec", str(spec), "--epochs", "3", "--run-dir", str(run_dir)])
    capsys.undo()
    return code, out.getvalue(), spec, run_dir


def test_train_learns_and_writes_the_run_directory(trained):
    code, out, spec, run_dir = trained
    assert code == 0, out
    lines = out.strip().splitlines()
    assert "small preset" in lines[1] and "batch 32 (chosen for the data)" in lines[1]
    assert sum(line.startswith("epoch ") and "ETA" in line and "images/s" in line for line in lines) == 3
    top1 = float(lines[-1].rsplit(" ", 1)[1].rstrip("%"))
    assert lines[-1].startswith("held-out top-1 of the averaged weights")
    assert top1 > 45, out  # chance is 10%
    for name in ("spec.yaml", "metrics.csv", "curves.png", "summary.md", "checkpoint", "train.yaml"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tb").iterdir())
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,loss,top1,top5,lr") and len(rows) == 4
    assert yaml.safe_load((run_dir / "spec.yaml").read_text())["num_classes"] == 10


def test_checkpoint_is_what_export_and_eval_read(trained, capsys):
    code, out, spec, run_dir = trained
    loaded = load_model(run_dir)
    assert loaded.spec.num_classes == 10 and not loaded.spec.include_background and loaded.ema
    code, eval_out, err = run_cli(capsys, "eval", "--ckpt", run_dir, "--offline")
    assert code == 0, err
    top1 = float(out.strip().splitlines()[-1].rsplit(" ", 1)[1].rstrip("%"))
    assert f"{top1:.2f}" in eval_out or f"{top1:.1f}" in eval_out, eval_out


def test_bad_input_is_one_line(tmp_path, capsys, trained):
    spec = tiny_spec(tmp_path / "s.yaml")
    code, _, err = run_cli(capsys, "train", "--spec", spec, "--epochs", "0", "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "--epochs")
    code, _, err = run_cli(capsys, "train", "--resume", "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "nothing to resume", "no train.yaml")
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "train", "--spec", spec, "--data-dir", tmp_path / "empty", "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "no class subfolders")
    from PIL import Image

    one = tmp_path / "one" / "cat"
    one.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(one / f"{i}.png")
    code, _, err = run_cli(capsys, "train", "--spec", spec, "--data-dir", tmp_path / "one", "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "at least 2")
    (tmp_path / "one" / "dog").mkdir()
    (tmp_path / "one" / "dog" / "bad.png").write_bytes(b"not a png")
    code, _, err = run_cli(capsys, "train", "--spec", spec, "--data-dir", tmp_path / "one", "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "cannot read image", "bad.png")
    # A checkpoint of another architecture: one line, and the trained run is left as it was.
    other = tiny_spec(tmp_path / "o.yaml", name="other")
    before = sorted(p.name for p in trained[3].iterdir())
    code, _, err = run_cli(capsys, "train", "--spec", other, "--init-from", trained[3], "--epochs", "1",
                           "--run-dir", tmp_path / "r2")
    assert_one_line_error(code, err, "is of model 'tiny', not 'other'")
    assert sorted(p.name for p in trained[3].iterdir()) == before
    # An existing run without --resume is refused rather than overwritten.
    code, _, err = run_cli(capsys, "train", "--spec", spec, "--run-dir", trained[3])
    assert_one_line_error(code, err, "already holds a training run")


def test_second_process_on_a_run_dir_names_the_holder(tmp_path, capsys):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242\n")
    try:
        spec = tiny_spec(tmp_path / "s.yaml")
        code, _, err = run_cli(capsys, "train", "--spec", spec, "--epochs", "1", "--run-dir", run_dir)
        assert_one_line_error(code, err, "in use by process 4242")
    finally:
        os.close(fd)


def test_an_empty_class_folder_is_refused_and_the_counts_are_printed(tmp_path, capsys):
    """Issue 29.6: an empty class folder is refused naming it (skipping it would shift every later
    label); hidden folders are not classes; the training images per class are printed at the start."""
    from PIL import Image

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for name, count in (("cat", 20), ("dog", 15)):
        (data / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), np.uint8)).save(data / name / f"{i}.png")
    (data / "bird").mkdir()
    (data / "bird" / "notes.txt").write_text("no images here")
    (data / ".ipynb_checkpoints").mkdir()
    spec = tiny_spec(tmp_path / "s.yaml")
    code, _, err = run_cli(capsys, "train", "--spec", spec, "--data-dir", data, "--epochs", "1", "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, f"class folder '{data / 'bird'}' has no images")
    (data / "bird" / "notes.txt").unlink()
    (data / "bird").rmdir()
    code, out, err = run_cli(capsys, "train", "--spec", spec, "--data-dir", data, "--epochs", "1",
                             "--batch-size", "4", "--run-dir", tmp_path / "r")
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("training images per class: "))
    counts = dict(pair.split(" ") for pair in line.split(": ", 1)[1].split(", "))
    assert set(counts) == {"cat", "dog"}  # not .ipynb_checkpoints
    assert f"{sum(map(int, counts.values()))} training" in out  # the data line's count
    assert 12 <= int(counts["cat"]) <= 20 and 9 <= int(counts["dog"]) <= 15  # a fixed 20% held out


def test_eval_and_export_of_a_checkpoint_too_large_to_build_are_one_line(trained, tmp_path, capsys):
    """Issue 29.4 for a checkpoint: its spec.yaml (edited to the largest stem a spec may have, at the
    largest resolution a command builds) is checked before the build."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained[3], copy)
    spec = yaml.safe_load((copy / "spec.yaml").read_text())
    spec.update(stem_filters=65536, resolution=1024)
    (copy / "spec.yaml").write_text(yaml.safe_dump(spec))
    code, _, err = run_cli(capsys, "eval", "--ckpt", copy, "--offline")
    assert_one_line_error(code, err, "model 'tiny' would need about", "GiB to build and run", "batch 32", "is available")
    code, _, err = run_cli(capsys, "export", "--ckpt", copy, "--output-tflite", tmp_path / "m.tflite")
    assert_one_line_error(code, err, "model 'tiny' would need about", "is available")
    assert not (tmp_path / "m.tflite").exists()
