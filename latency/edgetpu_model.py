"""An analytic latency model of the Coral Edge TPU (the `sim` source): no device, no TensorFlow.

The chip is an int8 multiply-accumulate array of about 4 TOPS peak (2e12 MAC/s) with about 8 MB of
on-chip memory that caches parameters. One inference costs

    fixed_ms                                   invoke + USB round trip set-up
  + op_overhead_ms * ops                       per-op instruction issue / pipeline fill
  + sum_kind macs_kind / (PEAK * efficiency_kind)   full kxk, depthwise, 1x1 convs and dense differ
  + host_bytes / host_bandwidth                input and output tensors, plus every parameter byte
                                               beyond the on-chip memory, streamed each inference

The model reads a model's *work summary* (`Work`), which comes either from a `ModelSpec`'s layers()
(here) or from the ops of any int8 .tflite file (`latency.tflite_ops`), so released specs, search
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

from search_space.errors import UserError
from search_space.spec import Layer, ModelSpec

PEAK_MACS_PER_S = 2.0e12  # 4 TOPS int8 = 2e12 multiply-accumulates per second
ONCHIP_PARAM_BYTES = 8 * 1024 * 1024  # parameters that fit here are loaded once, not per inference
OP_KINDS = ("conv", "depthwise", "conv1x1", "dense")  # kinds with their own MAC efficiency
CONSTANTS_PATH = Path(__file__).with_name("data") / "edgetpu_constants.json"
BIAS_BYTES = 4  # int8 models keep int32 biases (batch norm folds into them)


@dataclass(frozen=True)
class Work:
    """What one inference asks of the chip: MACs per op kind, op count, parameter and I/O bytes."""

    macs: tuple[int, int, int, int] = (0, 0, 0, 0)  # in OP_KINDS order
    ops: int = 0
    param_bytes: int = 0
    io_bytes: int = 0

    def __add__(self, other: "Work") -> "Work":
        return Work(tuple(a + b for a, b in zip(self.macs, other.macs)), self.ops + other.ops,
                    self.param_bytes + other.param_bytes, self.io_bytes + other.io_bytes)

    @property
    def total_macs(self) -> int:
        return sum(self.macs)


def op_work(kind: str, macs: int = 0, param_bytes: int = 0) -> Work:
    """One op: `kind` is one of OP_KINDS, or anything else for an op without MACs (add, pool, ...)."""
    macs_by_kind = tuple(macs if k == kind else 0 for k in OP_KINDS)
    return Work(macs_by_kind, 1, param_bytes, 0)  # type: ignore[arg-type]


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


# From a ModelSpec -----------------------------------------------------------------------------


def _conv(size_out: int, k: int, cin: int, cout: int) -> Work:
    kind = "conv1x1" if k == 1 else "conv"
    return op_work(kind, size_out * size_out * k * k * cin * cout, k * k * cin * cout + BIAS_BYTES * cout)


def _depthwise(size_out: int, k: int, ch: int) -> Work:
    return op_work("depthwise", size_out * size_out * k * k * ch, k * k * ch + BIAS_BYTES * ch)


@functools.lru_cache(maxsize=65536)
def layer_work(layer: Layer) -> Work:
    """The int8 TFLite ops the builder's layer becomes (batch norm and ReLU fold into the convs;
    the head's flatten is a RESHAPE, which the cost model counts as free)."""
    size_in, size_out = layer.in_size, layer.out_size
    if layer.kind == "stem":
        return _conv(size_out, layer.kernel, layer.in_ch, layer.out_ch)
    if layer.kind == "head":
        return (_conv(size_in, 1, layer.in_ch, layer.expanded_ch) + op_work("pool")
                + op_work("dense", layer.expanded_ch * layer.out_ch,
                          layer.expanded_ch * layer.out_ch + BIAS_BYTES * layer.out_ch))
    work = Work()
    expands = layer.expand_ratio != 1
    if layer.kind == "mbconv":
        if expands:
            work += _conv(size_in, 1, layer.in_ch, layer.expanded_ch)
        work += _depthwise(size_out, layer.kernel, layer.expanded_ch)
    elif expands:
        spatial = size_in if layer.fused_stride_on == "project" else size_out
        work += _conv(spatial, layer.kernel, layer.in_ch, layer.expanded_ch)
    if layer.se_ch:  # pool, two 1x1 convs on a 1x1 map, sigmoid, multiply
        e, s = layer.expanded_ch, layer.se_ch
        work += op_work("pool") + _conv(1, 1, e, s) + _conv(1, 1, s, e) + op_work("logistic") + op_work("mul")
    work += _conv(size_out, 1, layer.expanded_ch, layer.out_ch)
    if layer.residual:
        work += op_work("add")
    return work


def spec_work(spec: ModelSpec) -> Work:
    # uint8 in and out, each with a QUANTIZE op to and from the int8 the graph computes in
    work = Work(io_bytes=spec.resolution * spec.resolution * 3 + spec.num_classes)
    work += op_work("quantize") + op_work("quantize")
    for layer in spec.layers():
        work += layer_work(layer)
    return work


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
