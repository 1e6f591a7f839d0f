"""The local backend with `execution.max_concurrent: 2`: trials in worker processes, journaled in trial order.

Real searches on the tiny config (real proxy training, the mnas controller with `unique: true` and a
batch of 3, so the snapshot barrier at trial 8 falls inside a batch). One uninterrupted
one-at-a-time run (with a worker's TensorFlow threads, see REFERENCE) is the reference for (a) the same search with 2 workers, (b) one
whose worker is SIGKILLed mid-trial, and (c) one interrupted by Ctrl-C and then by a SIGKILL of its
driver, each time resumed; (d) config validation and the memory check need no training.
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

from nas.common.errors import ConfigError
from nas.search.config import config_from_dict
from tests.cli_helpers import run_cli
from tests.search_helpers import comparable_journal, tiny_config, write_config

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
TRIALS = 9

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds worker processes in /proc")


def _config(max_concurrent: int | None, **run) -> dict:
    return tiny_config(run={"trials": TRIALS, **run}, controller={"batch_size": 3, "unique": True},
                       execution={"max_concurrent": max_concurrent})


# The one-at-a-time reference runs with a worker's TensorFlow threads (those of 2 workers): TensorFlow's
# CPU kernels split their sums by the thread count even with op determinism, so at the default thread
# count a trial's loss differs in its last digits (and now and then its accuracy by a validation image).
REFERENCE = """
import sys
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
tf.config.threading.set_inter_op_parallelism_threads(1)
from nas.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted one-at-a-time run's directory."""
    from nas.search.parallel import worker_threads

    tmp = tmp_path_factory.mktemp("reference")
    config = write_config(tmp / "tiny.yaml", _config(None))
    done = subprocess.run([sys.executable, "-c", REFERENCE, str(worker_threads(2)), "search", "--config", config,
                           "--run-dir", tmp / "run"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return tmp / "run"


def _search(*args, stdout=subprocess.PIPE) -> subprocess.Popen:
    # The driver must take Ctrl-C as from a terminal even where this process ignores SIGINT, as a
    # background job of a non-interactive shell does (`pytest ... &`: bash sets SIGINT to SIG_IGN) and
    # a Python child would keep it ignored. A handled signal is reset to its default action by exec.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen([sys.executable, "-m", "nas", "search", *map(str, args)], cwd=ROOT, env=ENV,
                                stdout=stdout, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # state, ppid, ..., utime (11), stime (12)


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _workers(driver: int) -> list[int]:
    """The trial workers the driver spawned (multiprocessing's spawn_main children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and int(fields[1]) == driver:
            try:
                if b"spawn_main" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _cpu_ticks(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[11]) + int(fields[12]) if fields else -1


def _wait_lines(proc: subprocess.Popen, journal: Path, lines: int, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while (not journal.exists() or journal.read_bytes().count(b"\n") < lines) and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)


def _busy_worker(driver: int, timeout: float = 120) -> int:
    """A worker that is training now (its CPU time grows), not one waiting for its next trial."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        before = {pid: _cpu_ticks(pid) for pid in _workers(driver)}
        time.sleep(0.3)
        busy = [pid for pid, ticks in before.items() if _cpu_ticks(pid) > ticks + 5]
        if busy:
            return busy[0]
    raise AssertionError("no busy worker found")


def _assert_gone(pids: list[int], timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "worker processes outlived their search"


# (a) ------------------------------------------------------------------------------------------------

def test_two_workers_propose_and_record_what_one_at_a_time_does(tmp_path, capsys, reference):
    config = write_config(tmp_path / "tiny.yaml", _config(2))
    code, out, err = run_cli(capsys, "search", "--config", config, "--run-dir", tmp_path / "run")
    assert code == 0, err
    assert f"{TRIALS} trials locally, 2 at once in worker processes" in out
    records = comparable_journal(tmp_path / "run" / "journal.jsonl")
    assert [r["trial"] for r in records] == list(range(TRIALS))  # sequential: the journal is in trial order
    assert records == comparable_journal(reference / "journal.jsonl")  # decisions, accuracies, rewards: all equal
    saved = json.loads((tmp_path / "run" / "controller.json").read_text())
    assert saved == json.loads((reference / "controller.json").read_text())
    assert _workers(os.getpid()) == []  # every worker was stopped and reaped


# (b) ------------------------------------------------------------------------------------------------

def _search_killing_a_busy_worker(tmp_path, data: dict) -> tuple[str, Path]:
    """Run the search, SIGKILL a worker in mid-trial once a trial is journaled; (stdout, journal)."""
    config = write_config(tmp_path / "tiny.yaml", data)
    journal = tmp_path / "run" / "journal.jsonl"
    proc = _search("--config", config, "--run-dir", tmp_path / "run")
    _wait_lines(proc, journal, 1)
    os.kill(_busy_worker(proc.pid), signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return out, journal


def test_a_worker_killed_mid_trial_is_replaced_and_its_trial_run_again(tmp_path, reference):
    trials = 5
    out, journal = _search_killing_a_busy_worker(tmp_path, _config(2, trials=trials))
    assert "its worker process was killed by SIGKILL (out of memory?); trying it again alone (retry 1 of 2)" in out
    assert comparable_journal(journal) == comparable_journal(reference / "journal.jsonl")[:trials]


def test_a_trial_whose_worker_dies_every_time_is_journaled_as_failed(tmp_path):
    """max_failures 0: the first death is final; the run goes on past it."""
    trials = 4
    out, journal = _search_killing_a_busy_worker(tmp_path, {**_config(2, trials=trials), "execution": {
        "max_concurrent": 2, "max_failures": 0}})
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [r["trial"] for r in records] == list(range(trials))
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"] == ("failed in 1 attempt(s), the last time because its worker "
                                                       "process was killed by SIGKILL (out of memory?)")
    assert failed[0]["latency_ms"] is not None and failed[0]["accuracy"] is None


# (c) ------------------------------------------------------------------------------------------------

@pytest.mark.slow  # 106 s on 2 cores: three starts, each spawning workers
def test_ctrl_c_and_a_killed_driver_leave_no_workers_and_resume_to_the_uninterrupted_run(tmp_path, reference):
    trials = 6
    config = write_config(tmp_path / "tiny.yaml", _config(2, trials=trials))
    run, journal = tmp_path / "run", tmp_path / "run" / "journal.jsonl"

    proc = _search("--config", config, "--run-dir", run)
    _wait_lines(proc, journal, 1)
    workers = _workers(proc.pid)
    assert workers
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)  # promptly: the workers are killed, not waited for
    assert proc.returncode == 130, err
    assert "everything finished is saved. Continue with: nas search --run-dir" in out
    _assert_gone(workers, timeout=1)

    proc = _search("--run-dir", run, "--resume")
    _wait_lines(proc, journal, journal.read_bytes().count(b"\n") + 1)
    workers = _workers(proc.pid)
    assert workers
    proc.send_signal(signal.SIGKILL)  # no handler, no finally: the workers must notice on their own
    proc.wait()
    _assert_gone(workers)

    proc = _search("--run-dir", run, "--resume")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert comparable_journal(journal) == comparable_journal(reference / "journal.jsonl")[:trials]


# (d) ------------------------------------------------------------------------------------------------

def test_max_concurrent_is_read_for_the_local_backend_and_storage_is_still_ray_only():
    from nas.commands.search import _execution_text

    config = config_from_dict(_config(3))
    assert config.execution.local_workers == 3
    assert "local, 3 trials at once in worker processes" in _execution_text(config)
    assert config_from_dict(_config(None)).execution.local_workers == 1
    assert config_from_dict(_config(1)).execution.local_workers == 1
    assert config_from_dict(tiny_config(execution={"backend": "ray", "max_concurrent": 3})).execution.local_workers == 1
    for execution, message in [({"max_concurrent": 0}, "execution.max_concurrent: must be at least 1"),
                               ({"storage": "/tmp/ray"}, "execution.storage: only the 'ray' backend uses it"),
                               ({"address": "auto"}, "execution.address: only the 'ray' backend uses it")]:
        with pytest.raises(ConfigError, match=message):
            config_from_dict(tiny_config(execution=execution))


def test_more_workers_than_cores_are_allowed_and_the_start_line_says_how_many_run():
    from nas.search.loop import where_text

    workers = (os.cpu_count() or 1) + 1
    config = config_from_dict(_config(workers))
    assert where_text(config, config.execution.local_workers) == (
        f"locally, {workers} at once in worker processes (1 TensorFlow thread(s) each; "
        f"this machine has {os.cpu_count()} cores)")
    assert where_text(config_from_dict(_config(None)), 1) == "locally"


@pytest.mark.parametrize("name, ahead", [("mnas", True), ("reinforce", True), ("random", True),
                                         ("evolution", False), ("keras-tuner-bayesian", False)])
def test_only_controllers_that_propose_ahead_get_workers(tmp_path, name, ahead):
    """Evolution and the keras-tuner oracles use every result for the next proposal: asked ahead they
    would propose something else than one at a time (and a resume's replay would differ)."""
    from nas.search.loop import Search, where_text

    data = _config(2)
    data["controller"] = {"name": name}
    config = config_from_dict(data)
    search = Search(config, tmp_path / "run", say=lambda _: None)
    assert search.workers == (2 if ahead else 1)
    if not ahead:
        assert where_text(config, search.workers) == (
            f"locally, one at a time (controller {name} uses every result for its next proposal)")
    else:  # one at a time for another reason (a given evaluator runs in the search's process): no such claim
        assert where_text(config, 1) == "locally"


def test_the_memory_check_counts_every_worker():
    import dataclasses

    from nas.common.errors import UserError
    from nas.search import memory

    one, two = config_from_dict(_config(None)), config_from_dict(_config(2))
    data = memory.data_bytes(memory.image_count(one.data), 16)
    largest = memory.largest_candidate(one.space)
    model = memory.model_bytes(dataclasses.replace(largest, resolution=16, width=largest.width * one.proxy.width), 32)
    with pytest.raises(UserError, match="the largest candidate"):  # its data fits: the next check fails
        memory.check_memory(one, 1, available=2 * data)
    with pytest.raises(UserError, match=r"\(288 images at 16x16, a copy in each of 2 workers and the search's "
                                        r"own\), .* lower proxy.resolution, execution.max_concurrent or set"):
        memory.check_memory(two, 2, available=2 * data)
    memory.check_memory(one, 1, available=data + model)
    with pytest.raises(UserError, match=r"width x1, 2 training at once\) beside .* lower proxy.batch_size, "
                                        r"proxy.resolution, proxy.width or execution.max_concurrent$"):
        memory.check_memory(two, 2, available=3 * data + model)
    memory.check_memory(two, 2, available=3 * data + 2 * model)
    # A controller that runs one trial at a time (Search.workers 1) needs one copy, whatever max_concurrent says.
    memory.check_memory(two, 1, available=data + model)
