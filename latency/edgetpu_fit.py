"""Fitting the Edge TPU cost model's few constants to measured (or published) whole-model latencies.

Least squares on log-latency (a 10% miss counts the same on a 2 ms and a 300 ms model), with the
constants fitted in log space (they stay positive) and a weak prior pulling each towards a nominal,
physically plausible value. The prior matters: the published table has only a handful of rebuildable
rows, and it keeps a leave-one-out fit (one row fewer) well posed instead of letting a constant that
only the left-out row pins down run off.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from latency.edgetpu_model import FITTED_NAMES, EdgeTpuConstants, Work, predict_work_ms

# Where the fit starts and what the prior pulls towards: int8 convs reach a fair share of the
# array's peak, depthwise convs far less (one input channel per output leaves most of the systolic
# array idle), USB 3 moves a few hundred MB/s in practice, an invoke costs about a millisecond, and
# MAC-free ops stream activations through the chip at several GB/s, and about 8 MiB is on chip.
NOMINAL = EdgeTpuConstants(
    efficiency_conv=0.5, efficiency_depthwise=0.1, efficiency_conv1x1=0.5, efficiency_dense=0.1,
    op_overhead_ms=0.02, host_mb_per_s=400.0, fixed_ms=1.0, move_mb_per_s=8000.0, layout_mb_per_s=8000.0, note="nominal",
)
PRIOR_SIGMA = math.log(3.0)  # each constant is believed within a factor of 3 of its nominal value


def _with(base: EdgeTpuConstants, log_values: np.ndarray) -> EdgeTpuConstants:
    return dataclasses.replace(base, **{n: float(math.exp(v)) for n, v in zip(FITTED_NAMES, log_values)})


def fit_constants(works: Sequence[Work], measured_ms: Sequence[float], prior: EdgeTpuConstants = NOMINAL,
                  prior_sigma: float = PRIOR_SIGMA, note: str = "") -> EdgeTpuConstants:
    """The constants that best predict `measured_ms` from `works` (log-space least squares + prior)."""
    from scipy.optimize import least_squares

    if len(works) != len(measured_ms) or not works:
        raise ValueError("need one measured latency per work summary, at least one")
    target = np.log(np.asarray(measured_ms, dtype=float))
    start = np.log([getattr(prior, n) for n in FITTED_NAMES])

    def residuals(log_values: np.ndarray) -> np.ndarray:
        constants = _with(prior, log_values)
        predicted = np.log([predict_work_ms(w, constants) for w in works])
        return np.concatenate([predicted - target, (log_values - start) / prior_sigma])

    result = least_squares(residuals, start, method="trf")
    return dataclasses.replace(_with(prior, result.x), note=note)


def leave_group_out_ms(works: Sequence[Work], measured_ms: Sequence[float], groups: Sequence,
                       fitted: Sequence[bool] | None = None, **kwargs) -> list[float]:
    """Each row's prediction from constants fitted without any row of its group. Rows with `fitted`
    False are predicted but never fitted on (rows known to be unlike what the model can rebuild)."""
    fitted = [True] * len(works) if fitted is None else list(fitted)
    out = [0.0] * len(works)
    for group in dict.fromkeys(groups):
        rest = [j for j in range(len(works)) if groups[j] != group and fitted[j]]
        constants = fit_constants([works[j] for j in rest], [measured_ms[j] for j in rest], **kwargs)
        for i in range(len(works)):
            if groups[i] == group:
                out[i] = predict_work_ms(works[i], constants)
    return out


def leave_one_out_ms(works: Sequence[Work], measured_ms: Sequence[float], fitted: Sequence[bool] | None = None,
                     **kwargs) -> list[float]:
    """Each row's prediction from constants fitted on all the other rows."""
    return leave_group_out_ms(works, measured_ms, list(range(len(works))), fitted, **kwargs)
