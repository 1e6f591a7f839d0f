"""An analytic latency model of the Coral Edge TPU (the `sim` source): no device, no TensorFlow.

The chip is an int8 multiply-accumulate array of about 4 TOPS peak (2e12 MAC/s) with about 8 MB of
on-chip memory that caches parameters; the USB Accelerator has no memory of its own beyond it. One
inference costs

    fixed_ms                                        invoke + USB round trip set-up
  + op_overhead_ms * ops                            per-op instruction issue / pipeline fill ...
  - sum_op min(op_overhead_ms, op's work time)      ... hidden behind the op's own work: a MAC op takes
                                                    max(overhead, work), not their sum; a MAC-free
                                                    op has none (it costs its bytes only)
  + sum_kind padded_macs_kind / (PEAK * eff_kind)   MACs with output channels padded to whole
                                                    multiples of the array's 64 lanes (65 take 2
                                                    passes), each kernel tap's input channels to
                                                    64 (the first conv's whole reduction), and
                                                    each output vector 32 cycles longer
  + moved_bytes / move_bandwidth                    element-wise, pool, resize: these move whole
                                                    activation maps and do no MACs
  + layout_bytes / layout_bandwidth                 pad, slice, transpose: copies only (a concatenation
                                                    is free: its producers write into its output)
  + (streamed params + io + 2 * spill) / USB bw     parameters beyond the ~8 MB on-chip memory left
                                                    beside the largest activations, input/output and tensors
                                                    crossing to the host, activations that do not
                                                    fit on chip (out to the host and back)
  - stream_overlap * min(streaming, MAC time)       part of the parameter streaming hidden behind the
                                                    array's work (later layers' parameters arrive
                                                    while earlier layers compute)
  + host CPU: per op + MACs + bytes                 ops the compiler leaves to the CPU

The model reads a model's *work summary* (`latency.work.Work`) from the ops of a `ModelSpec`'s layers
or from any int8 .tflite file (`latency.tflite_ops`). The constants are fitted to Coral's published
latencies by benchmarks/bench_edgetpu_model.py and ship with their meanings in
latency/data/edgetpu_constants.json.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from latency.work import (BIAS_BYTES, MAC_TILE, OP_KINDS, ByKind, Work, layer_work, op_work,  # noqa: F401
                          spec_work, spec_work_io)
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
    move_mb_per_s: float = 8000.0
    onchip_mb: float = ONCHIP_PARAM_BYTES / 1e6
    layout_mb_per_s: float = 8000.0
    mac_tile: int = MAC_TILE
    stream_overlap: float = 0.0
    host_op_ms: float = 0.05
    host_gmacs_per_s: float = 10.0
    host_cpu_mb_per_s: float = 2000.0
    note: str = ""

    def efficiency(self, kind: str) -> float:
        return getattr(self, f"efficiency_{kind}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FITTED_NAMES = ("efficiency_conv", "efficiency_depthwise", "efficiency_conv1x1", "op_overhead_ms",
                "host_mb_per_s", "fixed_ms", "move_mb_per_s", "onchip_mb", "layout_mb_per_s")
MEANINGS = {
    "efficiency_conv": "share of the 2e12 MAC/s peak that full kxk convolutions reach, on padded MACs (fitted)",
    "efficiency_depthwise": "same for depthwise convolutions (fitted)",
    "efficiency_conv1x1": "same for 1x1 convolutions (fitted)",
    "efficiency_dense": "same for fully connected layers (not fitted: no row has enough dense work to pin it)",
    "op_overhead_ms": "per Edge TPU MAC op: instruction issue, pipeline fill and drain, hidden behind the op's own "
                      "work up to that work's time (an op takes the larger of the two); MAC-free ops have none, "
                      "they cost their bytes (fitted)",
    "host_mb_per_s": "USB bandwidth: streamed parameters beyond 8 MB, input/output, spilled activations (fitted)",
    "fixed_ms": "per inference: invoke and USB round trip set-up (fitted)",
    "move_mb_per_s": "on-chip rate of MAC-free arithmetic ops (add, mul, pool, mean, resize, logistic, quantize), bytes "
                     "read+written (fitted)",
    "layout_mb_per_s": "rate of MAC-free copies (pad, slice, transpose), bytes read+written; a concatenation is "
                       "free, written in place by its producers (fitted)",
    "onchip_mb": "on-chip memory shared by cached parameters and the largest activation working set; "
                 "parameters beyond what is left stream over USB every inference (fitted, nominal 8 MiB)",
    "mac_tile": "MAC array lanes: output channels are padded to multiples of it; each kernel tap's input "
                "channels are padded to multiples of latency.work.REDUCE_TILE (a conv on at most "
                "latency.work.FOLD_MAX_CIN channels, the first one on the image, has its whole reduction "
                "padded instead), plus latency.work.DRAIN_CYCLES per output vector to drain it "
                "(64 lanes x 64 outputs matches 4 TOPS; lanes, reduction vector and drain chosen by the "
                "benchmark by leave-one-family-out error)",
    "stream_overlap": "share of the shorter of parameter streaming and the MAC array's work that overlap "
                      "(later layers' parameters cross USB while earlier layers compute); chosen by the "
                      "benchmark among 0, 0.25, 0.5, 0.75, 1 by leave-one-family-out error, not fitted",
    "host_op_ms": "per op run on the host CPU (nominal, not fitted: no published row runs ops on the host)",
    "host_gmacs_per_s": "host CPU int8 rate for MAC ops run there (nominal, not fitted)",
    "host_cpu_mb_per_s": "host CPU rate for the bytes its ops read and write (nominal, not fitted)",
}


@functools.lru_cache(maxsize=4)
def load_constants(path: str | Path = CONSTANTS_PATH) -> EdgeTpuConstants:
    try:
        data = json.loads(Path(path).read_text())
        fields = {f.name for f in dataclasses.fields(EdgeTpuConstants)}
        return EdgeTpuConstants(**{k: v for k, v in data.items() if k in fields})
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"cannot read Edge TPU cost-model constants '{path}': {exc}") from None


class AdditiveTerms(NamedTuple):
    """The terms of one inference's time (ms) that add up over ops, so a layer's can be cached and summed."""

    op_overhead: float  # ops' overhead not hidden behind their own work
    mac_array: float  # padded MACs of every kind at their efficiencies
    activation_bytes: float  # moved and laid out on chip, input/output and spills over USB
    host_cpu: float  # ops the compiler leaves to the host

    @property
    def ms(self) -> float:
        return self.op_overhead + self.mac_array + self.activation_bytes + self.host_cpu


class ModelTerms(NamedTuple):
    """The terms of one inference's time (ms) that depend on the whole model: not additive over ops."""

    fixed: float
    streamed_params: float  # parameters beyond what on-chip memory caches, over USB every inference
    streaming_hidden: float  # minus the part of that streaming hidden behind the MAC array's work

    @property
    def ms(self) -> float:
        return self.fixed + self.streamed_params + self.streaming_hidden


