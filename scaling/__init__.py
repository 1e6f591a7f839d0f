"""Compound scaling: reference rounding, published coefficient tables, phi scaling, coefficient search.

Pure spec arithmetic: nothing here imports TensorFlow, `latency` or `nas`; a latency cost enters the
coefficient search as a plain callable.
"""

from scaling.compound import (
    DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA, RESOLUTION_DIVISOR, nominal_cost_factor, phi_dropout,
    phi_resolution, scale_phi, scale_spec,
)
from scaling.presets import PRESETS, apply_preset
from scaling.search import DEFAULT_GRID, Candidate, SearchResult, grid, search_coefficients

__all__ = [
    "DEFAULT_ALPHA", "DEFAULT_BETA", "DEFAULT_GAMMA", "DEFAULT_GRID", "PRESETS", "RESOLUTION_DIVISOR",
    "Candidate", "SearchResult", "apply_preset", "grid", "nominal_cost_factor", "phi_dropout",
    "phi_resolution", "scale_phi", "scale_spec", "search_coefficients",
]
