"""Latency models: measured (TFLite CPU, Edge TPU), lookup tables with calibration, the cost model."""

from latency.base import LATENCY_SOURCES, LatencyModel, register_source
from latency.edgetpu_model import EdgeTpuCostModel
from latency.sources import make_latency_model

__all__ = ["EdgeTpuCostModel", "LATENCY_SOURCES", "LatencyModel", "make_latency_model", "register_source"]
