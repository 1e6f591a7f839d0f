"""An analytic latency model of the Coral Edge TPU (the `sim` source): no device, no TensorFlow.

The chip is an int8 multiply-accumulate array of about 4 TOPS peak (2e12 MAC/s) with about 8 MB of
on-chip memory that caches parameters. One inference costs

    fixed_ms                                   invoke + USB round trip set-up
  + op_overhead_ms * ops                       per-op instruction issue / pipeline fill
  + sum_kind macs_kind / (PEAK * efficiency_kind)   full kxk, depthwise, 1x1 convs and dense differ
  + host_bytes / host_bandwidth                input and output tensors, plus every parameter byte
                                               beyond the on-chip memory, streamed each inference

The model reads a model's *work summary* (`latency.work.Work`), which comes either from the ops of a
`ModelSpec`'s layers or from the ops of any int8 .tflite file (`latency.tflite_ops`), so released specs, search
candidates and keras.applications models are all predicted by the same formula. The few constants
are fitted to Coral's published latencies by benchmarks/bench_edgetpu_model.py and ship as data in
latency/data/edgetpu_constants.json.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from latency.work import BIAS_BYTES, OP_KINDS, Work, layer_work, op_work, spec_work  # noqa: F401 (public here)
from search_space.errors import UserError
from search_space.spec import ModelSpec

PEAK_MACS_PER_S = 2.0e12  # 4 TOPS int8 = 2e12 multiply-accumulates per second
ONCHIP_PARAM_BYTES = 8 * 1024 * 1024  # parameters that fit here are loaded once, not per inference
CONSTANTS_PATH = Path(__file__).with_name("data") / "edgetpu_constants.json"


@dataclass(frozen=True)
class EdgeTpuConstants:
    efficiency_conv: float
    efficiency_depthwise: float
    efficiency_conv1x1: float
    efficiency_dense: float
    op_overhead_ms: float
    host_mb_per_s: float  # MB = 1e6 bytes
    fixed_ms: float
    note: str = ""

    def efficiency(self, kind: str) -> float:
        return getattr(self, f"efficiency_{kind}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FITTED_NAMES = ("efficiency_conv", "efficiency_depthwise", "efficiency_conv1x1", "op_overhead_ms",
                "host_mb_per_s", "fixed_ms")


@functools.lru_cache(maxsize=4)
def load_constants(path: str | Path = CONSTANTS_PATH) -> EdgeTpuConstants:
    try:
        data = json.loads(Path(path).read_text())
        fields = {f.name for f in dataclasses.fields(EdgeTpuConstants)}
        return EdgeTpuConstants(**{k: v for k, v in data.items() if k in fields})
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"cannot read Edge TPU cost-model constants '{path}': {exc}") from None


def predict_work_ms(work: Work, constants: EdgeTpuConstants) -> float:
    compute_s = sum(m / (PEAK_MACS_PER_S * constants.efficiency(k)) for k, m in zip(OP_KINDS, work.macs))
    streamed = max(0, work.param_bytes - ONCHIP_PARAM_BYTES) + work.io_bytes
    host_s = streamed / (constants.host_mb_per_s * 1e6)
    return constants.fixed_ms + constants.op_overhead_ms * work.ops + 1e3 * (compute_s + host_s)


class EdgeTpuCostModel:
    """The `sim` latency source: Coral USB Accelerator latency predicted from the analytic model."""

    name = "sim"

    def __init__(self, constants: EdgeTpuConstants | None = None):
        self.constants = constants or load_constants()

    def predict_ms(self, spec: ModelSpec) -> float:
        return predict_work_ms(spec_work(spec), self.constants)

    def predict_tflite_ms(self, path) -> float:
        from latency.tflite_ops import tflite_work

        return predict_work_ms(tflite_work(path), self.constants)

    def breakdown_ms(self, work: Work) -> dict[str, float]:
        """Where the time goes, in ms: the terms of `predict_work_ms` one by one."""
        c = self.constants
        out = {"fixed": c.fixed_ms, "op overhead": c.op_overhead_ms * work.ops}
        for kind, macs in zip(OP_KINDS, work.macs):
            out[f"{kind} MACs"] = 1e3 * macs / (PEAK_MACS_PER_S * c.efficiency(kind))
        streamed = max(0, work.param_bytes - ONCHIP_PARAM_BYTES)
        out["streamed params"] = 1e3 * streamed / (c.host_mb_per_s * 1e6)
        out["input/output"] = 1e3 * work.io_bytes / (c.host_mb_per_s * 1e6)
        return out
