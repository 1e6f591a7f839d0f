"""The one latency interface every source implements, and the registry that makes them by name.

A source string is what users type: `sim`, `lut:PATH`, `tflite-cpu`, `edgetpu`. Each source module
registers a factory for its prefix; `make_latency_model` looks it up. Importing this module never
imports TensorFlow (the measured sources import it when they measure).
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

from search_space.errors import UserError
from search_space.spec import ModelSpec


@runtime_checkable
class LatencyModel(Protocol):
    """Predicts (or measures) one batch-1 inference of a whole model, in milliseconds."""

    name: str

    def predict_ms(self, spec: ModelSpec) -> float: ...


_FACTORIES: dict[str, Callable[[str], LatencyModel]] = {}


def register_source(prefix: str, factory: Callable[[str], LatencyModel]) -> None:
    """`factory(argument)` builds the model for `prefix` or `prefix:argument`."""
    _FACTORIES[prefix] = factory


def make_latency_model(source: str) -> LatencyModel:
    import latency.sources  # noqa: F401  (registers the built-in sources)

    prefix, _, argument = source.partition(":")
    if prefix not in _FACTORIES:
        known = ", ".join(f"{p}:PATH" if p == "lut" else p for p in sorted(_FACTORIES))
        raise UserError(f"unknown latency source '{source}' (known: {known})")
    return _FACTORIES[prefix](argument)
