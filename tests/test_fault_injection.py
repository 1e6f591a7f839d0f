"""Fault injection on a real local search (tiny config, real proxy training): SIGKILL at staggered
points (just after a journal line, and in the middle of a trial), concurrent starts, a torn journal
line, each followed by `--resume`; the final journal must equal an uninterrupted run's, timing aside.

The default run kills at 3 points (one chain of processes, the first of them racing a second start);
the 10-point version is marked slow. Both reuse one uninterrupted reference run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_helpers import assert_one_line_error, run_cli
from tests.search_helpers import comparable_journal, tiny_config, write_config

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _search(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nas", "search", *map(str, args)], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _lines(journal: Path) -> int:
    return journal.read_bytes().count(b"\n") if journal.exists() else 0


def _kill_after_growth(proc: subprocess.Popen, journal: Path, delay: float, timeout: float = 300) -> bool:
    """SIGKILL `proc` once its journal has grown by a line, `delay` seconds later (0: at once; about half a
    trial: mid-trial). False when it finished first."""
    start = _lines(journal)
    deadline = time.time() + timeout
    while proc.poll() is None and _lines(journal) <= start and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)  # no handler, no finally: a crash or a power cut
    proc.wait()
    return True


def _reference(tmp: Path, trials: int, capsys) -> tuple[Path, list[dict], float]:
    """(config path, the uninterrupted run's journal records, median seconds per trial), run in this
    process: TensorFlow is imported once, and the proxy is deterministic across processes."""
    config = write_config(tmp / "tiny.yaml", tiny_config(run={"trials": trials}))
    code, _, err = run_cli(capsys, "search", "--config", config, "--run-dir", tmp / "reference")
    assert code == 0, err
    journal = tmp / "reference" / "journal.jsonl"
    walls = sorted(json.loads(line)["wall_s"] for line in journal.read_text().splitlines())
    return config, comparable_journal(journal), walls[len(walls) // 2]


def _chain(tmp_path: Path, config: Path, trials: int, delays: list[float], race: bool) -> tuple[Path, int]:
    """Start, kill at each delay (after the next journal line), resume each time; then finish."""
    run = tmp_path / "run"
    journal = run / "journal.jsonl"
    kills = 0
    proc = _search("--config", config, "--run-dir", run, "--trials", trials)
    if race:  # a second start on the same fresh directory: exactly one may own it, the other stops at once
        rival = _search("--config", config, "--run-dir", run, "--trials", trials)
        deadline = time.time() + 300
        while proc.poll() is None and rival.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        loser, proc = (proc, rival) if proc.poll() is not None else (rival, proc)
        loser_err = loser.communicate(timeout=60)[1]
        assert loser.returncode == 2 and "in use by process" in loser_err, loser_err
        assert len(loser_err.strip().splitlines()) == 1
        assert proc.poll() is None  # the owner is still running
    for number, delay in enumerate(delays):
        if not _kill_after_growth(proc, journal, delay):
            break
        kills += 1
        if number == 1:  # a crash mid-write: a torn last line the resume must drop and cut
            with open(journal, "ab") as f:
                f.write(b'{"trial": 99, "decisions": [0, 1')
        proc = _search("--run-dir", run, "--resume")
    assert proc.wait(timeout=900) == 0, proc.stderr.read()
    return journal, kills


def test_three_sigkills_and_a_race_then_resume_equal_an_uninterrupted_run(tmp_path, capsys):
    trials = 4
    config, expected, trial_s = _reference(tmp_path, trials, capsys)
    journal, kills = _chain(tmp_path, config, trials, [0.0, trial_s / 2, 0.0], race=True)
    assert kills == 3
    assert comparable_journal(journal) == expected


@pytest.mark.slow
def test_ten_sigkills_at_staggered_points_then_resume_equal_an_uninterrupted_run(tmp_path, capsys):
    trials = 11
    config, expected, trial_s = _reference(tmp_path, trials, capsys)
    delays = [0.0, trial_s * 0.5, 0.0, trial_s * 0.2, trial_s * 0.8, 0.0, trial_s * 0.5, 0.0, trial_s * 0.3, 0.0]
    journal, kills = _chain(tmp_path, config, trials, delays, race=False)
    assert kills == 10
    assert comparable_journal(journal) == expected


# Root writes through permission bits, so as root (how CI runs) the run directory is made read-only by
# a read-only bind mount of it over itself, in a private mount namespace that only the `nas` process
# sees (unshare -m): nothing outside the test is remounted, and the mount goes when the process exits.
READ_ONLY_MOUNT = ('mount --bind "$RUN" "$RUN" && mount -o remount,ro,bind "$RUN" "$RUN" || exit 97; '
                   'touch "$RUN/probe" 2>/dev/null && exit 98; exec "$@"')


def test_a_read_only_run_directory_is_one_line(tmp_path, capsys):
    from nas.common.lock import acquire_run_lock

    run = tmp_path / "run"
    acquire_run_lock(run).release()
    (run / "config.yaml").write_text("")
    if os.geteuid() != 0:
        os.chmod(run / ".lock", 0o444)
        os.chmod(run, 0o555)
        try:
            code, _, err = run_cli(capsys, "search", "--run-dir", run, "--resume")
        finally:
            os.chmod(run, 0o755)
    else:
        proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", READ_ONLY_MOUNT, "sh",
                               sys.executable, "-m", "nas", "search", "--run-dir", str(run), "--resume"],
                              capture_output=True, text=True, env={**os.environ, "RUN": str(run)}, timeout=120)
        if proc.returncode in (97, 98) or "unshare: " in proc.stderr:
            pytest.skip(f"root, and no read-only bind mount possible here: {proc.stderr.strip()[:200]}")
        code, err = proc.returncode, proc.stderr
    assert_one_line_error(code, err, str(run))
    assert not (run / "probe").exists()


def test_an_unwritable_run_directory_is_one_line(tmp_path, capsys):
    """Root can write anywhere, so unwritable is simulated: the journal's place is taken by a directory."""
    config = write_config(tmp_path / "tiny.yaml", tiny_config(run={"trials": 1}))
    run = tmp_path / "run"
    (run / "journal.jsonl").mkdir(parents=True)
    code, _, err = run_cli(capsys, "search", "--config", config, "--run-dir", run)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
