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
"""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from search_space.counting import model_cost
from search_space.errors import UserError
from search_space.spec import ModelSpec

from nas.config import SearchConfig, config_from_dict, make_latency
from nas.controllers import Controller, make_controller
from nas.files import write_text
from nas.journal import FAILED, OK, Journal, Trial
from nas.proxy import TrialFailed
from nas.reward import make_reward

FAILED_REWARD = 0.0  # what a controller hears for a failed trial: no better than a model that learns nothing
SNAPSHOT_EVERY = 8


class Evaluator(Protocol):
    def evaluate(self, spec: ModelSpec, seed: int) -> Any: ...  # -> .accuracy, .train_loss, .seconds


def trial_seed(run_seed: int, index: int) -> int:
    """The proxy's seed for trial `index`: fixed by the run's seed, different for every trial."""
    return run_seed * 100_003 + index


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


def _normalised(data: dict) -> dict:
    import yaml

    return yaml.safe_load(yaml.safe_dump(data))


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    return None if a == b else f"{path} ({a!r} in the run, {b!r} now)"


def check_run_dir(config: SearchConfig, root: Path, resume: bool) -> RunPaths:
    """Check the run directory fits the request (a new run: empty; a resumed one: the same config)."""
    paths = RunPaths(root)
    exists = paths.journal.exists() or paths.config.exists()
    if not resume:
        if exists:
            raise UserError(f"run directory '{root}' already holds a run; continue it with --resume, "
                            f"or start another with --name")
        return paths
    if not paths.config.exists():
        raise UserError(f"nothing to resume in '{root}' (no config.yaml); start the run without --resume")
    stored = load_run_config(root)
    ours, theirs = _normalised(config.to_dict()), _normalised(stored.to_dict())
    ours["run"].pop("trials"), theirs["run"].pop("trials")  # a resumed run may be given more trials
    diff = _first_difference(theirs, ours)
    if diff:
        raise UserError(f"--resume: the config differs from {paths.config} at {diff}; "
                        f"resume with the run's own config (omit --config) or start a new run with --name")
    return paths


def load_run_config(root: Path) -> SearchConfig:
    import yaml

    path = RunPaths(root).config
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read the run's config '{path}': {exc}") from None
    return config_from_dict(data, default_name=root.name)


def restore_controller(config: SearchConfig, trials: list[Trial], snapshot: Path | None,
                       say: Callable[[str], None] = print) -> Controller:
    """The controller as it was after the journal's last trial: snapshot, then replay the rest."""
    controller = make_controller(config.controller, config.space.cardinalities, config.controller_options,
                                 seed=config.run.seed)
    start = 0
    if snapshot is not None and snapshot.exists():
        try:
            saved = json.loads(snapshot.read_text())
            if saved["trials"] <= len(trials):
                controller.load_state(saved["state"])
                start = saved["trials"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            say(f"note: controller snapshot unusable ({exc}); replaying the whole journal")
            controller = make_controller(config.controller, config.space.cardinalities,
                                         config.controller_options, seed=config.run.seed)
    for trial in trials[start:]:
        proposed = controller.ask()
        if proposed != trial.decisions:
            say(f"note: on replay the controller proposed other decisions than trial {trial.trial} holds; "
                f"it learns from the journaled one")
        controller.tell(trial.decisions, trial.reward if trial.ok else FAILED_REWARD)
    return controller


def save_snapshot(path: Path, controller: Controller, trials: int) -> None:
    write_text(path, json.dumps({"trials": trials, "state": controller.state()}))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Search:
    """One run of a configured search in one directory."""

    def __init__(self, config: SearchConfig, run_dir: Path, evaluator: Evaluator | None = None,
                 say: Callable[[str], None] = print):
        self.config = config
        self.paths = RunPaths(Path(run_dir))
        self.evaluator = evaluator
        self.say = say
        self.latency_model, self.target_ms = make_latency(config)
        self.reward = make_reward(config.reward, self.target_ms)

    def _evaluator(self) -> Evaluator:
        if self.evaluator is None:
            from nas.data_sources import load_dataset
            from nas.proxy import ProxyTask

            resolution = self.config.proxy.resolution or self.config.space.skeleton.resolution
            self.say(f"loading the '{self.config.data.source}' data at {resolution}x{resolution} ...")
            data = load_dataset(self.config.data, resolution)
            self.say(f"  {len(data.train_labels)} training and {len(data.val_labels)} validation images, "
                     f"{data.num_classes} classes")
            self.evaluator = ProxyTask(self.config.proxy, data)
        return self.evaluator

    def run(self, resume: bool = False) -> list[Trial]:
        from nas.search_results import write_results

        config = self.config
        check_run_dir(config, self.paths.root, resume)
        journal = Journal(self.paths.journal)
        trials = journal.read()
        total = config.run.trials
        self.say(f"search '{config.run.name}': {total} trials, controller {config.controller}, "
                 f"latency {self.latency_model.name} (target {self.target_ms:.3g} ms), writing {self.paths.root}/")
        if resume:
            self.say(f"resuming '{config.run.name}' after {len(trials)} finished trial(s)")
        if len(trials) < total:
            self._evaluator()  # data problems surface now, before the run directory is written
        journal.repair()
        write_text(self.paths.config, config.to_yaml())  # the resolved config (a resumed run: its new budget)
        controller = restore_controller(config, trials, self.paths.controller, self.say)
        timings: list[float] = []
        try:
            for index in range(len(trials), total):
                decisions = controller.ask()
                trial = self._run_trial(index, decisions)
                journal.append(trial)
                controller.tell(decisions, trial.reward if trial.ok else FAILED_REWARD)
                trials.append(trial)
                timings.append(trial.wall_s)
                if (index + 1) % SNAPSHOT_EVERY == 0:
                    save_snapshot(self.paths.controller, controller, len(trials))
                write_results(self.paths.root, config, trials, self.target_ms, plots=False)
                self._progress(trial, trials, total, timings)
            save_snapshot(self.paths.controller, controller, len(trials))
        except KeyboardInterrupt:
            self.say(f"interrupted after {len(trials)} of {total} trials; everything finished is saved. "
                     f"Continue with: nas search --run-dir {self.paths.root} --resume")
            raise
        finally:
            # No snapshot here: an interruption may fall between an ask and its tell, and a snapshot
            # must hold only told trials. Resume replays the journal past the last periodic one.
            summary = write_results(self.paths.root, config, trials, self.target_ms, plots=True)
        self.say("")
        self.say(summary)
        return trials

    def _run_trial(self, index: int, decisions: list[int]) -> Trial:
        start = time.perf_counter()
        spec = self.config.space.to_spec(decisions, name=f"{self.config.run.name}-trial{index:04d}")
        cost = model_cost(spec)
        accuracy = latency = reward = None
        extra: dict[str, Any] = {}
        error = None
        try:
            latency = float(self.latency_model.predict_ms(spec))
            result = self._evaluator().evaluate(spec, trial_seed(self.config.run.seed, index))
            accuracy = float(result.accuracy)
            extra = {"train_loss": round(float(result.train_loss), 6), "proxy_s": round(float(result.seconds), 3)}
            if not math.isfinite(accuracy):
                raise ValueError(f"accuracy is {accuracy}")
            reward = float(self.reward(accuracy, latency))
        except UserError:
            raise  # the user's input is wrong (data, files): stop, finished work stays saved
        except Exception as exc:  # this candidate failed; the search goes on
            error = _one_line(exc)
            if not isinstance(exc, TrialFailed):  # an unexpected error: keep where it came from
                extra["traceback"] = traceback.format_exc(limit=-3)
        return Trial(index, list(decisions), spec.to_dict(), OK if error is None else FAILED,
                     accuracy if error is None else None, latency, reward if error is None else None,
                     cost.params, cost.macs, round(time.perf_counter() - start, 3), error, extra)

    def _progress(self, trial: Trial, trials: list[Trial], total: int, timings: list[float]) -> None:
        done = [t for t in trials if t.ok]
        best = max(done, key=lambda t: t.reward, default=None)
        eta = (total - len(trials)) * sum(timings) / len(timings)
        head = f"trial {len(trials)}/{total}"
        if trial.ok:
            body = f"acc {trial.accuracy:.3f}  lat {trial.latency_ms:.2f} ms  reward {trial.reward:.4f}"
        else:
            body = f"FAILED ({trial.error[:80]})"
        best_text = f"best {best.reward:.4f} (#{best.trial + 1})" if best else "best -"
        self.say(f"{head}  {body}  {best_text}  {trial.wall_s:.1f} s  ETA {_duration(eta)}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__
