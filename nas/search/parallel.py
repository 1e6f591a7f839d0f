"""The local backend with `execution.max_concurrent: N` (N > 1): N trials at once, each in a worker process.

On a small machine a proxy trial of a tiny model spends much of its time in Python (building the
Keras model, tracing the step function) and leaves cores idle; N worker processes keep them busy.
Each worker is spawned (TensorFlow is not fork-safe) once per run, sets TensorFlow's intra-op
threads to max(1, cores // N) and inter-op threads to 1 before TensorFlow starts (N workers must not
each spread over every core), rebuilds the config from its YAML, loads the data once, and runs
`TrialRunner.run` for each (index, decisions, budget) it is sent. The driver (this process) keeps
the controller, the journal and the results, and imports no more than the one-at-a-time loop does.

Order. The controller is asked while it `can_ask()` and fewer than N trials run, as on Ray (the
batch-synchronous mnas and reinforce say no once their batch is out). Finished trials are journaled
and told in trial order, an early finisher waiting for the trials before it, so the journal is
sequential (`check_sequential`; resume replays it exactly as before) and a controller whose
proposals within a batch do not depend on the pending tells (mnas, reinforce, random) proposes what
it proposes one at a time: the asks are the same calls on the same random stream, and each tell
comes in the same order with the same reward. mnas with `unique: true` too: a sequence joins its
`seen` set when it is asked, not when it is told, so its redraws depend on the asks alone.

Same proposals need same rewards, and a trial's accuracy depends on TensorFlow's intra-op thread
count: its CPU kernels split their sums by it, even with op determinism, and a few epochs of training
amplify the round-off. With the same threads a trial gives bit-identical results in a worker and in
process (tests/test_local_parallel.py runs its one-at-a-time reference with a worker's threads). At
the default thread count (all cores) it does not: a worker has fewer threads than a one-at-a-time
run, so the same architecture's accuracy can differ by about the proxy's seed-to-seed noise, and
once rewards differ the proposals part (docs/guides/scaling-out.md; measured figures: the Benchmarks
page). A run repeats exactly for the same `max_concurrent` on the same number of cores.

Snapshots. Asking stops at each multiple of `SNAPSHOT_EVERY` until every trial before it is told;
then `controller.json` is written, holding only told trials as in the one-at-a-time loop (for mnas'
default batch of 8 the barrier is where its batch ends anyway).

Failures. A trial's own errors come back as its failed `Trial`, as in process. A worker's `UserError`
(the data is missing, ...) stops the run with the same one line. A worker that dies (SIGKILL, the
out-of-memory killer) is replaced, and the trial it was running (the attribution is exact: each
worker runs one trial at a time) is tried again alone, with nothing else in flight, so a trial that
died only for lack of memory beside another gets the machine to itself; after
`execution.max_failures` retries it is journaled as failed, as on Ray. This is why the pool is a few
processes with a pipe each rather than `concurrent.futures`: there, one death breaks every trial in
flight, and (before Python 3.14) the pool cannot kill its workers on Ctrl-C.

Stopping. Workers ignore SIGINT: Ctrl-C reaches the driver, which kills them at once (their
unfinished trials are run again on resume; finished ones not yet journaled because an earlier one
was still running are lost too, at most N - 1 of them). A worker also dies with its driver
(PR_SET_PDEATHSIG on Linux, and a watcher of its parent's pid), so a killed search leaves no orphans.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing import connection, get_context
from typing import Any

from nas.common.errors import UserError
from nas.execution.worker import raise_user_error, user_error_result
from nas.search.snapshot import SNAPSHOT_EVERY, save_snapshot

PR_SET_PDEATHSIG = 1
PARENT_POLL_S = 1.0


def worker_threads(workers: int) -> int:
    """TensorFlow intra-op threads per worker: the machine's cores shared out."""
    return max(1, (os.cpu_count() or 1) // workers)


# The worker side ------------------------------------------------------------------------------------

def _die_with(parent: int) -> None:
    """SIGKILL on the driver gives it no chance to stop its workers: they must notice by themselves."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass

    def watch() -> None:  # elsewhere, and for a driver that died before prctl took effect
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _serve(conn, config_yaml: str, threads: int, parent: int) -> None:
    """A worker's life: (index, decisions, budget) in, the trial (or a user error) out, until EOF."""
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import tensorflow as tf
    import yaml

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from nas.search.config import config_from_dict
    from nas.search.trial_runner import TrialRunner

    runner = TrialRunner(config_from_dict(yaml.safe_load(config_yaml)), say=lambda line: None)
    while True:
        try:
            index, decisions, budget = conn.recv()
        except EOFError:  # the driver is done with this worker
            return
        try:
            reply: Any = runner.run(index, decisions, budget)
        except UserError as exc:
            reply = user_error_result(exc)
        conn.send((index, reply))


# The driver side ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Crash:
    """A worker died while running a trial."""
    reason: str


class _Worker:
    def __init__(self, process, conn):
        self.process, self.conn = process, conn
        self.index: int | None = None  # the trial it runs


class WorkerPool:
    """Worker processes, started as needed up to `size`, each running one trial at a time."""

    def __init__(self, config_yaml: str, size: int):
        self.config_yaml, self.size = config_yaml, size
        self.threads = worker_threads(size)
        self.context = get_context("spawn")
        self.workers: list[_Worker] = []

    def _start(self) -> _Worker:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=_serve, name="nas-trial-worker", daemon=True,
                                       args=(theirs, self.config_yaml, self.threads, os.getpid()))
        # A Ctrl-C in a terminal reaches the whole process group: a worker ignores SIGINT from birth
        # (the disposition is inherited), else one still starting up would print a traceback. The
        # driver ignores it only for the milliseconds of the start (a Ctrl-C then is lost).
        main = threading.current_thread() is threading.main_thread()  # only it may set handlers
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            process.start()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        theirs.close()  # only the worker holds its end now: its death reads as EOF here
        worker = _Worker(process, ours)
        self.workers.append(worker)
        return worker

    def submit(self, index: int, decisions: list[int], budget: float) -> None:
        idle = [w for w in self.workers if w.index is None]
        for dead in [w for w in idle if not w.process.is_alive()]:  # died between trials: nothing is lost
            self._bury(dead)
            idle.remove(dead)
        worker = idle[0] if idle else self._start()
        worker.index = index
        try:
            worker.conn.send((index, decisions, budget))
        except OSError:
            pass  # it died while idle: `wait` reads the EOF and reports the crash

    def wait(self) -> list[tuple[int, Any]]:
        """Block until trials end: [(index, Trial | user-error dict | Crash)]."""
        busy = {w.conn: w for w in self.workers if w.index is not None}
        if not busy:
            raise RuntimeError("no trial is in flight")
        ended = []
        for conn in connection.wait(list(busy)):
            worker = busy[conn]
            index, worker.index = worker.index, None
            try:
                ended.append(conn.recv())
            except (EOFError, OSError):
                ended.append((index, Crash(self._bury(worker))))
        return ended

    def _bury(self, worker: _Worker) -> str:
        self.workers.remove(worker)
        worker.conn.close()
        worker.process.join(timeout=5)
        if worker.process.is_alive():  # closed its pipe yet lives on: not a worker we can trust
            worker.process.kill()
            worker.process.join()
        code = worker.process.exitcode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            return f"its worker process was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
        return f"its worker process exited with status {code}"

    def close(self) -> None:
        """Kill every worker now: anything they still run is run again on resume."""
        for worker in self.workers:
            worker.conn.close()
            worker.process.kill()
        for worker in self.workers:
            worker.process.join()
        self.workers = []


