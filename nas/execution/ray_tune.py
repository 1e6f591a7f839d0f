"""The Ray backend: the same search, its trials run as Ray Tune trials on a cluster.

    driver (this process)                         workers (any node)
    Tuner ── ControllerSearcher.suggest ──► config {index, decisions, budget} ──► run_trial
          ◄─ on_trial_complete(result) ◄─ tune.report({"reward", "trial"}) ◄──── TrialRunner.run
          TrialRecorder.record: journal, tell, results   (the local backend's very code)

The controller is wrapped as a Ray Tune `Searcher`: `suggest` asks it (returning None, "not now",
while a batch-synchronous controller's batch is out), `on_trial_complete` journals the finished
trial (fsync) and only then tells the controller, and `save` / `restore` hold the controller's state
with the proposals in flight, so `nas search --resume` continues through `Tuner.restore` from Ray's
experiment checkpoint. Trial numbers are the order of proposal; the journal's lines are in the
order trials finish.

A trial whose worker raises or dies is retried `execution.max_failures` times by Ray, then
journaled as failed with Ray's last error. A candidate that fails to train (NaN loss) is journaled
as failed at once: retrying a deterministic failure gains nothing.

Resume, precisely: Ray restores the searcher from its last checkpoint (taken every second) and
reruns the trials that were in flight then. A proposal the journal already holds (it finished
between that checkpoint and the kill) is told from the journal, not trained again; a rerun of one
is ignored when it returns. So no finished trial is lost, none is journaled twice, and at most the
trials in flight at the kill are trained again.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from nas.execution.ray_cluster import connect, failed_on_ray, last_error, limit_threads  # sets Ray's environment first

from ray import tune  # noqa: E402
from ray.tune.schedulers import FIFOScheduler  # noqa: E402
from ray.tune.search import Searcher  # noqa: E402
from ray.tune.stopper import Stopper  # noqa: E402

from nas.common.errors import UserError
from nas.common.files import write_text

from nas.search.config import SearchConfig, config_from_dict
from nas.search.journal import Trial
from nas.search.snapshot import restore_controller, save_snapshot
from nas.search.recorder import told_reward
from nas.execution.worker import USER_ERROR, cached, user_error_result

EXPERIMENT = "tune"  # the Tune experiment's name under the storage path (then tune-2, ... as a run grows)


# The worker side ------------------------------------------------------------------------------------

def _worker_runner(config_yaml: str, cpus: float):
    def make():
        import yaml

        from nas.search.trial_runner import TrialRunner

        limit_threads(cpus)
        return TrialRunner(config_from_dict(yaml.safe_load(config_yaml)), say=lambda line: None)

    return cached(config_yaml, ("trial_runner",), make)


def run_trial(params: dict, config_yaml: str = "", cpus: float = 1.0) -> None:
    """The Ray Tune trainable: one trial of the search, reported back as the journal's record."""
    runner = _worker_runner(config_yaml, cpus)
    try:
        trial = runner.run(params["index"], params["decisions"], params["budget"])
    except UserError as exc:  # the data is missing on this node, ...: the search must stop, not retry
        tune.report({"reward": 0.0, **user_error_result(exc)})
        return
    tune.report({"reward": trial.reward if trial.ok else 0.0, "trial": json.dumps(asdict(trial))})


# The driver side ------------------------------------------------------------------------------------

class _DriverBound:
    """A Tune plug-in (searcher, stopper, scheduler) that works for the live `RaySearch` it is given.

    Tune pickles its config (with these objects) into the experiment's `tuner.pkl`; the driver is
    not pickled with them (it holds the journal and the controller), and `RaySearch.run` hands its
    own plug-ins to a restored Tuner in place of the unpickled, driverless copies."""

    driver: "RaySearch | None" = None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "driver"}

    def _driver(self) -> "RaySearch":
        if self.driver is None:
            raise RuntimeError("this Tune plug-in was unpickled without its search driver")
        return self.driver


