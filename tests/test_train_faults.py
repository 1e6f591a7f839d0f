"""Fault injection on real `nas train` processes (tiny model, real training): SIGKILL at staggered
points across epochs (inside a checkpoint write, just after one, in the middle of an epoch), each
followed by `nas train --run-dir R --resume` (the directory alone); the final checkpoint (weights,
moving averages, optimiser slots, step) and the metrics must equal an uninterrupted run's.

A kill "inside a checkpoint write" is aimed, not assumed: a watcher spins on the run directory and
kills the moment files of a step newer than the one the state file names appear (SaveV2 has
started, the state file is not replaced yet). The model's head is wide (20,000 filters on a 1x1
feature map: little compute, a 24 MB checkpoint) so a write lasts long enough to be hit; the test
checks afterwards which kills landed inside a write and requires at least one.

The default run kills at 3 points; the 10-point version is marked slow. Both reuse one uninterrupted
reference run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.test_train_cli import tiny_spec

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
CKPT = re.compile(r"model\.ckpt-(\d+)\.")
STEPS_PER_EPOCH = 48  # 192 images, batch 4


def _train(run: Path, *args) -> subprocess.Popen:
    log = open(run.parent / f"{run.name}.{time.monotonic_ns()}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "nas", "train", "--run-dir", str(run), *map(str, args)],
                            cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)


def _named(run: Path) -> int:
    """The step the state file names (-1: none yet)."""
    try:
        match = re.search(r'model\.ckpt-(\d+)"', (run / "checkpoint").read_text())
    except OSError:
        return -1
    return int(match.group(1)) if match else -1


def _newer_files(run: Path) -> bool:
    """Files of a checkpoint newer than the one named: a write in progress."""
    try:
        names = os.listdir(run)
    except OSError:
        return False
    named = _named(run)
    return any(int(m.group(1)) > named for n in names if (m := CKPT.match(n)))


def _kill(proc: subprocess.Popen, where: str, epoch_s: float, timeout: float = 300) -> str | None:
    """SIGKILL `proc` at `where`: "write" (inside the next checkpoint write), "after" (the moment the
    state file names a newer checkpoint), "mid" (half an epoch after the next checkpoint). Returns
    where it landed ("write" only if files of an unnamed checkpoint were left), None if it finished."""
    run = Path(proc.args[proc.args.index("--run-dir") + 1])
    start, deadline = _named(run), time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        time.sleep(0.001)  # not a busy loop: on a small machine it would starve the training it watches
        if where == "write" and _newer_files(run):
            break
        if where != "write" and _named(run) > start:
            if where == "mid":
                time.sleep(epoch_s / 2)
            break
    if proc.poll() is not None:
        return None
    proc.send_signal(signal.SIGKILL)  # no handler, no finally: a crash or a power cut
    proc.wait()
    return "write" if where == "write" and _newer_files(run) else ("after" if where == "write" else where)


def _tensors(run: Path) -> dict:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(run))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def _metrics(run: Path) -> np.ndarray:
    lines = (run / "metrics.csv").read_text().splitlines()[1:]
    return np.array([[float(x) for x in line.split(",")[:6]] for line in lines])  # not images/s, seconds


def _reference(tmp: Path, epochs: int) -> tuple[tuple, Path, float]:
    spec = tiny_spec(tmp / "s.yaml", head_filters=20_000)
    config = tmp / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": "offline", "max_train": 192, "max_val": 32},
                                      "train": {"batch_size": 4, "epochs": epochs}}))
    args = ("--spec", spec, "--config", config)
    # A process of its own, as every run of the campaign: the test process's TensorFlow state (set by
    # whichever tests ran before in it) must not be part of the comparison.
    done = _train(tmp / "reference", *args)
    assert done.wait(timeout=600) == 0, sorted(tmp.glob("reference.*.log"))[-1].read_text()[-2000:]
    seconds = sorted(float(line.split(",")[7]) for line in (tmp / "reference" / "metrics.csv").read_text().splitlines()[1:])
    return args, tmp / "reference", seconds[len(seconds) // 2]


def _campaign(tmp: Path, args: tuple, points: list[str], epoch_s: float) -> tuple[Path, list[str]]:
    run = tmp / "run"
    proc = _train(run, *args)
    landed = []
    for where in points:
        at = _kill(proc, where, epoch_s)
        if at is None:
            break
        landed.append(at)
        proc = _train(run, "--resume")  # the directory alone
    assert proc.wait(timeout=600) == 0, "\n".join(p.read_text()[-2000:] for p in sorted(tmp.glob("run.*.log"))[-1:])
    return run, landed


def _assert_equal_runs(run: Path, reference: Path, epochs: int) -> None:
    ours, theirs = _tensors(run), _tensors(reference)
    assert sorted(ours) == sorted(theirs)
    assert int(ours["global_step"]) == epochs * STEPS_PER_EPOCH
    for name in theirs:  # weights, their moving averages, the optimiser slots
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(_metrics(run), _metrics(reference), rtol=1e-5, atol=1e-6)
    step = epochs * STEPS_PER_EPOCH  # nothing a kill left behind survives the next checkpoint
    assert sorted(p.name for p in run.glob("model.ckpt*")) == [f"model.ckpt-{step}.data-00000-of-00001",
                                                                f"model.ckpt-{step}.index"]


def test_three_sigkills_across_epochs_then_resume_equal_an_uninterrupted_run(tmp_path):
    epochs = 3
    args, reference, epoch_s = _reference(tmp_path, epochs)
    # Inside epoch 1's checkpoint write (the resume starts from the beginning), in the middle of epoch 2,
    # and just after epoch 2's checkpoint.
    run, landed = _campaign(tmp_path, args, ["write", "mid", "after"], epoch_s)
    assert landed == ["write", "mid", "after"], landed  # the first kill inside the first checkpoint's write
    _assert_equal_runs(run, reference, epochs)


@pytest.mark.slow
def test_ten_sigkills_at_staggered_points_then_resume_equal_an_uninterrupted_run(tmp_path):
    epochs = 8
    args, reference, epoch_s = _reference(tmp_path, epochs)
    points = ["write", "mid", "after", "write", "mid", "write", "after", "mid", "write", "write"]
    run, landed = _campaign(tmp_path, args, points, epoch_s)
    assert len(landed) == 10, landed
    assert "write" in landed, landed  # at least one kill inside a checkpoint write
    _assert_equal_runs(run, reference, epochs)
