"""Correcting lookup-table sums with whole-model measurements, and scoring the result.

A layer timed alone pays for things a whole model does not (its own invoke, input and output
quantisation, cold caches between layers) and misses what happens between layers, so the plain sum
is biased. The correction is linear in per-model features that are themselves sums over layers:

    ms = c_table * table_ms + c_layers * layers + c_macs * macs_g + intercept

Linear in additive features keeps it exact for the vectorised search-space predictor
(`lookup_table.SpaceTable`). It is fitted by least squares on *relative* error (each row divided by
its measured latency), so fast and slow models count alike, as the reported metrics do.
"""

from __future__ import annotations

import json
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


@dataclass(frozen=True)
class Correction:
    coef: tuple[float, ...]  # one per FEATURES
    intercept: float

    def apply(self, features: np.ndarray) -> float:
        return float(np.dot(self.coef, features) + self.intercept)

    def apply_many(self, features: np.ndarray) -> np.ndarray:
        return features @ np.asarray(self.coef) + self.intercept

    def to_json(self) -> str:
        return json.dumps({"features": list(FEATURES), "coef": list(self.coef), "intercept": self.intercept})

    @classmethod
    def from_json(cls, text: str) -> "Correction":
        from search_space.errors import UserError

        try:
            data = json.loads(text)
            if tuple(data["features"]) != FEATURES:
                raise ValueError(f"features {data['features']} are not {list(FEATURES)}")
            return cls(tuple(float(c) for c in data["coef"]), float(data["intercept"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"lookup table calibration is not valid ({exc}); re-run 'nas latency calibrate'") from None


def fit_correction(features: np.ndarray, measured_ms: Sequence[float]) -> Correction:
    """Least squares on relative error: rows (features, 1) / measured against 1."""
    features = np.asarray(features, dtype=float)
    y = np.asarray(measured_ms, dtype=float)
    design = np.hstack([features, np.ones((len(y), 1))]) / y[:, None]
    solution, *_ = np.linalg.lstsq(design, np.ones(len(y)), rcond=None)
    return Correction(tuple(float(c) for c in solution[:-1]), float(solution[-1]))


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