class ControllerSearcher(_DriverBound, Searcher):
    """The search's controller as a Ray Tune searcher (its state lives in the driver, `RaySearch`)."""

    def __init__(self, driver: "RaySearch"):
        super().__init__(metric="reward", mode="max")
        self.driver = driver

    def suggest(self, trial_id: str):
        driver = self._driver()
        return Searcher.FINISHED if driver.finished else driver.suggest(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._driver().complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        write_text(checkpoint_path, json.dumps(self._driver().searcher_state()))  # atomic: Tune may be killed

    def restore(self, checkpoint_path: str) -> None:
        self._driver().restore_searcher(json.loads(Path(checkpoint_path).read_text()))


class RunBudget(_DriverBound, Stopper):
    """Ends the experiment once the journal holds the run's trials (or a trial hit a user error)."""

    def __init__(self, driver: "RaySearch"):
        self.driver = driver

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        # On Tuner.restore, Tune may consult a driverless unpickled copy: it never stops the run, and
        # the searcher ends it instead (FINISHED once the budget is journaled or a user error came).
        return self.driver is not None and self.driver.finished


class FailureNotes(_DriverBound, FIFOScheduler):
    """Keeps the last error of a trial that failed for good, for its journal record."""

    def __init__(self, driver: "RaySearch"):
        super().__init__()
        self.driver = driver

    def on_trial_error(self, tune_controller, trial) -> None:
        self._driver().note_error(trial.trial_id, trial.num_failures, trial.error_file)
        super().on_trial_error(tune_controller, trial)


def _bind_restored(tuner, searcher: ControllerSearcher, scheduler: FailureNotes, stopper: RunBudget) -> None:
    """Give a restored Tuner this driver's plug-ins in place of the driverless copies it unpickled."""
    import dataclasses

    inner = tuner._local_tuner  # Tune has no public way to re-specify these on restore
    inner._tune_config = dataclasses.replace(inner._tune_config, search_alg=searcher, scheduler=scheduler)
    inner._run_config.stop = stopper


class RaySearch:
    """Runs `search`'s trials on Ray; created (and connected) before the run directory is written."""

    def __init__(self, search, recorder, resume: bool):
        """`search`: the `nas.search.loop.Search` (config, paths, runner); `recorder`: its `TrialRecorder`."""
        self.search, self.recorder, self.resume = search, recorder, resume
        self.trials: list[Trial] = recorder.trials
        self.config: SearchConfig = search.config
        self.execution = self.config.execution
        self.say = search.say
        connect(self.execution, self.say)
        storage = self.execution.storage or str((search.paths.root / "ray").resolve())
        self.storage = storage if "://" in storage else str(Path(storage).expanduser().resolve())
        self.by_index = {t.trial: t for t in self.trials}
        self.outstanding: dict[int, tuple[list[int], float]] = {}  # proposed, not yet journaled
        self.running: dict[str, int] = {}  # Ray trial id -> proposal
        self.errors: dict[str, tuple[int, str]] = {}  # Ray trial id -> (attempts, last error)
        self.user_error: str | None = None
        self.controller = None
        self.next_index = max(self.by_index, default=-1) + 1

    # Lifecycle -------------------------------------------------------------------------------------

    def experiment_path(self, number: int) -> str:
        """Where Tune keeps experiment `number` of this run (1: `tune`, then `tune-2`, ...)."""
        return f"{self.storage.rstrip('/')}/{experiment_name(number)}"

    def latest_experiment(self) -> int:
        """The number of the run's last restorable Tune experiment; 0 if none."""
        number = 0
        while tune.Tuner.can_restore(self.experiment_path(number + 1)):
            number += 1
        return number

    def _ended_cleanly(self) -> bool:
        """The last experiment finished its budget: the controller snapshot holds every journaled trial."""
        try:
            return json.loads(self.search.paths.controller.read_text())["trials"] == len(self.trials)
        except (OSError, ValueError, KeyError, TypeError):
            return False

    @property
    def finished(self) -> bool:
        return self.user_error is not None or len(self.by_index) >= self.config.run.trials

    def run(self) -> None:
        if self.finished:
            self.say(f"all {self.config.run.trials} trials are in the journal; nothing to run")
            return
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, config_yaml=self.config.to_yaml(),
                                 cpus=self.execution.resources_per_trial.cpu),
            {"cpu": self.execution.resources_per_trial.cpu, "gpu": self.execution.resources_per_trial.gpu})
        latest = self.latest_experiment() if self.resume else 0
        searcher, scheduler, stopper = ControllerSearcher(self), FailureNotes(self), RunBudget(self)
        if latest and not self._ended_cleanly():
            self.say(f"resuming through Ray Tune's restore of {self.experiment_path(latest)}")
            tuner = tune.Tuner.restore(self.experiment_path(latest), trainable, resume_unfinished=True,
                                       resume_errored=False, restart_errored=False)
            _bind_restored(tuner, searcher, scheduler, stopper)
        else:
            # A new run, or a finished one given more trials: Tune ends an experiment for good once
            # its stopper fires, so the run goes on in a new one, the controller from its snapshot.
            self.controller = self._replayed_controller()
            if latest:
                self.say(f"the run's Tune experiment finished its budget; going on in "
                         f"{self.experiment_path(latest + 1)}")
            tuner = tune.Tuner(trainable, tune_config=self._tune_config(searcher, scheduler),
                               run_config=self._run_config(experiment_name(latest + 1), stopper))
        tuner.fit()
        if self.user_error is not None:
            raise UserError(self.user_error)
        if not self.finished:  # Tune caught Ctrl-C, stopped the trials and saved the experiment
            raise KeyboardInterrupt
        if self.controller is not None and not self.outstanding:
            save_snapshot(self.search.paths.controller, self.controller, len(self.trials))

    def _replayed_controller(self):
        """A fresh experiment over an existing journal (its Ray state was lost): replay the journal."""
        return restore_controller(self.config, sorted(self.trials, key=lambda t: t.trial),
                                  self.search.paths.controller, self.say)

    def _tune_config(self, searcher: ControllerSearcher, scheduler: FailureNotes):
        return tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                               num_samples=-1, max_concurrent_trials=self.execution.max_concurrent,
                               reuse_actors=True, trial_dirname_creator=trial_dirname)

    def _run_config(self, name: str, stopper: RunBudget):
        return tune.RunConfig(name=name, storage_path=self.storage, stop=stopper,
                              failure_config=tune.FailureConfig(max_failures=self.execution.max_failures),
                              verbose=0, log_to_file=True)

    # The searcher's work ----------------------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict | None:
        if self.finished:
            return None
        in_flight = set(self.running.values())
        orphan = next((i for i in sorted(self.outstanding) if i not in in_flight), None)
        if orphan is not None:  # proposed before a stop, never finished, not rerun by Ray: run it again
            return self._launch(trial_id, orphan)
        if self.controller is None:  # Ray restored no searcher state: rebuild from the journal
            self.controller = self._replayed_controller()
        while len(self.by_index) + len(self.outstanding) < self.config.run.trials and self.controller.can_ask():
            try:
                decisions, budget = self.controller.ask(), self.controller.budget()
            except UserError as exc:  # e.g. an oracle with nothing left to propose: stop as locally
                self.user_error = str(exc)
                return None
            index, self.next_index = self.next_index, self.next_index + 1
            done = self.by_index.get(index)
            if done is not None:  # finished after Ray's last checkpoint: the journal has it
                self.controller.tell(done.decisions, told_reward(done))
                continue
            self.outstanding[index] = (decisions, budget)
            return self._launch(trial_id, index)
        return None

    def _launch(self, trial_id: str, index: int) -> dict:
        decisions, budget = self.outstanding[index]
        self.running[trial_id] = index
        return {"index": index, "decisions": decisions, "budget": budget}

    def complete(self, trial_id: str, result: dict | None, error: bool) -> None:
        index = self.running.pop(trial_id, None)
        if index is None or index not in self.outstanding:
            return  # a rerun of a trial the journal already holds
        if result and USER_ERROR in result:
            self.user_error = result[USER_ERROR]  # raised as the same UserError when Tune has stopped
            return
        decisions, _ = self.outstanding[index]
        if error or not result or "trial" not in result:
            attempts, message = self.errors.pop(trial_id, (self.execution.max_failures + 1, "no result"))
            trial = self.search.runner.failed(index, decisions, failed_on_ray(attempts, message))
        else:
            trial = Trial(**json.loads(result["trial"]))
        concurrency = max(1, len(self.running) + 1)
        del self.outstanding[index]
        self.by_index[index] = trial
        self.recorder.record(trial, self.controller, concurrency)  # journal, tell, results, progress

    def note_error(self, trial_id: str, failures: int, error_file: str | None) -> None:
        self.errors[trial_id] = (failures, last_error(error_file))

    def searcher_state(self) -> dict:
        return {"controller": self.controller.state(), "next_index": self.next_index,
                "outstanding": {str(i): [d, b] for i, (d, b) in self.outstanding.items()},
                "running": self.running}

    def restore_searcher(self, state: dict) -> None:
        from nas.controllers import make_controller

        c = self.config
        self.controller = make_controller(c.controller, c.space.cardinalities, c.controller_options, seed=c.run.seed)
        self.controller.load_state(state["controller"])
        self.next_index = state["next_index"]
        self.outstanding = {int(i): (list(d), float(b)) for i, (d, b) in state["outstanding"].items()}
        self.running = {tid: int(i) for tid, i in state["running"].items()}
        for index in sorted(self.outstanding):
            done = self.by_index.get(index)
            if done is not None:  # finished after the checkpoint: told now, its rerun ignored
                del self.outstanding[index]
                self.controller.tell(done.decisions, told_reward(done))
        self.say(f"Ray restored the searcher: {len(self.running)} trial(s) were in flight, "
                 f"{len(self.outstanding)} of them still to finish")


def experiment_name(number: int) -> str:
    return EXPERIMENT if number <= 1 else f"{EXPERIMENT}-{number}"


def trial_dirname(trial) -> str:
    return f"trial_{trial.config['index']:05d}_{trial.trial_id}"