def additive_terms(work: Work, c: EdgeTpuConstants) -> AdditiveTerms:
    """The additive terms of `work`: with model_terms, the cost model's one formula."""
    host = 0.0
    if work.host_ops:
        host = (c.host_op_ms * work.host_ops + 1e3 * work.host_macs / (c.host_gmacs_per_s * 1e9)
                + 1e-3 * work.host_bytes / c.host_cpu_mb_per_s)
    return AdditiveTerms(
        c.op_overhead_ms * work.ops - hidden_overhead_ms(work, c), mac_array_ms(work.padded_macs, c),
        1e-3 * (work.moved_bytes / c.move_mb_per_s + work.layout_bytes / c.layout_mb_per_s
                + (work.io_bytes + 2 * work.spill_bytes) / c.host_mb_per_s), host)


def model_terms(param_bytes: int, peak_act_bytes: int, mac_ms: float, c: EdgeTpuConstants) -> ModelTerms:
    """Fixed cost and streaming of the parameters beyond the cache (Coral's compiler caches parameters in
    what on-chip memory the executable and the largest activations leave, and streams the rest every
    inference), a share (stream_overlap) of the shorter of streaming and the array's work `mac_ms` hidden:
    parameters of later layers cross USB while earlier layers compute."""
    stream = 1e-3 * max(0.0, param_bytes + peak_act_bytes - c.onchip_mb * 1e6) / c.host_mb_per_s
    return ModelTerms(c.fixed_ms, stream, -(c.stream_overlap * (stream if stream < mac_ms else mac_ms)))


def predict_work_ms(work: Work, c: EdgeTpuConstants) -> float:
    additive = additive_terms(work, c)
    return model_terms(work.param_bytes, work.peak_act_bytes, additive.mac_array, c).ms + additive.ms


def breakdown_ms(work: Work, c: EdgeTpuConstants) -> dict[str, float]:
    """Where the time goes, in ms, term by term; `predict_work_ms` is their sum."""
    additive = additive_terms(work, c)
    model = model_terms(work.param_bytes, work.peak_act_bytes, additive.mac_array, c)
    return {"fixed": model.fixed, "op overhead": additive.op_overhead, "MAC array": additive.mac_array,
            "activation bytes": additive.activation_bytes, "streamed params": model.streamed_params,
            "streaming hidden by MACs": model.streaming_hidden, "host CPU": additive.host_cpu}


