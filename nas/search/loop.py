"""The search loop: ask the controller, evaluate the candidate, journal it, tell the controller.

    decisions = controller.ask()
    spec      = space.to_spec(decisions)                 # the full-size candidate
    latency   = latency_model.predict_ms(spec)           # on the target hardware, full size
    accuracy  = evaluator.evaluate(spec, seed)           # the proxy task (shrunk, a few epochs)
    reward    = reward(accuracy, latency)
    journal.append(trial)                                # on disk (fsync) before ...
    controller.tell(decisions, reward)                   # ... the controller hears of it

The runner knows nothing of how a controller learns or how a proxy trains (keras-tuner's
oracle / tuner split): anything with `ask` / `tell` / `state` / `load_state` and anything with
`evaluate(spec, seed)` will do. A trial that fails (an exception, a NaN loss) is journaled as
failed with its error, the controller is told `FAILED_REWARD`, and the search goes on.

Resume: the controller is rebuilt from its last snapshot (`controller.json`, written right after
a tell every `SNAPSHOT_EVERY` trials and at the end) and the journal's later trials are replayed into it (ask, check that it
proposes what the journal holds, tell the journaled reward), so it ends exactly where it was and
no finished trial is run again.

Backends (`execution.backend`): `local` runs that loop in this process, or with `max_concurrent: N`
(N > 1) keeps N trials in flight in worker processes, journaling them in trial order
(`nas.search.parallel`); `ray` (`nas.execution.ray_tune`)
runs trials as Ray Tune trials on a cluster, several at once, with the controller as Tune's
searcher in this process, writing the same journal and outputs (its journal lines are in the order
trials finish; the trial numbers are the order they were proposed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nas.common.errors import UserError
from nas.controllers import CONTROLLERS
from nas.common.lock import LOCK_NAME, run_lock

from nas.search.memory import check_memory
from nas.search.config import SearchConfig, config_from_dict, read_yaml
from nas.search.fingerprint import check_resume, fixed_part, read_fingerprint, write_fingerprint
from nas.common.files import write_text
from nas.search.journal import Journal, Trial
from nas.search.results import write_results
from nas.search.recorder import FAILED_REWARD, TrialRecorder  # noqa: F401  (FAILED_REWARD: kept importable here)
from nas.search.parallel import run_parallel, worker_threads
from nas.search.snapshot import SNAPSHOT_EVERY, restore_controller, save_snapshot
from nas.search.trial_runner import Evaluator, TrialRunner


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def journal(self) -> Path:
        return self.root / "journal.jsonl"

    @property
    def controller(self) -> Path:
        return self.root / "controller.json"


def check_run_dir(config: SearchConfig, root: Path, resume: bool, finished: int = 0,
                  config_given: bool = True) -> RunPaths:
    """Check the run directory fits the request (a new run: empty; a resumed one: the recorded config)."""
    paths = RunPaths(root)
    exists = paths.journal.exists() or paths.config.exists()
    if not resume:
        if exists:
            raise UserError(f"run directory '{root}' already holds a run; continue it with --resume, "
                            f"or start another with --name")
        return paths
    if not paths.config.exists():
        raise UserError(f"nothing to resume in '{root}' (no config.yaml); start the run without --resume")
    recorded = read_fingerprint(root)
    if recorded is None:  # a run from before fingerprints: its config.yaml is the record
        recorded = fixed_part(load_run_config(root).to_dict())
    source = "the config given" if config_given else f"'{paths.config}' (edited since the run started)"
    check_resume(root, recorded, config.to_dict(), finished, source)
    return paths


def load_run_config(root: Path) -> SearchConfig:
    path = RunPaths(root).config
    return config_from_dict(read_yaml(path, "the run's config"), default_name=root.name)


class Search:
    """One run of a configured search in one directory."""

    def __init__(self, config: SearchConfig, run_dir: Path, evaluator: Evaluator | None = None,
                 say: Callable[[str], None] = print):
        self.config = config
        self.paths = RunPaths(Path(run_dir))
        self.say = say
        self.runner = TrialRunner(config, evaluator, say)
        # A given evaluator lives in this process only: its trials run here, one at a time; so do
        # those of a controller that needs every result before its next proposal.
        ahead = CONTROLLERS.get(config.controller).proposes_ahead
        self.workers = config.execution.local_workers if evaluator is None and ahead else 1
        self.target_ms = self.runner.target_ms

    def run(self, resume: bool = False, config_given: bool = True) -> list[Trial]:
        """The whole run, as the directory's one owner: a second process on it stops at once."""
        root = self.paths.root
        missing = [d for d in (root, *root.parents) if not d.exists()]  # what taking the lock creates
        try:
            with run_lock(root):
                return self._run(resume, config_given)
        except BaseException:
            if missing and root.is_dir() and [p.name for p in root.iterdir()] == [LOCK_NAME]:
                (root / LOCK_NAME).unlink(missing_ok=True)  # failed before writing anything: leave no trace
                for directory in missing:
                    try:
                        directory.rmdir()
                    except OSError:
                        break
            raise

    def _run(self, resume: bool, config_given: bool) -> list[Trial]:
        config = self.config
        journal = Journal(self.paths.journal)
        check_run_dir(config, self.paths.root, resume, len(journal.read()) if resume else 0, config_given)
        trials = journal.read()
        total = config.run.trials
        self.say(f"search '{config.run.name}': {total} trials {where_text(config, self.workers)}, "
                 f"controller {config.controller}, latency "
                 f"{self.runner.latency_model.name} (target {self.target_ms:.3g} ms), writing {self.paths.root}/")
        if resume:
            self.say(f"resuming '{config.run.name}' after {len(trials)} finished trial(s)")
        recorder = TrialRecorder(self.paths.root, config, journal, trials, self.target_ms, self.say)
        if config.execution.ray:
            from nas.execution.ray_tune import RaySearch

            backend = RaySearch(self, recorder, resume)  # connects: a bad cluster fails before any write
        elif len(trials) < total:
            check_sequential(trials, journal.path)
            if self.runner.evaluator is None:  # the real proxy: refuse what cannot fit before loading it
                check_memory(config, self.workers)
            self.runner.load_evaluator()  # data problems surface now, before the run directory is written
        journal.repair()
        if read_fingerprint(self.paths.root) is None:  # a new run (or one from before fingerprints)
            write_fingerprint(self.paths.root, config.to_dict())
        write_text(self.paths.config, config.to_yaml())  # the resolved config (a resumed run: its new budget)
        try:
            if config.execution.ray:
                backend.run()
            else:
                self._run_local(recorder)
        except KeyboardInterrupt:
            self.say(f"interrupted after {len(trials)} of {total} trials; everything finished is saved. "
                     f"Continue with: nas search --run-dir {self.paths.root} --resume")
            raise
        finally:
            summary = write_results(self.paths.root, config, trials, self.target_ms, plots=True)
        self.say("")
        self.say(summary)
        return trials

    def _run_local(self, recorder: TrialRecorder) -> None:
        """One trial at a time in this process, or `max_concurrent` at once in worker processes;
        `recorder.trials` grows as they finish."""
        trials = recorder.trials
        controller = restore_controller(self.config, trials, self.paths.controller, self.say)
        if self.workers > 1:
            run_parallel(self, recorder, controller, self.workers)
        else:
            for index in range(len(trials), self.config.run.trials):
                decisions = controller.ask()
                recorder.record(self.runner.run(index, decisions, controller.budget()), controller)
                if (index + 1) % SNAPSHOT_EVERY == 0:
                    save_snapshot(self.paths.controller, controller, len(trials))
        # No snapshot on an interruption: it may fall between an ask and its tell, and a snapshot
        # must hold only told trials. Resume replays the journal past the last periodic one.
        save_snapshot(self.paths.controller, controller, len(trials))


def where_text(config: SearchConfig, workers: int) -> str:
    """Where the trials run, for the start-up line."""
    if config.execution.ray:
        return f"on Ray ({config.execution.address})"
    if workers == 1:
        if config.execution.local_workers > 1 and not CONTROLLERS.get(config.controller).proposes_ahead:
            return f"locally, one at a time (controller {config.controller} uses every result for its next proposal)"
        return "locally"
    cores = os.cpu_count() or 1
    more = f"; this machine has {cores} cores" if workers > cores else ""
    return f"locally, {workers} at once in worker processes ({worker_threads(workers)} TensorFlow thread(s) each{more})"


def check_sequential(trials: list[Trial], path: Path) -> None:
    """The local backend continues at trial len(trials): the journal must hold 0 .. n-1 in order."""
    for position, trial in enumerate(trials):
        if trial.trial != position:
            raise UserError(f"journal '{path}' holds trial {trial.trial + 1} at line {position + 1}: it was "
                            f"written by the ray backend with trials in flight; resume it with that backend")
