"""Crash safety: a `nas train` SIGKILLed after its first checkpoint and resumed ends as an uninterrupted run."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from tests.test_train_cli import tiny_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _nas(*args, **kw):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "nas", *map(str, args)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _metrics(run_dir):
    lines = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    return np.array([[float(x) for x in line.split(",")[:6]] for line in lines])


def kill_then_resume_matches_whole(args, tmp_path, epochs: int) -> tuple[str, str]:
    """Runs `nas *args` uninterrupted in tmp_path/whole and, at once, in tmp_path/killed, SIGKILLs the
    second after its first checkpoint, resumes it, and checks both end with the same metrics.
    Returns (the uninterrupted run's output, the resumed run's output)."""
    whole = _nas(*args, "--run-dir", tmp_path / "whole")
    killed = _nas(*args, "--run-dir", tmp_path / "killed")
    state = tmp_path / "killed" / "checkpoint"
    deadline = time.time() + 240
    while not state.exists() and time.time() < deadline and killed.poll() is None:
        time.sleep(0.05)
    assert state.exists(), killed.stdout.read()
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    out_whole = whole.communicate(timeout=300)[0]
    assert whole.returncode == 0, out_whole
    resumed = _nas(*args, "--run-dir", tmp_path / "killed", "--resume")
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    a, b = _metrics(tmp_path / "whole"), _metrics(tmp_path / "killed")
    assert a.shape == b.shape == (epochs, 6)
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-4)  # loss, top-1, top-5, lr: float noise only
    return out_whole, out


@pytest.mark.slow  # two training processes at once, then a third: about 2.5 min on 2 shared cores
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    spec = tiny_spec(tmp_path / "s.yaml")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": "offline", "max_train": 480},
                                      "train": {"batch_size": 32, "epochs": 3}}))
    out_whole, out = kill_then_resume_matches_whole(("train", "--spec", spec, "--config", config), tmp_path, 3)
    assert "resumed from" in out and "epoch 1 of 3" in out, out
    assert out.strip().splitlines()[-1] == out_whole.strip().splitlines()[-1]


# Issue 29.2: resume from the directory alone --------------------------------------------------------

from tests.cli_helpers import assert_one_line_error, run_cli  # noqa: E402

COMPARED = slice(0, 6)  # epoch, step, loss, top1, top5, lr (not images/s or seconds)


def _short_config(path, **data):
    path.write_text(yaml.safe_dump({"data": {"source": "offline", "max_train": 192, "max_val": 64, **data},
                                    "train": {"batch_size": 32, "epochs": 2}}))
    return path


def test_resume_from_the_directory_alone_and_flags_that_contradict_it(tmp_path, capsys):
    spec, config = tiny_spec(tmp_path / "s.yaml"), _short_config(tmp_path / "c.yaml")
    whole = tmp_path / "whole"
    code, _, err = run_cli(capsys, "train", "--spec", spec, "--config", config, "--run-dir", whole)
    assert code == 0, err
    # Killed after its data loaded, before its first checkpoint: train.yaml is all there is. --resume
    # from the directory alone starts it from the beginning, with the recorded spec, data and recipe.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(whole / "train.yaml", fresh / "train.yaml")
    code, out, err = run_cli(capsys, "train", "--run-dir", fresh, "--resume")
    assert code == 0, err
    assert f"no checkpoint in '{fresh}' yet: starting the run from the beginning" in out
    np.testing.assert_allclose(_metrics(fresh)[:, COMPARED], _metrics(whole)[:, COMPARED], rtol=1e-4, atol=2e-4)
    # Flags that contradict the record: one line naming each, and the run is left as it was.
    before = {p.name: p.read_bytes() for p in whole.iterdir() if p.is_file()}
    other = tiny_spec(tmp_path / "o.yaml", name="tiny", stem_filters=16)
    for flags, named in ((["--seed", "5"], "--seed: train.seed (0 in the run, 5 now)"),
                         (["--batch-size", "16"], "--batch-size: train.batch_size (32 in the run, 16 now)"),
                         (["--spec", other], "the model (--model/--spec), in spec.stem_filters"),
                         (["--config", _short_config(tmp_path / "c2.yaml", max_train=160)],
                          "data.max_train (192 in the run, 160 now)")):
        code, _, err = run_cli(capsys, "train", "--run-dir", whole, "--resume", *flags)
        assert_one_line_error(code, err, "--resume: settings differ from what run", named, "Only --epochs may change")
    assert {p.name: p.read_bytes() for p in whole.iterdir() if p.is_file()} == before
    # --epochs may grow: the run goes on from its last checkpoint, its first epochs kept.
    code, out, err = run_cli(capsys, "train", "--run-dir", whole, "--resume", "--epochs", "3")
    assert code == 0, err
    assert "resumed from" in out and "step 12, epoch 2 of 3" in out, out
    grown = _metrics(whole)
    assert grown.shape[0] == 3 and grown[2, 1] == 18
    kept = before["metrics.csv"].decode().splitlines()
    assert (whole / "metrics.csv").read_text().splitlines()[:3] == kept  # header and the 2 epochs, as written
    assert yaml.safe_load((whole / "train.yaml").read_text())["train"]["epochs"] == 3
    # Killed after its last checkpoint (before its summary): the resume writes the summary, trains nothing.
    (whole / "summary.md").unlink()
    code, out, err = run_cli(capsys, "train", "--run-dir", whole, "--resume")
    assert code == 0, err
    assert "has already trained its 3 epochs: writing its summary" in out and "epoch 4" not in out
    assert (whole / "summary.md").is_file() and (whole / "metrics.csv").read_text().splitlines()[:3] == kept
    code, _, err = run_cli(capsys, "train", "--run-dir", whole, "--resume", "--epochs", "2")
    assert_one_line_error(code, err, "--epochs 2 is below the 3 epochs")
    assert yaml.safe_load((whole / "train.yaml").read_text())["train"]["epochs"] == 3


def test_resume_with_nothing_recorded_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--resume")
    assert_one_line_error(code, err, "--resume needs --run-dir DIR")
    (tmp_path / "r").mkdir()
    code, _, err = run_cli(capsys, "train", "--run-dir", tmp_path / "r", "--resume")
    assert_one_line_error(code, err, f"nothing to resume in '{tmp_path / 'r'}' (no train.yaml")
    (tmp_path / "r" / "train.yaml").write_text("spec: [unclosed")
    code, _, err = run_cli(capsys, "train", "--run-dir", tmp_path / "r", "--resume")
    assert_one_line_error(code, err, "train.yaml' is damaged")