def hidden_overhead_ms(work: Work, c: EdgeTpuConstants) -> float:
    """Op overhead hidden behind the ops' own work: the next op's instructions issue and its pipeline
    fills while this one computes, so a MAC op costs max(overhead, its work), i.e. overhead + work -
    min(overhead, work). A MAC-free op (add, pool, quantize, pad, ...) streams its activations through
    without an overhead of its own: it costs its bytes only. Ops without a per-op record (a hand-made
    Work) hide nothing."""
    o = c.op_overhead_ms
    conv, depthwise, conv1x1, dense = (1e3 / (PEAK_MACS_PER_S * c.efficiency(k)) for k in OP_KINDS)
    move, layout = 1e-3 / c.move_mb_per_s, 1e-3 / c.layout_mb_per_s
    hidden = 0.0
    for record in work.per_op:
        p = record.padded_macs
        if not (p.conv or p.depthwise or p.conv1x1 or p.dense):  # MAC-free: no overhead of its own, only its bytes
            hidden += o
            continue
        t = (p.conv * conv + p.depthwise * depthwise + p.conv1x1 * conv1x1 + p.dense * dense
             + record.moved_bytes * move + record.layout_bytes * layout)
        hidden += t if t < o else o
    return hidden


def mac_array_ms(padded: ByKind, c: EdgeTpuConstants) -> float:
    """The MAC array's time: the padded MACs of every kind at their efficiencies."""
    return 1e3 * (padded.conv / c.efficiency_conv + padded.depthwise / c.efficiency_depthwise
                  + padded.conv1x1 / c.efficiency_conv1x1 + padded.dense / c.efficiency_dense) / PEAK_MACS_PER_S


@dataclass(frozen=True)
class TflitePrediction:
    ms: float
    on_host: tuple[str, ...]  # ops the Edge TPU compiler would leave to the host CPU, in order
    unknown: tuple[str, ...]  # ops the model does not know: run on the host, costed with its per-op default
    host_reason: str = ""  # the first op the compiler cannot map, and why

    def describe(self) -> str:
        lines = []
        if self.on_host:
            lines.append(f"{len(self.on_host)} op(s) on the host CPU (from the first unsupported op on): "
                         + ", ".join(self.on_host))
            if self.host_reason:
                lines.append(f"first op on the host: {self.host_reason}")
        if self.unknown:
            lines.append("unknown to the cost model, costed as host ops (per-op default + bytes): "
                         + ", ".join(sorted(set(self.unknown))))
        return "\n".join(lines)


def predict_tflite(path, constants: EdgeTpuConstants | None = None) -> TflitePrediction:
    """A .tflite file's predicted latency and the ops that would run on the host: what `nas latency
    predict FILE.tflite` prints."""
    from latency.tflite_ops import tflite_work

    c = constants or load_constants()
    work = tflite_work(path, c.mac_tile)
    return TflitePrediction(predict_work_ms(work, c), work.on_host, work.unknown, work.host_reason)


class LayerCost(NamedTuple):
    """What the cost model keeps of one layer's work: its additive ms and what the whole-model terms need."""

    additive_ms: float
    param_bytes: int
    peak_act_bytes: int
    mac_ms: float


class EdgeTpuCostModel:
    """The `sim` latency source: Coral USB Accelerator latency predicted from the analytic model."""

    name = "sim"

    def __init__(self, constants: EdgeTpuConstants | None = None):
        self.constants = constants or load_constants()
        self._layer_cache: dict = {}  # layer -> LayerCost

    def _cost(self, work: Work) -> LayerCost:
        additive = additive_terms(work, self.constants)
        return LayerCost(additive.ms, work.param_bytes, work.peak_act_bytes, additive.mac_array)

    def predict_ms(self, spec: ModelSpec) -> float:
        """predict_work_ms(spec_work(spec)), without building the summed Work: candidates in a search
        share most layers, so each layer's additive part is computed once."""
        c, cache = self.constants, self._layer_cache
        if len(cache) > 65536:
            cache.clear()
        io = self._cost(spec_work_io(spec))
        ms, params, peak, mac = io.additive_ms, 0, io.peak_act_bytes, io.mac_ms
        for layer in spec.layers():
            hit = cache.get(layer)
            if hit is None:
                hit = cache[layer] = self._cost(layer_work(layer, c.mac_tile))
            ms += hit.additive_ms
            params += hit.param_bytes
            peak = max(peak, hit.peak_act_bytes)
            mac += hit.mac_ms
        return ms + model_terms(params, peak, mac, c).ms

    def predict_tflite_ms(self, path) -> float:
        return predict_tflite(path, self.constants).ms

    def breakdown_ms(self, work: Work) -> dict[str, float]:
        return breakdown_ms(work, self.constants)
