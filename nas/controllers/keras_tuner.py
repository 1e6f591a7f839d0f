"""keras-tuner's oracles as controllers: Bayesian optimisation, Hyperband and random search.

The search space becomes a `keras_tuner.HyperParameters` with one `Choice` per decision that has a
real choice (`hyperparameters`; `space_hyperparameters` builds the readable one of a `SearchSpace`,
`stage0.kind` = 'mbconv' / 'fused_mbconv', ..., for anyone who wants keras-tuner's own tuners over
this space). A controller owns one real keras-tuner oracle and speaks to it the way keras-tuner's
`Tuner` does: `ask` is `oracle.create_trial`, `tell` is `update_trial({"reward": r})` then
`end_trial` with the trial COMPLETED, objective `Objective("reward", "max")`. The reward is the
search's reward; a failed trial arrives as the runner's `FAILED_REWARD` and is scored like any other
(so Hyperband's rungs fill up and the oracle never stops on consecutive failures).

Three registered names, one class each, rather than one `keras-tuner` controller with an `oracle:`
switch: each oracle then has exactly its own options in the `controller:` section, so a knob of
another oracle (`factor:` under the Bayesian one) is a config error naming the field instead of a
setting silently ignored, and the names say which algorithm runs (`random` is already ours):

    controller: {name: keras-tuner-bayesian, num_initial_points: 10, alpha: 0.0001, beta: 2.6,
                 acquisition_restarts: 5}
    controller: {name: keras-tuner-hyperband, max_epochs: 9, factor: 3, hyperband_iterations: 0}
    controller: {name: keras-tuner-random}

- **Bayesian** (`BayesianOptimizationOracle`): a Gaussian process (Matern 5/2) over the decisions
  embedded in [0, 1], random proposals for the first `num_initial_points` (keras-tuner's own default
  is 3 x the number of decisions, 108 for the default space, more than a 40-trial run; ours is 10),
  then the minimiser of the lower confidence bound `mu - beta * sigma` of the negated reward. (With a
  handful of noise-free points the GP's likelihood prefers a length scale of 1e-5, a flat
  acquisition, so the first GP proposals are its random restart points; it learns from about ten.)
  Stock keras-tuner minimises the bound with 50 L-BFGS-B restarts whose gradients are finite
  differences, one scikit-learn `predict` (mostly input validation) per evaluation, and thousands of
  evaluations per restart over 36 decisions: on a small CPU one proposal costs more than a proxy
  training. Two changes make it practical and leave the algorithm alone: (1) the same
  `GaussianProcessRegressor` (keras-tuner's kernel and settings) with a `predict` that skips the
  per-call input checks for a fitted model (same formula, bit-identical results); (2) the number of
  restarts as an option, `acquisition_restarts`, 50 being keras-tuner's and 5 ours. (No benchmark
  measures proposal times yet; the Benchmarks page holds only what one does.) `populate_space` is keras-tuner
  1.4.8's line for line apart from that count; a test checks that at 50 restarts it proposes exactly
  what the stock oracle does.
- **Hyperband** (`HyperbandOracle`): brackets of successive halving. A trial's `tuner/epochs` out of
  `max_epochs` is its `budget()`, so the runner trains it for `max(1, round(budget * proxy.epochs))`
  epochs (journaled as `extra.proxy_epochs`); set `proxy.epochs` to `max_epochs` (or a multiple) for
  whole-epoch rungs. A promoted architecture is proposed again with a larger budget and trained
  from scratch (the proxy keeps no checkpoints). `hyperband_iterations: 0` (the default) sweeps
  until the run's trials are spent; with a limit, a run that outlasts it stops with a message.
  With trials in flight, `can_ask()` is False while the oracle waits for a rung's results.
- **Random** (`RandomSearchOracle`): uniform proposals that never repeat an architecture.

Determinism and resume: the oracle's seed comes from the controller's generator; everything the
oracle holds (its `get_state()`, which leaves the trials out, the trials themselves, the Bayesian
oracle's random state and the data its GP was last fitted on) is in `state()`, as JSON, so a
snapshot-loaded controller proposes exactly what the original would. The oracle writes no project
files (its `save` is a no-op): the run directory's `controller.json` is its only persistence.

keras-tuner imports TensorFlow (slow to import): it is imported when one of these controllers is made,
never when `nas.controllers` is imported.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nas.common.errors import UserError

from nas.controllers.base import register_controller, Controller, NoOptions
from nas.controllers.keras_tuner_oracles import oracle_classes
from nas.controllers.keras_tuner_space import (  # noqa: F401  (re-exported: the names users import)
    _keras_tuner, decision_names, hyperparameters, space_decisions, space_hyperparameters,
)
from nas.common.schema import setting

REWARD = "reward"  # the metric the oracles maximise: the search's reward
RUNNING, IDLE, STOPPED, COMPLETED = "RUNNING", "IDLE", "STOPPED", "COMPLETED"  # keras-tuner's TrialStatus values


class OracleStopped(UserError):
    """The oracle has nothing left to propose (Hyperband's iterations are done, or no untried architecture)."""


# The controllers -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BayesianOptions:
    num_initial_points: int = setting(10, min=1)  # random proposals before the GP takes over
    alpha: float = setting(1e-4, above=0.0)  # GP noise (keras-tuner's default)
    beta: float = setting(2.6, min=0.0)  # exploration weight of the confidence bound (keras-tuner's)
    acquisition_restarts: int = setting(5, min=1)  # L-BFGS-B starts per proposal; keras-tuner's is 50


@dataclass(frozen=True)
class HyperbandOptions:
    max_epochs: int = setting(9, min=1)  # rung budgets are tuner/epochs / max_epochs of the proxy's epochs
    factor: int = setting(3, min=2)
    hyperband_iterations: int = setting(0, min=0)  # 0: no limit, sweep until the run's trials are spent


class KerasTunerController(Controller):
    """Proposals from one keras-tuner oracle (`oracle_kind`); subclasses pick it and its options."""

    oracle_kind: ClassVar[str] = ""

    def __init__(self, cardinalities, options=None, seed=0):
        super().__init__(cardinalities, options, seed)
        if not self.free:
            raise UserError(f"controller {self.name}: the search space has no decision with more than one option")
        self.names = decision_names(self.cardinalities)
        self.space = hyperparameters(self.cardinalities, self.names)
        self.oracle = self._new_oracle(int(self.rng.integers(1, 2**31 - 1)))
        self.pending: list[tuple[str, list[int]]] = []  # (trial id, decisions): handed out, not yet told
        self.upcoming: str | None = None  # a trial `can_ask` made, not handed out yet
        self.created = 0  # trials the oracle has created (each under its own tuner id)
        self.latest_budget = 1.0

    # The oracle ------------------------------------------------------------------------------------

    def _oracle_kwargs(self) -> dict[str, Any]:
        return {}

    def _new_oracle(self, oracle_seed: int):
        kt = _keras_tuner()
        oracle = oracle_classes()[self.oracle_kind](
            objective=kt.Objective(REWARD, "max"), hyperparameters=self.space, seed=oracle_seed,
            max_consecutive_failed_trials=None, **self._oracle_kwargs())
        oracle.verbose = 0  # no per-trial printing (and no wall-clock times in its state)
        return oracle

    def _create(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the GP fit's ConvergenceWarnings on a few points
            trial = self.oracle.create_trial(f"ask{self.created}")
        if trial.status == RUNNING:
            self.created += 1
        return trial

    def _decisions(self, values: dict[str, Any]) -> list[int]:
        return [int(values[name]) if n > 1 else 0 for name, n in zip(self.names, self.cardinalities)]

    def _budget_of(self, trial) -> float:
        return 1.0

    def _stopped(self) -> OracleStopped:
        return OracleStopped(f"controller {self.name}: keras-tuner's oracle has no untried architecture left "
                             f"after {len(self.oracle.trials)} trials; lower run.trials")

    # The interface -----------------------------------------------------------------------------------

    def can_ask(self) -> bool:
        if self.upcoming is None:
            trial = self._create()
            if trial.status == IDLE:
                return False  # waiting for results (Hyperband's rung)
            if trial.status == STOPPED:
                return True  # `ask` says why the search cannot go on
            self.upcoming = trial.trial_id
        return True

    def budget(self) -> float:
        return self.latest_budget

    def _ask(self) -> list[int]:
        if self.upcoming is not None:
            trial, self.upcoming = self.oracle.trials[self.upcoming], None
        else:
            trial = self._create()
            if trial.status == STOPPED:
                raise self._stopped()
            if trial.status != RUNNING:
                raise RuntimeError(f"controller {self.name}: the oracle is waiting for results ({trial.status}); "
                                   f"a runner with trials in flight must check can_ask() first")
        decisions = self._decisions(trial.hyperparameters.values)
        self.pending.append((trial.trial_id, decisions))
        self.latest_budget = self._budget_of(trial)
        return decisions

    def _tell(self, decisions: list[int], reward: float) -> None:
        index = next((k for k, (_, d) in enumerate(self.pending) if d == decisions), None)
        if index is None:  # not what was proposed (a replay that diverged, or a seeded architecture) ...
            if not self.pending:  # ... nor anything else: a new trial of the oracle's takes it
                if self.upcoming is None:
                    trial = self._create()
                    if trial.status != RUNNING:
                        raise ValueError(f"controller {self.name}: no proposal to attach this result to "
                                         f"(the oracle is {trial.status})")
                    self.upcoming = trial.trial_id
                self.pending.append((self.upcoming, []))
                self.upcoming = None
            index = 0  # the oldest proposal takes the result, the told decisions replacing its own
        trial_id, _ = self.pending.pop(index)
        trial = self.oracle.trials[trial_id]
        for name, d, n in zip(self.names, decisions, self.cardinalities):
            if n > 1:
                trial.hyperparameters.values[name] = d  # end_trial records (and hashes) these values
        self.oracle.update_trial(trial_id, {REWARD: reward})
        trial.status = COMPLETED
        self.oracle.end_trial(trial)

    # State ---------------------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        oracle = self.oracle.get_state()
        oracle["tried_so_far"] = sorted(oracle["tried_so_far"])  # a set: a stable order for equal states
        oracle["run_times"] = dict(oracle["run_times"])
        oracle["id_to_hash"] = dict(oracle["id_to_hash"])
        oracle.pop("hyperparameters")  # the space, rebuilt from the cardinalities (nothing is ever added)
        trials = [{"id": t.trial_id, "values": dict(t.hyperparameters.values), "status": t.status,
                   "score": None if t.score is None else float(t.score), "best_step": t.best_step,
                   "metrics": t.metrics.get_config(), "message": t.message}
                  for t in self.oracle.trials.values()]
        return {"oracle": _json_safe(oracle), "trials": trials, "pending": [[t, d] for t, d in self.pending],
                "upcoming": self.upcoming, "created": self.created, "budget": self.latest_budget,
                **self._extra_state()}

    def _load_state(self, state: dict[str, Any]) -> None:
        kt = _keras_tuner()
        saved = copy.deepcopy(state["oracle"])
        oracle = self._new_oracle(saved["seed"])
        space = self.space.get_config()
        for t in state["trials"]:
            oracle.trials[t["id"]] = kt.engine.trial.Trial.from_state({
                "trial_id": t["id"], "hyperparameters": {"space": space["space"], "values": dict(t["values"])},
                "metrics": copy.deepcopy(t["metrics"]), "score": t["score"], "best_step": t["best_step"],
                "status": t["status"], "message": t["message"]})
        saved["hyperparameters"] = space
        oracle.set_state(self._restore_oracle_state(saved))
        _release(self.oracle)
        self.oracle = oracle
        self.pending = [(t, list(d)) for t, d in state["pending"]]
        self.upcoming, self.created, self.latest_budget = state["upcoming"], state["created"], state["budget"]
        self._load_extra_state(state)

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def _restore_oracle_state(self, saved: dict[str, Any]) -> dict[str, Any]:
        return saved


def _release(oracle) -> None:
    """Drop keras-tuner's module-level lock entries for an oracle (they would keep it alive)."""
    from keras_tuner.src.engine import oracle as oracle_module

    oracle_module.LOCKS.pop(oracle, None)
    oracle_module.THREADS.pop(oracle, None)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@register_controller("keras-tuner-bayesian")
class KerasTunerBayesian(KerasTunerController):
    Options = BayesianOptions
    oracle_kind = "bayesian"

    def _oracle_kwargs(self) -> dict[str, Any]:
        o = self.options
        return {"max_trials": None, "num_initial_points": o.num_initial_points, "alpha": o.alpha, "beta": o.beta,
                "acquisition_restarts": o.acquisition_restarts}

    def _extra_state(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = self.oracle._random_state.get_state()
        fit = getattr(self.oracle.gpr, "fit_data", None)
        return {"oracle_random_state": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
                "gp_fit": None if fit is None else [fit[0].tolist(), fit[1].tolist()]}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        name, keys, pos, has_gauss, cached = state["oracle_random_state"]
        self.oracle._random_state.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        if state["gp_fit"] is not None:  # the GP as last fitted: it scores trials still in flight
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.oracle.gpr.fit(np.array(state["gp_fit"][0], dtype=np.float64),
                                    np.array(state["gp_fit"][1], dtype=np.float64))


@register_controller("keras-tuner-hyperband")
class KerasTunerHyperband(KerasTunerController):
    Options = HyperbandOptions
    oracle_kind = "hyperband"

    def _oracle_kwargs(self) -> dict[str, Any]:
        o = self.options
        return {"max_epochs": o.max_epochs, "factor": o.factor, "hyperband_iterations": o.hyperband_iterations or None}

    def _budget_of(self, trial) -> float:
        return min(1.0, trial.hyperparameters.values["tuner/epochs"] / self.options.max_epochs)

    def _stopped(self) -> OracleStopped:
        return OracleStopped(f"controller {self.name}: keras-tuner's Hyperband finished its "
                             f"{self.options.hyperband_iterations} iteration(s) after {len(self.oracle.trials)} "
                             f"trials; raise controller.hyperband_iterations (0: no limit) or lower run.trials")

    def _restore_oracle_state(self, saved: dict[str, Any]) -> dict[str, Any]:
        saved["hyperband_iterations"] = self.options.hyperband_iterations or float("inf")  # inf is not JSON
        return saved

    def _state(self) -> dict[str, Any]:
        state = super()._state()
        state["oracle"]["hyperband_iterations"] = self.options.hyperband_iterations
        return state


@register_controller("keras-tuner-random")
class KerasTunerRandom(KerasTunerController):
    Options = NoOptions
    oracle_kind = "random"

    def _oracle_kwargs(self) -> dict[str, Any]:
        return {"max_trials": None}

