"""Latency models: measured (TFLite CPU, Edge TPU), lookup tables with calibration, the cost model."""

from latency.base import LatencyModel, make_latency_model, register_source

__all__ = ["LatencyModel", "make_latency_model", "register_source"]
