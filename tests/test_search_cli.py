"""`nas search` end to end with real proxy training: outputs, determinism, SIGKILL and --resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.search.config import config_from_dict
from nas.controllers import make_controller
from nas.search.journal import Journal
from nas.search.loop import FAILED_REWARD
from nas.search.snapshot import load_snapshot
from tests.cli_helpers import run_cli
from tests.search_helpers import tiny_config, write_config

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = {"config.yaml", "journal.jsonl", "controller.json", "trials.csv", "best.yaml", "summary.md", "pareto.png"}


def _replayed_state(config, trials):
    """A fresh controller fed the journal: it must propose exactly the journal's decisions, in order."""
    controller = make_controller(config.controller, config.space.cardinalities, config.controller_options,
                                 seed=config.run.seed)
    for t in trials:
        assert controller.ask() == t.decisions, f"trial {t.trial} is not what the controller would have asked"
        controller.tell(t.decisions, t.reward if t.ok else FAILED_REWARD)
    return controller.state()


def _search(capsys, config, runs):
    code, out, err = run_cli(capsys, "search", "--config", str(config), "--runs-dir", str(runs))
    assert code == 0, err
    return out, Journal(runs / "tiny" / "journal.jsonl").read()


def test_search_writes_every_output_with_progress(tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(run={"trials": 3}))
    out, trials = _search(capsys, config, tmp_path)
    run = tmp_path / "tiny"
    assert OUTPUTS <= {p.name for p in run.iterdir()} and (run / "top" / "1.yaml").is_file()
    assert [line.split()[1] for line in out.splitlines() if line.startswith("trial ")] == ["1/3", "2/3", "3/3"]
    assert "# Search 'tiny'" in out and "Best: trial" in out
    assert all(t.ok for t in trials)
    # The journal's accuracy is what the proxy gives that spec with that trial's seed, trained again here.
    from nas.proxy.jobs import ProxyJob, run_jobs
    from nas.search.config import load_config
    from nas.search.trial_runner import trial_seed
    from search_space import ModelSpec

    loaded = load_config(config)
    job = ProxyJob(ModelSpec.from_dict(trials[0].spec), loaded.proxy.resolution, trial_seed(loaded.run.seed, 0))
    (outcome,) = run_jobs(loaded, [job])
    assert outcome.accuracy == pytest.approx(trials[0].accuracy, abs=1e-9)


@pytest.mark.slow
def test_the_same_seed_repeats_the_whole_search(tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(run={"trials": 5}))
    _, first = _search(capsys, config, tmp_path / "a")
    _, second = _search(capsys, config, tmp_path / "b")
    # same architectures, and (deterministic training) the same accuracies and rewards, PPO updates included
    assert [(t.decisions, t.accuracy, t.reward) for t in second] == [(t.decisions, t.accuracy, t.reward) for t in first]


def test_a_nan_loss_trial_is_recorded_as_failed_through_the_cli(tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(run={"trials": 2}, proxy={"learning_rate": 1e12}))
    code, out, err = run_cli(capsys, "search", "--config", str(config), "--runs-dir", str(tmp_path))
    assert code == 1 and "every one of the 2 trials failed" in err, err  # issue 12: all failed is not success
    trials = Journal(tmp_path / "tiny" / "journal.jsonl").read()
    assert [t.status for t in trials] == ["failed", "failed"] and "training loss became" in trials[0].error
    assert "FAILED (TrialFailed: training loss became" in out and "trial 2/2" in out


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_completes_with_nothing_lost_or_repeated(tmp_path):
    trials_wanted = 7
    config_path = write_config(tmp_path / "tiny.yaml", tiny_config(run={"trials": trials_wanted}))
    run = tmp_path / "runs" / "tiny"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "nas", "search"]
    proc = subprocess.Popen(command + ["--config", str(config_path), "--runs-dir", str(tmp_path / "runs")],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = run / "journal.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)  # no handler, no finally: as a crash or a power cut
    proc.wait()
    before = journal.read_bytes()
    killed_at = len(Journal(journal).read())
    assert 3 <= killed_at < trials_wanted

    resumed = subprocess.run(command + ["--run-dir", str(run), "--resume"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming 'tiny' after {killed_at} finished trial(s)" in resumed.stdout
    trials = Journal(journal).read()
    assert [t.trial for t in trials] == list(range(trials_wanted))  # none missing, none twice
    assert journal.read_bytes().startswith(before.rstrip(b"\n").rsplit(b"\n", 1)[0])  # finished lines untouched
    progress = [line for line in resumed.stdout.splitlines() if line.startswith("trial ")]
    assert [line.split()[1] for line in progress] == [f"{i}/{trials_wanted}" for i in range(killed_at + 1, trials_wanted + 1)]
    config = config_from_dict(tiny_config(run={"trials": trials_wanted}), "tiny")
    saved_trials, saved_state = load_snapshot(run / "controller.json")
    assert saved_trials == trials_wanted
    assert saved_state == json.loads(json.dumps(_replayed_state(config, trials)))  # the state carried across the kill
    assert OUTPUTS <= {p.name for p in run.iterdir()}
