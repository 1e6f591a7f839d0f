"""Crash safety: a `nas train` SIGKILLed after its first checkpoint and resumed ends as an uninterrupted run."""

import os
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
