"""Registers the built-in latency sources with `latency.base`.

`sim` (the Edge TPU cost model) and `lut:PATH` (a lookup table, calibrated or not) predict without
TensorFlow; `tflite-cpu[:float|int8]` and `edgetpu` build, convert and time each spec, importing
TensorFlow only when they measure.
"""

from __future__ import annotations

from latency.base import register_source
from latency.edgetpu_model import EdgeTpuCostModel
from search_space.errors import UserError
from search_space.spec import ModelSpec


def _sim(argument: str) -> EdgeTpuCostModel:
    if argument:
        raise UserError(f"latency source 'sim' takes no argument, got 'sim:{argument}'")
    return EdgeTpuCostModel()


register_source("sim", _sim)


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


def _tflite_cpu(argument: str) -> MeasuredLatency:
    if argument not in ("", "int8", "float"):
        raise UserError(f"latency source 'tflite-cpu' takes int8 or float, got 'tflite-cpu:{argument}'")
    return MeasuredLatency("tflite-cpu" + (f":{argument}" if argument else ""))


def _edgetpu(argument: str) -> MeasuredLatency:
    if argument:
        raise UserError(f"latency source 'edgetpu' takes no argument, got 'edgetpu:{argument}'")
    return MeasuredLatency("edgetpu")


register_source("lut", _lut)
register_source("tflite-cpu", _tflite_cpu)
register_source("edgetpu", _edgetpu)
