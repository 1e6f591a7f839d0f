"""The built-in latency sources, each registered where it is defined, and `make_latency_model`.

`sim` (the Edge TPU cost model) and `lut:PATH` (a lookup table, calibrated or not) predict without
TensorFlow; `tflite-cpu[:float|int8]` and `edgetpu` build, convert and time each spec, importing
TensorFlow only when they measure.
"""

from __future__ import annotations

from latency.base import LATENCY_SOURCES, LatencyModel
from latency.edgetpu_model import EdgeTpuCostModel
from search_space.errors import UserError
from search_space.spec import ModelSpec


def make_latency_model(source: str) -> LatencyModel:
    prefix, _, argument = source.partition(":")
    return LATENCY_SOURCES.get(prefix)(argument)


def _no_argument(prefix: str, argument: str) -> None:
    if argument:
        raise UserError(f"latency source '{prefix}' takes no argument, got '{prefix}:{argument}'")


@LATENCY_SOURCES.register("sim")
def _sim(argument: str) -> EdgeTpuCostModel:
    _no_argument("sim", argument)
    return EdgeTpuCostModel()


@LATENCY_SOURCES.register("lut")
def _lut(argument: str):
    from latency.lookup_table import LookupTable, LookupTableModel

    if not argument:
        raise UserError("latency source 'lut' needs a table file: lut:PATH (build one with 'nas latency build-lut')")
    return LookupTableModel(LookupTable.load(argument))


class MeasuredLatency:
    """`tflite-cpu[:int8|float]` and `edgetpu`: build, convert and time every spec (seconds each)."""

    def __init__(self, source: str):
        from latency.profiling import make_profiler

        self.name = source
        self.profiler = make_profiler(source)

    def predict_ms(self, spec: ModelSpec) -> float:
        return self.profiler.models([spec])[0].ms


@LATENCY_SOURCES.register("tflite-cpu")
def _tflite_cpu(argument: str) -> MeasuredLatency:
    if argument not in ("", "int8", "float"):
        raise UserError(f"latency source 'tflite-cpu' takes int8 or float, got 'tflite-cpu:{argument}'")
    return MeasuredLatency("tflite-cpu" + (f":{argument}" if argument else ""))


@LATENCY_SOURCES.register("edgetpu")
def _edgetpu(argument: str) -> MeasuredLatency:
    _no_argument("edgetpu", argument)
    return MeasuredLatency("edgetpu")