def run_parallel(search, recorder, controller, workers: int) -> None:
    """The rest of the run's trials, `workers` at once; `recorder.trials` grows in trial order."""
    config, say = search.config, search.say
    trials, total = recorder.trials, config.run.trials
    asked: dict[int, tuple[list[int], float]] = {}  # proposed, not yet journaled: (decisions, budget)
    finished: dict[int, Any] = {}  # ended, waiting for an earlier trial
    crashes: dict[int, int] = {}
    retries: list[int] = []
    running: set[int] = set()
    next_index = len(trials)
    pool = WorkerPool(config.to_yaml(), workers)
    try:
        while len(trials) < total:
            if retries:
                if not running:
                    index = retries.pop(0)
                    pool.submit(index, *asked[index])
                    running.add(index)
            elif not running & crashes.keys():
                mark = min(total, (len(trials) // SNAPSHOT_EVERY + 1) * SNAPSHOT_EVERY)
                # With nothing in flight, ask as the one-at-a-time loop would, whatever can_ask says.
                while len(running) < workers and next_index < mark and (controller.can_ask() or not running):
                    asked[next_index] = (controller.ask(), controller.budget())
                    pool.submit(next_index, *asked[next_index])
                    running.add(next_index)
                    next_index += 1
            for index, outcome in pool.wait():
                running.discard(index)
                raise_user_error(outcome)
                if isinstance(outcome, Crash):
                    crashes[index] = crashes.get(index, 0) + 1
                    if crashes[index] <= config.execution.max_failures:
                        say(f"trial {index + 1}: {outcome.reason}; trying it again alone "
                            f"(retry {crashes[index]} of {config.execution.max_failures})")
                        retries.append(index)
                        continue
                    outcome = search.runner.failed(index, asked[index][0], f"failed in {crashes[index]} "
                                                   f"attempt(s), the last time because {outcome.reason}")
                finished[index] = outcome
            while len(trials) in finished:
                index = len(trials)
                recorder.record(finished.pop(index), controller, workers)
                del asked[index]
                if len(trials) % SNAPSHOT_EVERY == 0:
                    save_snapshot(search.paths.controller, controller, len(trials))
    finally:
        pool.close()
