"""The released architectures, typed in as their published block strings plus coefficients.

One family = one tuple of block strings + one coefficient table; every model is a `ModelSpec`
built from those, never a file of its own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from search_space.codec import decode_block
from search_space.errors import UserError
from search_space.spec import ModelSpec

EDGETPU_BLOCKS = (
    "r1_k3_s11_e4_i24_o24_c1_noskip",
    "r2_k3_s22_e8_i24_o32_c1",
    "r4_k3_s22_e8_i32_o48_c1",
    "r5_k5_s22_e8_i48_o96",
    "r4_k5_s11_e8_i96_o144",
    "r2_k5_s22_e8_i144_o192",
)
EFFICIENTNET_BLOCKS = (
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
)
MNASNET_A1_BLOCKS = (
    "r1_k3_s11_e1_i32_o16_noskip",
    "r2_k3_s22_e6_i16_o24",
    "r3_k5_s22_e3_i24_o40_se0.25",
    "r4_k3_s22_e6_i40_o80",
    "r2_k3_s11_e6_i80_o112_se0.25",
    "r3_k5_s22_e6_i112_o160_se0.25",
    "r1_k3_s11_e6_i160_o320",
)
MNASNET_B1_BLOCKS = (
    "r1_k3_s11_e1_i32_o16_noskip",
    "r3_k3_s22_e3_i16_o24",
    "r3_k5_s22_e3_i24_o40",
    "r3_k5_s22_e6_i40_o80",
    "r2_k3_s11_e6_i80_o96",
    "r4_k5_s22_e6_i96_o192",
    "r1_k3_s11_e6_i192_o320_noskip",
)

# (width, depth, resolution, dropout) as published; M and L reuse B1's and B3's coefficients.
EDGETPU_COEFFICIENTS = {
    "efficientnet-edgetpu-S": (1.0, 1.0, 224, 0.2),
    "efficientnet-edgetpu-M": (1.0, 1.1, 240, 0.2),
    "efficientnet-edgetpu-L": (1.2, 1.4, 300, 0.3),
}
EFFICIENTNET_COEFFICIENTS = {
    "efficientnet-b0": (1.0, 1.0, 224, 0.2),
    "efficientnet-b1": (1.0, 1.1, 240, 0.2),
    "efficientnet-b2": (1.1, 1.2, 260, 0.3),
    "efficientnet-b3": (1.2, 1.4, 300, 0.3),
    "efficientnet-b4": (1.4, 1.8, 380, 0.4),
    "efficientnet-b5": (1.6, 2.2, 456, 0.4),
    "efficientnet-b6": (1.8, 2.6, 528, 0.5),
    "efficientnet-b7": (2.0, 3.1, 600, 0.5),
}
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def _family(blocks: tuple[str, ...], **settings) -> ModelSpec:
    return ModelSpec(blocks=tuple(decode_block(b) for b in blocks), **settings)


def _build_registry() -> dict[str, ModelSpec]:
    edgetpu = _family(
        EDGETPU_BLOCKS, activation="relu", num_classes=1001, include_background=True,
        mean=(127.0,) * 3, std=(128.0,) * 3, drop_connect=0.2,
    )
    efficientnet = _family(
        EFFICIENTNET_BLOCKS, activation="swish", num_classes=1000, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        drop_connect=0.2,
    )
    models: dict[str, ModelSpec] = {}
    for table, base in ((EDGETPU_COEFFICIENTS, edgetpu), (EFFICIENTNET_COEFFICIENTS, efficientnet)):
        for name, (width, depth, resolution, dropout) in table.items():
            models[name] = dataclasses.replace(
                base, name=name, width=width, depth=depth, resolution=resolution, dropout=dropout
            )
    for name, blocks in (("mnasnet-a1", MNASNET_A1_BLOCKS), ("mnasnet-b1", MNASNET_B1_BLOCKS)):
        models[name] = _family(
            blocks, name=name, activation="relu", num_classes=1000, scale_head=False, dropout=0.2,
            drop_connect=0.0, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        )
    return models


REGISTRY: dict[str, ModelSpec] = _build_registry()
"""The released models by name (EfficientNet-EdgeTPU S/M/L, EfficientNet B0-B7, MnasNet): `nas models` lists them."""


def model_names() -> list[str]:
    """The names in `REGISTRY`, in registration order."""
    return list(REGISTRY)


def get_spec(name_or_path: str | Path) -> ModelSpec:
    """A registered model by name, or a `ModelSpec` YAML file by path."""
    key = str(name_or_path)
    if key in REGISTRY:
        return REGISTRY[key]
    path = Path(key)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        return load_spec_file(path)
    lowered = {n.lower(): n for n in REGISTRY}
    hint = f"; did you mean '{lowered[key.lower()]}'?" if key.lower() in lowered else ""
    raise UserError(f"unknown model '{key}'{hint} (see 'nas models' for names, or give a spec .yaml file)")


def load_spec_file(path: str | Path) -> ModelSpec:
    """A `ModelSpec` from a YAML file; a missing, unreadable or invalid file is a `UserError`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"spec file '{path}' does not exist")
    if not path.is_file():
        raise UserError(f"spec file '{path}' is not a file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read spec file '{path}': {exc}") from None
    return ModelSpec.from_yaml(text, source=str(path))
