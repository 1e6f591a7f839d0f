"""Compound scaling of a `ModelSpec`: width, depth and resolution coefficients, and phi scaling.

A `ModelSpec` keeps its base blocks and stores the coefficients; `layers()` applies the reference
rounding (filters: nearest multiple of 8, never more than 10% below; repeats: ceil). Scaling here
therefore only *multiplies* the stored width and depth, so scaling an already scaled spec composes:
`scale_phi(scale_phi(s, 1), 1)` has the width and depth of `scale_phi(s, 2)` and the channel and
repeat rounding happens once, in `layers()`. Resolution is an integer and is rounded at each step.

Phi scaling (EfficientNet): depth `alpha**phi`, width `beta**phi`, resolution `gamma**phi`.

Resolution rule (ours; the published tables are hand-picked): the scaled side is rounded *down* to a
multiple of 32, the network's total stride, so every stage halves the map exactly; phi = 0 leaves it
as it is. Rounding down also offsets the two reference rules that only round up (repeats by ceil,
filters never more than 10% below), which keeps the MACs of the phi model near
`(alpha * beta**2 * gamma**2) ** phi`. The published B1-B7 resolutions (240, 260, 300, 380, 456, 528,
600) all lie at or below `224 * 1.15**k`, and none of B1-B7 or EdgeTPU M/L is `alpha**phi` scaling at
any one phi, so the presets reproduce them from the tables instead (see `scaling.presets`).

Dropout rule for phi scaling: the published tables raise dropout by 0.1 every second model
(B0..B7: 0.2 0.2 0.3 0.3 0.4 0.4 0.5 0.5) and B_k is about phi = k in MACs, so the phi model gets the
base's dropout plus `0.1 * floor(phi / 2)`, capped at 0.5 and never lowered. Drop-connect is left as
it is, as in every published table.
"""

from __future__ import annotations

import dataclasses
import math

from search_space.errors import UserError
from search_space.spec import ModelSpec

DEFAULT_ALPHA = 1.2
"""EfficientNet's depth coefficient: phi scaling multiplies depth by `alpha ** phi`."""
DEFAULT_BETA = 1.1
"""EfficientNet's width coefficient: phi scaling multiplies width by `beta ** phi`."""
DEFAULT_GAMMA = 1.15
"""EfficientNet's resolution coefficient: phi scaling multiplies resolution by `gamma ** phi` (then rounds)."""
RESOLUTION_DIVISOR = 32
"""A scaled resolution is rounded down to a multiple of this (the network's total stride)."""
MAX_PHI_DROPOUT = 0.5
# B7 is depth x3.1; a factor far beyond it is a typo (phi 1e3), and would expand into billions of layers.
MAX_FACTOR = 64.0


def _clean(value: float) -> float:
    """Drop floating-point noise from a stored coefficient (1.1**2 is 1.2100000000000002)."""
    return round(value, 12)


def check_coefficient(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UserError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_phi(phi: float) -> float:
    if isinstance(phi, bool) or not isinstance(phi, (int, float)) or not math.isfinite(phi) or phi < 0:
        raise UserError(f"phi must be a number >= 0, got {phi!r}")
    return float(phi)


def nominal_cost_factor(alpha: float, beta: float, gamma: float, phi: float = 1.0) -> float:
    """What the paper's FLOPs rule promises: `(alpha * beta**2 * gamma**2) ** phi`."""
    return (alpha * beta**2 * gamma**2) ** phi


def phi_resolution(resolution: int, factor: float, divisor: int = RESOLUTION_DIVISOR) -> int:
    """`resolution * factor` rounded down to a multiple of `divisor` (at least one); factor 1 keeps it."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor <= 0:
        raise UserError(f"resolution divisor must be a positive whole number, got {divisor!r}")
    if factor == 1:
        return resolution
    # The epsilon keeps an exact product (224 * 1.25 = 280.0000000001 or 279.9999999999) on its value.
    return max(divisor, int(resolution * factor / divisor + 1e-9) * divisor)


def phi_dropout(dropout: float, phi: float) -> float:
    """The phi model's dropout: the base's plus `0.1 * floor(phi / 2)`, capped at 0.5, never lowered
    (the module's dropout rule, after the published B0-B7 tables)."""
    if dropout >= MAX_PHI_DROPOUT:
        return dropout
    return _clean(min(MAX_PHI_DROPOUT, dropout + 0.1 * math.floor(phi / 2 + 1e-9)))


def scale_spec(
    spec: ModelSpec,
    width: float = 1.0,
    depth: float = 1.0,
    resolution: int | None = None,
    dropout: float | None = None,
    name: str | None = None,
) -> ModelSpec:
    """Multiply `spec`'s width and depth by the given factors; set resolution and dropout if given."""
    width = check_coefficient("width factor", width)
    depth = check_coefficient("depth factor", depth)
    return dataclasses.replace(
        spec,
        name=spec.name if name is None else name,
        width=_clean(spec.width * width),
        depth=_clean(spec.depth * depth),
        resolution=spec.resolution if resolution is None else resolution,
        dropout=spec.dropout if dropout is None else dropout,
    )


def scale_phi(
    spec: ModelSpec,
    phi: float,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    gamma: float = DEFAULT_GAMMA,
    resolution_divisor: int = RESOLUTION_DIVISOR,
    name: str | None = None,
) -> ModelSpec:
    """The phi model of `spec`: depth x alpha**phi, width x beta**phi, resolution x gamma**phi."""
    phi = check_phi(phi)
    alpha, beta, gamma = (check_coefficient(n, v) for n, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma)))
    for what, symbol, coefficient in (("depth", "alpha", alpha), ("width", "beta", beta), ("resolution", "gamma", gamma)):
        if math.log(coefficient) * phi > math.log(MAX_FACTOR):
            raise UserError(f"phi {phi:g} with {symbol} {coefficient:g} scales {what} by more than {MAX_FACTOR:g}x; "
                            f"use a smaller phi")
    return scale_spec(
        spec,
        width=beta**phi,
        depth=alpha**phi,
        resolution=phi_resolution(spec.resolution, gamma**phi, resolution_divisor),
        dropout=phi_dropout(spec.dropout, phi),
        name=f"{spec.name}-phi{phi:g}" if name is None else name,
    )
