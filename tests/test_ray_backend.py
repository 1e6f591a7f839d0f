"""The Ray backend on a real local Ray cluster: `nas search` runs as a user runs it (a subprocess, so
its Ray cluster, workers and all are its own), and is killed the way a crash kills it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.search_helpers import tiny_config, write_config

ROOT = Path(__file__).resolve().parents[1]
RAY_TINY = {"backend": "ray", "max_concurrent": 2}
OUTPUTS = {"config.yaml", "journal.jsonl", "trials.csv", "best.yaml", "top", "pareto.png", "summary.md",
           "controller.json"}


def environment(changes: dict | None) -> dict:
    """os.environ with `changes` applied; a value of None removes the variable."""
    merged = {**os.environ, **(changes or {})}
    return {k: v for k, v in merged.items() if v is not None}


def nas(*argv, cwd: Path, timeout: float = 540, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *map(str, argv)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, start_new_session=True, env=environment(env))


def start_nas(*argv, cwd: Path) -> subprocess.Popen:
    """A driver in its own process group: killing the group kills its Ray cluster with it."""
    return subprocess.Popen([sys.executable, "-m", "nas", *map(str, argv)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def journal(run_dir: Path) -> list[dict]:
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            output = process.stdout.read()[-3000:] if process.stdout else ""
            pytest.fail(f"the process exited ({process.returncode}) before {what}: {output}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=60)


# A Ray worker trains with one intra-op and one inter-op thread (resources_per_trial.cpu 1 or less); the local
# run below is given the same, so that the same seed trains to the same weights on both backends.
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
EXACT = ("trial", "status", "decisions", "spec", "latency_ms", "params", "macs")


def _default_experiment(execution: dict) -> dict:
    """experiments/edgetpu.yaml as shipped (space, sim latency, hard reward, mnas with batch advantages and
    unique proposals, the strided proxy, the digits) but for a 4-trial budget in batches of 2 (the second
    batch follows the first's rewards), a quarter of the images, and `execution`."""
    data = yaml.safe_load((ROOT / "experiments" / "edgetpu.yaml").read_text())
    data["run"].update(name="edgetpu", trials=4)  # the name (it names the specs) whatever the file is called
    data["controller"]["batch_size"] = 2
    data["data"].update(max_train=360, max_val=96)
    data["execution"] = execution
    return data


def test_ray_search_writes_what_the_local_backend_writes(tmp_path):
    """The default experiment (reduced) gives the same journal on Ray as one trial at a time locally; on Ray,
    mnas (batch 2) on 3 slots never has more than one batch in flight."""
    config = write_config(tmp_path / "edgetpu.yaml", _default_experiment(
        {"backend": "ray", "max_concurrent": 3, "resources_per_trial": {"cpu": 0.5}}))
    done = nas("search", "--config", config, "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # The same config (run name included: it names the specs) on the local backend, in another runs dir.
    local_config = write_config(tmp_path / "local.yaml", _default_experiment({"max_concurrent": 1}))
    local = nas("search", "--config", local_config, "--runs-dir", tmp_path / "local", cwd=tmp_path, env=ONE_THREAD)
    assert local.returncode == 0, local.stdout + local.stderr
    run_dir = tmp_path / "runs" / "edgetpu"
    assert OUTPUTS <= {p.name for p in run_dir.iterdir()}
    records = sorted(journal(run_dir), key=lambda r: r["trial"])
    expected = journal(tmp_path / "local" / "edgetpu")
    assert [r["trial"] for r in records] == [0, 1, 2, 3]
    # The same seed gives the same journal: what the controller proposed (the second batch follows the
    # first batch's rewards, so it is equal only if those were), the specs, latencies and costs, and,
    # with the same threads and deterministic ops, the accuracies (measured: bit for bit); rewards to
    # float noise.
    assert [{k: r[k] for k in EXACT} for r in records] == [{k: r[k] for k in EXACT} for r in expected]
    assert [r["accuracy"] for r in records] == [r["accuracy"] for r in expected]
    assert [r["reward"] for r in records] == pytest.approx([r["reward"] for r in expected], abs=1e-9)
    assert all(r["status"] == "ok" for r in records)
    assert len({r["accuracy"] for r in records}) > 1  # trained models, not one constant answer
    csv_rows = (run_dir / "trials.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in csv_rows[1:]] == ["1", "2", "3", "4"]  # in trial order
    assert "on Ray (local)" in done.stdout and "4 of 4 trials finished" in done.stdout
    assert json.loads((run_dir / "controller.json").read_text())["trials"] == 4
    assert (run_dir / "ray" / "tune" / "tuner.pkl").exists()  # a real Tune experiment, restorable
    # Batch-synchronous: with a slot free from the start, each trial of the second batch still starts
    # after the first batch's last result (Ray's own per-trial start times).
    tune_dir = run_dir / "ray" / "tune"
    times = {}
    for trial_dir in tune_dir.glob("trial_*"):
        result = json.loads((trial_dir / "result.json").read_text().splitlines()[-1])
        index = int(trial_dir.name.split("_")[1])
        times[index] = (result["timestamp"] - result["time_total_s"], result["timestamp"])
    assert sorted(times) == [0, 1, 2, 3]
    first_batch_done = max(times[0][1], times[1][1])
    assert min(times[2][0], times[3][0]) >= first_batch_done - 1.0  # timestamps are whole seconds


@pytest.mark.slow  # 90 s; the default suite keeps SIGKILL + resume of a local search (test_fault_injection.py)
def test_killed_driver_resumes_through_ray_restore(tmp_path):
    total = 6
    config = write_config(tmp_path / "tiny.yaml", tiny_config(run={"trials": total}, execution=RAY_TINY))
    run_dir = tmp_path / "runs" / "tiny"
    driver = start_nas("search", "--config", config, "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    try:
        wait_for(lambda: len(journal(run_dir)) >= 2, 300, "two finished trials", driver)
    finally:
        kill_group(driver)
    before = (run_dir / "journal.jsonl").read_bytes()
    assert 2 <= len(journal(run_dir)) < total

    done = nas("search", "--run-dir", run_dir, "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming through Ray Tune's restore" in done.stdout
    after = (run_dir / "journal.jsonl").read_bytes()
    assert after.startswith(before)  # nothing finished was lost or rewritten
    records = journal(run_dir)
    assert sorted(r["trial"] for r in records) == list(range(total))  # none twice, none missing
    assert f"{total} of {total} trials finished" in done.stdout
    assert (run_dir / "best.yaml").exists() and (run_dir / "pareto.png").exists()

    # A finished run given a bigger budget goes on (Tune ends a stopped experiment for good: a new one)
    grown = nas("search", "--run-dir", run_dir, "--resume", "--trials", total + 2, cwd=tmp_path)
    assert grown.returncode == 0, grown.stdout + grown.stderr
    assert "going on in" in grown.stdout and (run_dir / "ray" / "tune-2").is_dir()
    assert sorted(r["trial"] for r in journal(run_dir)) == list(range(total + 2))


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after its ")".
        pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    return False


def _trial_workers(driver: subprocess.Popen) -> list[int]:
    """The trial workers of this driver's cluster only (the raylet it started spawns them): another
    Ray job on the machine, such as a second test run, has workers with the same name."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if (proc.name.isdigit() and "ImplicitFunc.train" in (proc / "cmdline").read_text()
                    and _descends_from(int(proc.name), driver.pid)):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


# The retry path runs by default; giving up (no retries left) only with -m slow (each case ~30 s).
@pytest.mark.parametrize("max_failures, status", [pytest.param(0, "failed", marks=pytest.mark.slow), (1, "ok")])
def test_crashed_worker_is_retried_then_journaled(tmp_path, max_failures, status):
    """SIGKILL the worker of the first trial while it trains: with a retry the trial runs again and
    finishes; without, it is journaled as failed with Ray's error, and the search goes on."""
    config = write_config(tmp_path / "tiny.yaml", tiny_config(
        run={"trials": 2},
        execution={"backend": "ray", "max_concurrent": 1, "max_failures": max_failures}))
    run_dir = tmp_path / "runs" / "tiny"
    driver = start_nas("search", "--config", config, "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    try:
        wait_for(lambda: bool(_trial_workers(driver)), 120, "a trial to start", driver)
        for pid in _trial_workers(driver):
            os.kill(pid, signal.SIGKILL)
        output, _ = driver.communicate(timeout=300)
    finally:
        kill_group(driver)
    assert driver.returncode == 0, output
    records = sorted(journal(run_dir), key=lambda r: r["trial"])
    assert [r["trial"] for r in records] == [0, 1]
    assert records[0]["status"] == status and records[1]["status"] == "ok"
    if status == "failed":
        assert "failed on the Ray cluster after 1 attempt(s)" in records[0]["error"]
        assert records[0]["latency_ms"] > 0 and records[0]["params"] > 0  # the record is still whole


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The token case (the one a machine's leftover state used to decide) runs by default; the others with -m slow.
@pytest.mark.parametrize("auth", ["token", pytest.param("disabled", marks=pytest.mark.slow),
                                  pytest.param(None, marks=pytest.mark.slow, id="unset")])
def test_search_joins_a_cluster_started_with_ray_start(tmp_path, auth):
    """The multi-node path: a head started by `ray start --head`, the search joining it by address.

    Whether `ray start` turns token authentication on depends on the machine (Ray 2.60: on with
    RAY_AUTH_MODE=token, or when RAY_AUTH_MODE is unset and a token file exists, which a local
    `ray.init()` creates), so each case sets the state it needs: its own HOME and token file, and no
    token inherited from the environment.
    """
    port = _free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    home = tmp_path / "home"
    home.mkdir()
    token_file = tmp_path / "auth_token"
    token_file.write_text("0123456789abcdef0123456789abcdef\n")
    state = {"HOME": str(home), "RAY_AUTH_MODE": auth, "RAY_AUTH_TOKEN_PATH": str(token_file),
             "RAY_AUTH_TOKEN": None}
    log = tmp_path / "head.log"
    with open(log, "w") as out:
        head = subprocess.Popen([str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2",
                                 "--include-dashboard=false", "--disable-usage-stats", "--block"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=environment({"RAY_USAGE_STATS_ENABLED": "0", **state}))
    try:
        wait_for(lambda: "Ray runtime started" in log.read_text(), 120, "the head node", head)
        config = write_config(tmp_path / "tiny.yaml", tiny_config(
            run={"trials": 2}, execution={"backend": "ray", "address": f"127.0.0.1:{port}", "max_concurrent": 2}))
        refused = None
        if auth != "disabled":  # a driver without the token gets one line saying what to set
            refused = nas("search", "--config", config, "--runs-dir", tmp_path / "runs", cwd=tmp_path,
                          env={**state, "RAY_AUTH_MODE": "disabled"})
        # A driver of a cluster with tokens on says so (RAY_AUTH_MODE=token), as the docs (Scaling out) tell users to.
        driver = {**state, "RAY_AUTH_MODE": "token"} if auth is None else state
        done = nas("search", "--config", config, "--runs-dir", tmp_path / "runs", cwd=tmp_path, env=driver)
    finally:
        kill_group(head)
    if refused is not None:
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "wants its token: set RAY_AUTH_MODE=token" in refused.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"on Ray (127.0.0.1:{port})" in done.stdout and "Ray cluster: 1 node(s), 2 CPU" in done.stdout
    assert sorted(r["trial"] for r in journal(tmp_path / "runs" / "tiny")) == [0, 1]


@pytest.mark.parametrize("execution, fragments", [
    ({"backend": "ray", "address": f"127.0.0.1:{_free_port()}"}, ["execution.address: nothing answers at"]),
    ({"backend": "ray", "resources_per_trial": {"cpu": 64}},
     ["execution.resources_per_trial: no node of the cluster has 64 CPU"]),
    ({"backend": "ray", "address": "nowhere"}, ["execution.address: 'nowhere' is not"]),
    ({"backend": "ray", "max_concurrent": 0}, ["execution.max_concurrent: must be at least 1"]),
    ({"backend": "local", "storage": "/tmp/ray"}, ["execution.storage: only the 'ray' backend"]),
    ({"backend": "dask"}, ["execution.backend: 'dask' is not one of local, ray"]),
])
def test_bad_execution_settings_are_one_line_and_exit_2(tmp_path, execution, fragments):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(execution=execution))
    done = nas("search", "--config", config, "--runs-dir", tmp_path / "runs", cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert all(f in lines[0] for f in fragments), lines[0]
    assert not (tmp_path / "runs" / "tiny" / "config.yaml").exists()  # nothing was started


def test_imagenet_experiment_on_a_tiny_budget(tmp_path):
    """experiments/edgetpu_imagenet.yaml as shipped but for its budget (trials, proxy size, held-out
    images), the data path (generated TFRecords in the reference layout) and the cluster (local)."""
    from tests.imagenet_records import write_imagenet_records

    records = write_imagenet_records(tmp_path / "imagenet", train_per_class=24, val_per_class=2, classes=4,
                                     image_size=40, shards=2)
    data = yaml.safe_load((ROOT / "experiments" / "edgetpu_imagenet.yaml").read_text())
    data["run"].update(trials=3)
    data["controller"].update(batch_size=2)
    data["proxy"].update(resolution=16, width=0.25, epochs=1, batch_size=16)
    data["data"].update(path=str(records.root), max_val=16)
    data["execution"].update(address="local", max_concurrent=2, resources_per_trial={"cpu": 1, "gpu": 0})
    config = write_config(tmp_path / "edgetpu_imagenet.yaml", data)
    done = nas("search", "--config", config, "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    records_out = journal(tmp_path / "runs" / "edgetpu_imagenet")
    assert sorted(r["trial"] for r in records_out) == [0, 1, 2]
    assert all(r["status"] == "ok" for r in records_out)
    assert "on `imagenet` data" in done.stdout
    # The first trial's accuracy is what the proxy gives its spec and seed on these records, trained again
    # outside Ray with a worker's threads.
    first = [r for r in records_out if r["trial"] == 0]
    again = subprocess.run([sys.executable, "-c", RETRAIN, str(config), json.dumps(first)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=540, env=environment(ONE_THREAD))
    assert again.returncode == 0, again.stderr[-3000:]
    retrained = json.loads(again.stdout.strip().splitlines()[-1])
    assert [r["accuracy"] for r in first] == pytest.approx(retrained, abs=1e-9)


RETRAIN = """
import json, sys
from nas.proxy.jobs import ProxyJob, run_job
from nas.search.config import load_config
from nas.search.trial_runner import trial_seed
from search_space import ModelSpec
config = load_config(sys.argv[1])
records = sorted(json.loads(sys.argv[2]), key=lambda r: r["trial"])
jobs = [ProxyJob(ModelSpec.from_dict(r["spec"]), config.proxy.resolution, trial_seed(config.run.seed, r["trial"]))
        for r in records]
print(json.dumps([run_job(config, job).accuracy for job in jobs]))  # here, not on the config's cluster
"""


@pytest.mark.slow
def test_default_experiment_on_ray(tmp_path):
    """The default experiment, unchanged but for `execution`, on a 2-CPU local cluster."""
    data = yaml.safe_load((ROOT / "experiments" / "edgetpu.yaml").read_text())
    data["execution"] = {"backend": "ray", "max_concurrent": 2}
    config = write_config(tmp_path / "edgetpu.yaml", data)
    # A hang guard, not a time limit: 64 trials took over 25 minutes on 2 cores shared with two benchmarks.
    done = nas("search", "--config", config, "--runs-dir", tmp_path / "runs", cwd=tmp_path, timeout=3600)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = tmp_path / "runs" / "edgetpu"
    assert OUTPUTS <= {p.name for p in run_dir.iterdir()}
    assert sorted(r["trial"] for r in journal(run_dir)) == list(range(data["run"]["trials"]))
