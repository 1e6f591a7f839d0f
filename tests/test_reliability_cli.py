"""Issue 12 (reliability), each problem a user hit, at the CLI: one owner per run directory, seeds of
any size, all-failed searches, resource bounds, resume integrity, messages that name the right thing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nas.common.lock import acquire_run_lock
from nas.common.seeds import SAFE_LIMIT, fit_seed
from nas.search.config import config_from_dict
from nas.search.journal import Journal
from nas.search.loop import Search
from nas.search.trial_runner import trial_seed
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.search_helpers import SpecOnlyEvaluator, tiny_config, write_config

ROOT = Path(__file__).resolve().parents[1]


def _spec_only_run(tmp_path: Path, trials: int = 3, **sections) -> Path:
    """A finished run directory made without training (the evaluator is a fixed function of the spec)."""
    run = tmp_path / "run"
    config = config_from_dict(tiny_config(run={"trials": trials}, **sections), "tiny")
    Search(config, run, evaluator=SpecOnlyEvaluator(), say=lambda line: None).run()
    return run


# 1. One owner per run directory -------------------------------------------------------------------

def test_a_second_search_on_a_held_run_dir_stops_at_once_naming_the_holder(tmp_path, capsys):
    run = _spec_only_run(tmp_path)
    before = (run / "journal.jsonl").read_bytes()
    with acquire_run_lock(run):  # as another `nas search --resume` would hold it
        # A lock taken blocking would wait here forever (this process holds it): the alarm turns that into
        # a failure, not a hang. A hang guard, not a time limit.
        def waited(*_):
            raise AssertionError("the second search waited for the lock instead of stopping")

        previous = signal.signal(signal.SIGALRM, waited)
        signal.alarm(300)
        try:
            code, _, err = run_cli(capsys, "search", "--run-dir", run, "--resume", "--trials", "5")
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    assert_one_line_error(code, err, f"in use by process {os.getpid()}")
    assert (run / "journal.jsonl").read_bytes() == before  # nothing appended


def test_the_kernel_releases_the_lock_of_a_killed_holder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from nas.common.lock import acquire_run_lock; "
         "l = acquire_run_lock(sys.argv[1]); print('held', flush=True); time.sleep(120)", str(tmp_path / "r")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    from nas.common.errors import UserError

    with pytest.raises(UserError, match=f"in use by process {holder.pid}"):
        acquire_run_lock(tmp_path / "r")
    holder.kill()  # SIGKILL: no cleanup code runs
    holder.wait()
    with acquire_run_lock(tmp_path / "r") as lock:  # no stale lock left behind
        assert lock.held


def test_run_dir_that_is_a_file_is_named_as_such(tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", tiny_config())
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(capsys, "search", "--config", config, "--run-dir", tmp_path / "afile")
    assert_one_line_error(code, err, "is a file, not a directory")
    assert "File exists" not in err
    code, _, err = run_cli(capsys, "search", "--run-dir", tmp_path / "afile", "--resume")
    assert_one_line_error(code, err, "is a file, not a directory")


# 2. Seeds --------------------------------------------------------------------------------------------

def test_seeds_that_worked_keep_their_values_and_any_seed_fits_every_library():
    assert trial_seed(3, 5) == 3 * 100_003 + 5  # unchanged: earlier runs reproduce
    for seed in (42_950, 123_456, 2**40, 10**30):
        derived = [trial_seed(seed, i) for i in range(50)]
        assert all(0 <= s < SAFE_LIMIT for s in derived)
        assert len(set(derived)) == 50  # still one seed per trial
    assert fit_seed(10**30, "a") != fit_seed(10**30, "b")


def test_a_large_seed_trains_through_the_cli(tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(run={"trials": 1}))
    code, out, err = run_cli(capsys, "search", "--config", config, "--runs-dir", tmp_path, "--seed", "123456")
    assert code == 0, err
    (trial,) = Journal(tmp_path / "tiny" / "journal.jsonl").read()
    assert trial.ok, trial.error


# 3. Resource bounds ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [2048, 100_000])
def test_proxy_resolution_above_the_maximum_is_refused(tmp_path, capsys, value):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(proxy={"resolution": value}))
    code, _, err = run_cli(capsys, "search", "--config", config, "--runs-dir", tmp_path)
    assert_one_line_error(code, err, "proxy.resolution", "1024")
    assert not (tmp_path / "tiny").exists()


def test_a_data_set_that_cannot_fit_in_memory_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    from nas.search import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 2**20)  # 1 MiB free
    config = write_config(tmp_path / "tiny.yaml", tiny_config())
    code, _, err = run_cli(capsys, "search", "--config", config, "--runs-dir", tmp_path)
    assert_one_line_error(code, err, "data set would need", "proxy.resolution")
    assert not (tmp_path / "tiny").exists()  # nothing written


def test_a_candidate_that_cannot_fit_in_memory_is_refused(tmp_path, capsys, monkeypatch):
    from nas.search import memory

    config = config_from_dict(tiny_config(), "tiny")
    data = memory.data_bytes(memory.image_count(config.data), 16)
    monkeypatch.setattr(memory, "available_memory", lambda: data + 1024)
    path = write_config(tmp_path / "tiny.yaml", tiny_config())
    code, _, err = run_cli(capsys, "search", "--config", path, "--runs-dir", tmp_path)
    assert_one_line_error(code, err, "largest candidate would need", "proxy.batch_size")


@pytest.mark.parametrize("argv", [
    ["latency", "measure", "efficientnet-edgetpu-S", "--resolution", "100000"],
    ["latency", "measure", "efficientnet-edgetpu-S", "--resolution", "0"],
    ["latency", "predict", "efficientnet-edgetpu-S", "--resolution", "-3"],
    ["latency", "measure", "efficientnet-edgetpu-S", "--threads", "0"],
])
def test_latency_flags_out_of_range_are_usage_errors(capsys, argv):
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, argv[-2])
    assert "model" not in err.split(argv[-2])[0].split("error:")[-1]  # blames the flag, not the model


def test_export_of_a_spec_with_a_huge_resolution_is_refused(tmp_path, capsys):
    from tests.export_helpers import tiny_spec

    spec = tmp_path / "big.yaml"  # a valid spec (specs go up to 8192 px) that no command builds
    spec.write_text(tiny_spec(resolution=5000).to_yaml())
    code, _, err = run_cli(capsys, "export", "--spec", spec, "--output-tflite", tmp_path / "m.tflite")
    assert_one_line_error(code, err, "resolution", "1024")
    assert not (tmp_path / "m.tflite").exists()


def test_scale_to_a_huge_resolution_is_refused_before_writing(tmp_path, capsys):
    code, _, err = run_cli(capsys, "scale", "--model", "efficientnet-edgetpu-S", "--phi", "5", "--gamma", "2",
                           "--output-dir", tmp_path / "out")
    assert_one_line_error(code, err, "resolution", "1024")
    assert not (tmp_path / "out").exists()


# 4. Resume integrity -----------------------------------------------------------------------------------

def test_resume_after_editing_the_runs_config_is_refused_naming_every_change(tmp_path, capsys):
    run = _spec_only_run(tmp_path)
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["run"]["seed"] = 99
    data["search_space"]["choices"]["kernel"] = [3, 7]
    (run / "config.yaml").write_text(yaml.safe_dump(data))
    code, _, err = run_cli(capsys, "search", "--run-dir", run, "--resume")
    assert_one_line_error(code, err, "run.seed (3 in the run, 99 now)", "kernel", "2 field(s)")
    assert len(Journal(run / "journal.jsonl").read()) == 3


def test_resume_with_another_config_file_is_refused(tmp_path, capsys):
    run = _spec_only_run(tmp_path)
    other = write_config(tmp_path / "other.yaml", tiny_config(run={"seed": 7}, proxy={"epochs": 2}))
    code, _, err = run_cli(capsys, "search", "--config", other, "--run-dir", run, "--resume")
    assert_one_line_error(code, err, "run.seed", "proxy.epochs")


def test_resume_may_grow_the_budget_but_not_shrink_it_below_the_finished(tmp_path, capsys):
    run = _spec_only_run(tmp_path, trials=3)
    code, _, err = run_cli(capsys, "search", "--run-dir", run, "--resume", "--trials", "2")
    assert_one_line_error(code, err, "--trials 2 is below the 3 trial(s)")
    config = config_from_dict(tiny_config(run={"trials": 5}), "tiny")
    trials = Search(config, run, evaluator=SpecOnlyEvaluator(), say=lambda line: None).run(resume=True)
    assert [t.trial for t in trials] == [0, 1, 2, 3, 4]


def test_a_broken_run_config_is_one_line_naming_the_place(tmp_path, capsys):
    run = _spec_only_run(tmp_path)
    (run / "config.yaml").write_text("run:\n  seed: [1, 2\n  trials: 4\n")
    code, _, err = run_cli(capsys, "search", "--run-dir", run, "--resume")
    assert_one_line_error(code, err, "config.yaml: not valid YAML at line")


# 7. Names people see ---------------------------------------------------------------------------------------

def test_best_yaml_names_the_trial_as_the_summary_counts(tmp_path):
    run = _spec_only_run(tmp_path)
    best = (run / "best.yaml").read_text()
    header = best.splitlines()[0]  # "# run 'tiny', rank 1: trial N, ..."
    number = int(header.split("trial ")[1].split(",")[0])
    assert f"name: tiny-trial{number:04d}" in best
    assert f"Best: trial {number}," in (run / "summary.md").read_text()


def test_latency_measure_on_a_directory_says_it_is_a_directory(tmp_path, capsys):
    code, _, err = run_cli(capsys, "latency", "measure", tmp_path)
    assert_one_line_error(code, err, "is a directory")
    assert "does not exist" not in err
