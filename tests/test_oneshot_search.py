"""A small one-shot search end to end: its controller finds the option a planted latency difference
favours, and the run directory holds a search's files."""

from __future__ import annotations

import json

import pytest
import yaml

pytest.importorskip("tensorflow")

from nas.oneshot.search import OneShotSearch  # noqa: E402
from nas.search.config import config_from_dict, make_latency  # noqa: E402
from tests.oneshot_helpers import TINY_SKELETON  # noqa: E402

FIXED = {"kind": ["mbconv"], "kernel": [3], "expand_ratio": [2], "filter_multiplier": [1.0],
         "repeats_delta": [0], "skip": [True], "se_ratio": [0.0]}


def _config(target_ms: float | None = None, trials: int = 40, every_stage: bool = False):
    stages = {"stages": {2: {"filter_multiplier": [0.5, 4.0]}}}
    data = {
        "run": {"name": "planted", "seed": 0, "trials": trials, "top_k": 2},
        # One free decision: the last stage's width. Wider is slower; the target sits on the narrow one.
        "search_space": {"skeleton": {**TINY_SKELETON, "resolution": 224},
                         "choices": {**FIXED, "filter_multiplier": [0.5, 4.0]} if every_stage else FIXED,
                         **({} if every_stage else stages)},
        "latency": {"source": "sim", **({"target_ms": target_ms} if target_ms else {"target_model": "efficientnet-edgetpu-S"})},
        "reward": {"kind": "absolute", "beta": -4.0},
        "controller": {"name": "tunas", "learning_rate": 0.2, "lr_increase": 2, "rl_delay": 0.1, "op_warmup": 0.0,
                       "filter_warmup": 0.0, "validation_multiplier": 2, "checkpoint_every": 10, "snapshot_every": 5},
        "proxy": {"resolution": 8, "width": 0.5, "batch_size": 16, "optimizer": "adam", "learning_rate": 0.005},
        "data": {"source": "offline", "max_train": 320, "max_val": 64},
    }
    return config_from_dict(data)


def test_planted_latency_difference_is_found(tmp_path):
    probe = _config()
    model, _ = make_latency(probe)
    narrow = model.predict_ms(probe.space.to_spec([0] * 21))
    d_wide = [0] * 21
    d_wide[14 + 3] = 1
    wide = model.predict_ms(probe.space.to_spec(d_wide))
    assert wide > 1.1 * narrow  # the plant: the wide option is clearly off the target
    config = _config(target_ms=narrow)
    best = OneShotSearch(config, tmp_path / "run", say=lambda line: None).run()
    assert best[17] == 0
    state = json.loads((tmp_path / "run" / "oneshot_state.json").read_text())
    final = state["snapshots"][-1]["probabilities"]["17"]
    assert final[0] > 0.8, final
    root = tmp_path / "run"
    for name in ("config.yaml", "journal.jsonl", "trials.csv", "best.yaml", "summary.md", "pareto.png",
                 "probabilities.png"):
        assert (root / name).is_file(), name
    assert len((root / "journal.jsonl").read_text().splitlines()) == 40
    best_spec = yaml.safe_load((root / "best.yaml").read_text())
    assert best_spec["blocks"] == probe.space.to_spec([0] * 21).block_strings


def _write(tmp_path, config, **controller):
    data = config.to_dict()
    data["controller"].update(controller)
    path = tmp_path / "planted.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bad_one_shot_settings_are_one_line_errors(tmp_path, capsys):
    from tests.cli_helpers import assert_one_line_error, run_cli

    path = _write(tmp_path, _config(target_ms=2.0), op_warmup=0.5, rl_delay=0.25)
    code, _, err = run_cli(capsys, "search", "--config", path, "--runs-dir", tmp_path / "runs")
    assert_one_line_error(code, err, "controller.op_warmup")
    path = _write(tmp_path, _config(target_ms=2.0), checkpoint_every=0)
    code, _, err = run_cli(capsys, "search", "--config", path, "--runs-dir", tmp_path / "runs")
    assert_one_line_error(code, err, "controller.checkpoint_every")
    assert not (tmp_path / "runs").exists()


def test_dry_run_states_the_supernet(tmp_path, capsys):
    from tests.cli_helpers import run_cli

    code, out, _ = run_cli(capsys, "search", "--config", _write(tmp_path, _config(target_ms=2.0)), "--dry-run")
    assert code == 0
    assert "supernet: 5 layer slots" in out and "parameters" in out and "MiB" in out


@pytest.mark.slow
def test_resume_after_sigkill_ends_as_an_uninterrupted_run(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    # Every stage's width free: a resumed run with `stages:` overrides is refused by the fingerprint
    # check (int stage keys against the fingerprint's JSON string keys), a multi-trial bug too.
    config = _config(target_ms=2.2, trials=40, every_stage=True)
    path = _write(tmp_path, config, checkpoint_every=10)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "nas", "search", "--config", str(path)]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run(command + ["--run-dir", str(whole)], env=env, check=True, capture_output=True)
    process = subprocess.Popen(command + ["--run-dir", str(cut)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    state = cut / "oneshot_state.json"
    deadline = time.time() + 600
    while time.time() < deadline:  # killed once a checkpoint exists and some later steps are journaled
        journal = cut / "journal.jsonl"
        if state.exists() and journal.exists() and len(journal.read_text().splitlines()) >= 25:
            break
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert json.loads(state.read_text())["step"] in (20, 30)
    subprocess.run([sys.executable, "-m", "nas", "search", "--run-dir", str(cut), "--resume"], env=env, check=True,
                   capture_output=True)

    def lines(root):
        return [{k: v for k, v in json.loads(line).items() if k != "wall_s"}
                for line in (root / "journal.jsonl").read_text().splitlines()]

    assert lines(cut) == lines(whole)
    assert (cut / "best.yaml").read_text() == (whole / "best.yaml").read_text()
    assert json.loads((cut / "oneshot_state.json").read_text())["controller"] == \
        json.loads((whole / "oneshot_state.json").read_text())["controller"]


def test_a_second_process_on_the_run_directory_is_refused(tmp_path, capsys):
    from nas.common.lock import run_lock
    from tests.cli_helpers import assert_one_line_error, run_cli

    path = _write(tmp_path, _config(target_ms=2.0))
    with run_lock(tmp_path / "run"):  # another owner holds the directory
        code, _, err = run_cli(capsys, "search", "--config", path, "--run-dir", tmp_path / "run")
    assert_one_line_error(code, err)
    assert not (tmp_path / "run" / "journal.jsonl").exists()
