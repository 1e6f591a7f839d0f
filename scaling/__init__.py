"""Compound scaling: reference rounding, published coefficient tables, phi scaling, coefficient search.

Pure spec arithmetic: nothing here imports TensorFlow, `latency` or `nas`; a latency cost and an
accuracy scorer (`nas scale search --config` trains each phi = 1 model on the proxy task) enter the
coefficient search as plain callables.
"""

from scaling.compound import (
    DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA, RESOLUTION_DIVISOR, nominal_cost_factor, phi_dropout,
    phi_resolution, scale_phi, scale_spec,
)
from scaling.presets import PRESETS, apply_preset
from scaling.search import DEFAULT_GRID, Candidate, SearchResult, grid, proxy_resolution, search_coefficients

__all__ = [
    "DEFAULT_ALPHA", "DEFAULT_BETA", "DEFAULT_GAMMA", "DEFAULT_GRID", "PRESETS", "RESOLUTION_DIVISOR",
    "Candidate", "SearchResult", "apply_preset", "grid", "nominal_cost_factor", "phi_dropout",
    "phi_resolution", "proxy_resolution", "scale_phi", "scale_spec", "search_coefficients",
]
