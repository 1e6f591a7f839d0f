"""The one latency interface every source implements, and the registry of sources by name.

A source string is what users type: `sim`, `lut:PATH`, `tflite-cpu`, `edgetpu`. Each source is a
factory registered for its prefix where it is defined (`@LATENCY_SOURCES.register("sim")`, see
`latency.sources`); `latency.make_latency_model` looks it up. Importing this module never imports
TensorFlow (the measured sources import it when they measure).
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

from search_space.extensions import Registry
from search_space.spec import ModelSpec


@runtime_checkable
class LatencyModel(Protocol):
    """Predicts (or measures) one batch-1 inference of a whole model, in milliseconds."""

    name: str

    def predict_ms(self, spec: ModelSpec) -> float: ...


# prefix -> factory(argument): the model for `prefix` or `prefix:argument`
LATENCY_SOURCES = Registry("latency source")
"""The latency sources by prefix (`latency.source`: `sim`, `lut:PATH`, ...); add one with `register_source`."""


def register_source(prefix: str, factory: Callable[[str], LatencyModel]) -> None:
    """For sources defined outside this package; built-in ones use the decorator."""
    LATENCY_SOURCES.register(prefix)(factory)
