"""Correcting lookup-table sums with whole-model measurements, and scoring the result.

When layers are timed the way whole models are (`latency.layer_models`), the plain sum of a model's
layers is already close; what is left is mostly one factor (what a model does between its layers).
So the correction is a single scale by default, and it may only grow when that is shown to help:

    ms = c_table * table_ms [+ c_layers * layers] [+ c_macs * macs_g] [+ intercept]

Terms are added one at a time (forward selection), each only if the leave-one-out error falls (by
`MIN_GAIN`), and
never one whose leave-one-out Spearman is below the plain sum's (a scale keeps the sum's ranking; a
term that reorders models must earn it on models it was not fitted on). Fits minimise a Huber loss
of the *relative* error (each row divided by its measured latency), so fast and slow models count
alike and one model measured under load does not pull the fit. Linear in additive features keeps
the correction exact for the vectorised search-space predictor (`lookup_table.SpaceTable`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from search_space.counting import layer_cost
from search_space.spec import Layer, ModelSpec

FEATURES = ("table_ms", "layers", "macs_g")


def layer_features(layer: Layer, entry_ms: float) -> np.ndarray:
    return np.array([entry_ms, 1.0, layer_cost(layer).macs / 1e9])


def spec_features(spec: ModelSpec, entry_ms: Callable[[tuple], float]) -> np.ndarray:
    return sum((layer_features(layer, entry_ms(layer.key)) for layer in spec.layers()), np.zeros(len(FEATURES)))


TERMS = (*FEATURES, "intercept")
HUBER_DELTA = 0.03  # relative error beyond which a row counts linearly, not squared
MIN_GAIN = 0.10  # a term must cut the leave-one-out loss by this share: less is what noise alone gives
ROWS_PER_TERM = 5  # fewer measured models than this per term cannot show that a term helps


@dataclass(frozen=True)
class Correction:
    coef: tuple[float, ...]  # one per FEATURES (0 for a term not used)
    intercept: float
    terms: tuple[str, ...] = ("table_ms",)

    def apply(self, features: np.ndarray) -> float:
        return float(np.dot(self.coef, features) + self.intercept)

    def apply_many(self, features: np.ndarray) -> np.ndarray:
        return features @ np.asarray(self.coef) + self.intercept

    def describe(self) -> str:
        parts = [f"{c:.4g}*{name}" for c, name in zip(self.coef, FEATURES) if name in self.terms]
        return " + ".join(parts + ([f"{self.intercept:.4g}"] if "intercept" in self.terms else []))

    def to_json(self) -> str:
        return json.dumps({"features": list(FEATURES), "coef": list(self.coef), "intercept": self.intercept,
                           "terms": list(self.terms)})

    @classmethod
    def from_json(cls, text: str) -> "Correction":
        from search_space.errors import UserError

        try:
            data = json.loads(text)
            if tuple(data["features"]) != FEATURES:
                raise ValueError(f"features {data['features']} are not {list(FEATURES)}")
            return cls(tuple(float(c) for c in data["coef"]), float(data["intercept"]),
                       tuple(data.get("terms", TERMS)))
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"lookup table calibration is not valid ({exc}); re-run 'nas latency calibrate'") from None


def _design(features: np.ndarray, terms: Sequence[str]) -> np.ndarray:
    columns = [features[:, FEATURES.index(t)] if t != "intercept" else np.ones(len(features)) for t in terms]
    return np.column_stack(columns)


def _huber_weights(residuals: np.ndarray) -> np.ndarray:
    a = np.abs(residuals)
    return np.where(a <= HUBER_DELTA, 1.0, HUBER_DELTA / np.maximum(a, 1e-12))


def huber_loss(relative_errors: np.ndarray) -> float:
    a = np.abs(np.asarray(relative_errors, dtype=float))
    return float(np.mean(np.where(a <= HUBER_DELTA, 0.5 * a ** 2, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))))


def fit_terms(features: np.ndarray, measured_ms: Sequence[float], terms: Sequence[str]) -> Correction:
    """Huber fit of relative error with the given terms (iteratively reweighted least squares)."""
    features = np.asarray(features, dtype=float)
    y = np.asarray(measured_ms, dtype=float)
    design = _design(features, terms) / y[:, None]
    weights = np.ones(len(y))
    solution = np.zeros(len(terms))
    for _ in range(50):
        root = np.sqrt(weights)[:, None]
        new, *_ = np.linalg.lstsq(design * root, root[:, 0], rcond=None)
        converged = np.allclose(new, solution, rtol=1e-9, atol=1e-12)
        solution = new
        weights = _huber_weights(design @ solution - 1)
        if converged:
            break
    values = dict(zip(terms, solution))
    return Correction(tuple(float(values.get(f, 0.0)) for f in FEATURES), float(values.get("intercept", 0.0)),
                      tuple(terms))


def leave_one_out(features: np.ndarray, measured_ms: Sequence[float], terms: Sequence[str]) -> np.ndarray:
    """Each row predicted by the fit on all other rows."""
    features, y = np.asarray(features, dtype=float), np.asarray(measured_ms, dtype=float)
    out = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        out[i] = fit_terms(features[keep], y[keep], terms).apply(features[i])
    return out


@dataclass(frozen=True)
class Candidate:
    terms: tuple[str, ...]
    loo_loss: float  # Huber loss of leave-one-out relative errors
    loo_spearman: float
    verdict: str  # "chosen", "kept", or why it was refused


@dataclass(frozen=True)
class Calibration:
    correction: Correction
    candidates: tuple[Candidate, ...]
    sum_spearman: float

    def describe(self) -> list[str]:
        return [f"{' + '.join(c.terms):38s} " + ("" if math.isnan(c.loo_loss) else
                f"leave-one-out Huber loss {1e4 * c.loo_loss:7.2f}e-4, Spearman {c.loo_spearman:.3f}: ") + c.verdict
                for c in self.candidates]


def _spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def fit_correction(features: np.ndarray, measured_ms: Sequence[float]) -> Calibration:
    """A single scale, then terms added by forward selection on leave-one-out error (module docstring)."""
    features, y = np.asarray(features, dtype=float), np.asarray(measured_ms, dtype=float)
    if len(y) < 2:
        from search_space.errors import UserError

        raise UserError(f"calibration needs at least 2 measured models to fit, got {len(y)}")
    sum_rho = _spearman(features[:, 0], y)
    chosen = ("table_ms",)

    def evaluate(terms):
        loo = leave_one_out(features, y, terms)
        return huber_loss(loo / y - 1), _spearman(loo, y)

    best_loss, best_rho = evaluate(chosen) if len(y) > 2 else (math.nan, math.nan)
    candidates = [Candidate(chosen, best_loss, best_rho, "kept")]
    while True:
        trials = []
        for term in TERMS:
            if term in chosen:
                continue
            terms = (*chosen, term)
            if len(y) < ROWS_PER_TERM * len(terms):
                trials.append(Candidate(terms, math.nan, math.nan, f"not tried: fewer than {ROWS_PER_TERM} models per term"))
                continue
            loss, rho = evaluate(terms)
            if not loss < (1 - MIN_GAIN) * best_loss:
                verdict = f"refused: leave-one-out error not {100 * MIN_GAIN:.0f}% lower"
            elif not rho >= sum_rho - 1e-12:
                verdict = f"refused: leave-one-out Spearman below the plain sum's {sum_rho:.3f}"
            else:
                verdict = "better"
            trials.append(Candidate(terms, loss, rho, verdict))
        better = [c for c in trials if c.verdict == "better"]
        candidates += [dataclasses.replace(c, verdict="kept") if c.verdict == "better" else c for c in trials]
        if not better:
            break
        step = min(better, key=lambda c: c.loo_loss)
        candidates = [c for c in candidates if c.terms != step.terms or c.verdict == "kept"]
        chosen, best_loss, best_rho = step.terms, step.loo_loss, step.loo_spearman
    candidates = [dataclasses.replace(c, verdict="chosen") if c.terms == chosen else
                  (dataclasses.replace(c, verdict="superseded") if c.verdict == "kept" else c) for c in candidates]
    return Calibration(fit_terms(features, y, chosen), tuple(candidates), sum_rho)


@dataclass(frozen=True)
class Scores:
    count: int
    mape_percent: float
    within_10_percent: float  # share of models predicted within +-10%, in percent
    spearman: float

    def describe(self) -> str:
        return (f"{self.count} models: MAPE {self.mape_percent:.1f}%, {self.within_10_percent:.0f}% within "
                f"+-10%, Spearman {self.spearman:.3f}")


def score(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> Scores:
    from scipy.stats import spearmanr

    p, m = np.asarray(predicted_ms, dtype=float), np.asarray(measured_ms, dtype=float)
    errors = np.abs(p / m - 1)
    rho = float(spearmanr(p, m).statistic) if len(p) > 1 else float("nan")
    return Scores(len(p), 100 * float(errors.mean()), 100 * float((errors <= 0.10).mean()), rho)
