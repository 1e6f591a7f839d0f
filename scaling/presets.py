"""The published coefficient tables as presets: EdgeTPU S/M/L and EfficientNet B0-B7.

The tables themselves live in `search_space.registry` (one source of truth); a preset applies each
row *relative to the table's first row* to any base, so the base's own coefficients compose:
width x w/w0, depth x d/d0, resolution x r/r0 rounded to the nearest pixel, dropout as published.
Applied to the table's own base (efficientnet-edgetpu-S, efficientnet-b0) this gives specs equal to
the registry's, names included; any other base gets `<base name>-<label>` (label S, M, L, b0..b7).
"""

from __future__ import annotations

from search_space.errors import UserError
from search_space.registry import EDGETPU_COEFFICIENTS, EFFICIENTNET_COEFFICIENTS
from search_space.spec import ModelSpec

from scaling.compound import scale_spec

PRESETS: dict[str, dict[str, tuple[float, float, int, float]]] = {
    "edgetpu": EDGETPU_COEFFICIENTS,
    "efficientnet": EFFICIENTNET_COEFFICIENTS,
}
"""Published scaling tables by family: name -> (width, depth, resolution, dropout) of each released model."""


def preset_table(preset: str) -> dict[str, tuple[float, float, int, float]]:
    if preset not in PRESETS:
        raise UserError(f"unknown preset '{preset}' (known: {', '.join(PRESETS)})")
    return PRESETS[preset]


def preset_label(model_name: str) -> str:
    """'efficientnet-edgetpu-M' -> 'M', 'efficientnet-b3' -> 'b3'."""
    return model_name.rsplit("-", 1)[-1]


def apply_preset(spec: ModelSpec, preset: str) -> list[ModelSpec]:
    """One scaled spec per row of the preset's table, in table order."""
    table = preset_table(preset)
    base_name, (w0, d0, r0, _) = next(iter(table.items()))
    family = []
    for name, (width, depth, resolution, dropout) in table.items():
        family.append(scale_spec(
            spec,
            width=width / w0,
            depth=depth / d0,
            resolution=int(spec.resolution * resolution / r0 + 0.5),
            dropout=dropout,
            name=name if spec.name == base_name else f"{spec.name}-{preset_label(name)}",
        ))
    return family
