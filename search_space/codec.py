"""`BlockSpec` and the official block-string grammar of the TPU models repository (EfficientNet,
MnasNet, EdgeTPU): a block and the string that states it live together, so neither imports the other.

`r2_k3_s22_e8_i24_o32_c1` means: 2 repeats, kernel 3, stride 2x2, expansion 8, 24 -> 32 filters,
conv type 1 (fused; each registered block kind has its conv type, `search_space.ops`). Tokens: r k s e i o (required), se<float>, c<0|1>, noskip. The grammar also has
f, p, cc, d and a; none of the released models sets them, so only their neutral value (0) is
accepted and anything else is rejected rather than silently ignored.

Encoding writes the canonical order the reference encoder uses (r k s e i o c se noskip), leaving
out `c0`, which is how every published string is written, so published strings round-trip unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from search_space.errors import SpecError, UserError
from search_space.ops import LAYER_KINDS, block_kinds

_TOKEN = re.compile(r"^([a-z]+)(\d.*)?$")
_REQUIRED = ("r", "k", "s", "e", "i", "o")
_NEUTRAL_ONLY = {"f": "fused_conv", "p": "super_pixel", "cc": "condense_ratio", "d": "dilation", "a": "activation"}


class BlockStringError(UserError):
    pass


# Every numeric field's inclusive range (se_ratio: a float). The upper bounds are far beyond any published
# block (EfficientNet-L2: kernel 5, 640 filters, 7 repeats after scaling); they keep sizes finite for the
# integer and float arithmetic of counting, building and the cost model.
BLOCK_BOUNDS = {"kernel": (1, 31), "stride": (1, 2), "expand_ratio": (1, 64), "in_filters": (1, 65536),
                "out_filters": (1, 65536), "repeats": (1, 1000), "se_ratio": (0.0, 1.0)}


@dataclass(frozen=True)
class BlockSpec:
    """One stage before repetition, exactly as a block string states it."""

    kind: str = "mbconv"
    kernel: int = 3
    stride: int = 1
    expand_ratio: int = 1
    in_filters: int = 32
    out_filters: int = 16
    repeats: int = 1
    se_ratio: float = 0.0
    skip: bool = True

    def __post_init__(self) -> None:
        if self.kind not in block_kinds():
            raise SpecError(f"block kind '{self.kind}' is not one of {', '.join(block_kinds())}")
        for name in ("kernel", "stride", "expand_ratio", "in_filters", "out_filters", "repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SpecError(f"block {name} must be a positive whole number, got {value!r}")
            if value > BLOCK_BOUNDS[name][1]:
                raise SpecError(f"block {name} must be at most {BLOCK_BOUNDS[name][1]}, got {value!r}")
        if self.kernel % 2 == 0:
            raise SpecError(f"block kernel must be odd, got {self.kernel}")
        if self.stride not in (1, 2):
            raise SpecError(f"block stride must be 1 or 2, got {self.stride}")
        if not 0.0 <= float(self.se_ratio) <= 1.0:
            raise SpecError(f"block se_ratio must be in [0, 1], got {self.se_ratio}")

    def __str__(self) -> str:
        return encode_block(self)


def _positive_int(token: str, value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise BlockStringError(f"token {token!r}: expected a positive whole number after '{token[0]}'")
    return int(value)


def decode_block(block_string: str) -> BlockSpec:
    """Parse one official block string; a malformed token is named in the error."""
    if not isinstance(block_string, str) or not block_string.strip():
        raise BlockStringError(f"block string {block_string!r} is empty or not a string")
    options: dict[str, str] = {}
    skip = True
    for token in block_string.strip().split("_"):
        if token == "noskip":
            skip = False
            continue
        match = _TOKEN.match(token)
        if not match or match.group(2) is None:
            raise BlockStringError(f"block string {block_string!r}: unknown token {token!r}")
        key, value = match.groups()
        if key not in _REQUIRED and key not in ("se", "c") and key not in _NEUTRAL_ONLY:
            raise BlockStringError(f"block string {block_string!r}: unknown token {token!r}")
        if key in options:
            raise BlockStringError(f"block string {block_string!r}: token '{key}' given twice")
        options[key] = value
    missing = [k for k in _REQUIRED if k not in options]
    if missing:
        raise BlockStringError(f"block string {block_string!r}: missing token(s) {', '.join(missing)}")
    stride_token = "s" + options["s"]
    if not re.fullmatch(r"[12]{2}", options["s"]) or options["s"][0] != options["s"][1]:
        raise BlockStringError(
            f"block string {block_string!r}: token '{stride_token}': stride must be two equal digits, s11 or s22"
        )
    for key, what in _NEUTRAL_ONLY.items():
        if key in options and options[key] not in ("0",):
            raise BlockStringError(
                f"block string {block_string!r}: token '{key}{options[key]}' ({what}) is not supported; only {key}0"
            )
    kinds = {str(LAYER_KINDS.get(k).conv_type): k for k in block_kinds()}
    kind = kinds.get(options.get("c", "0"))
    if kind is None:
        known = " or ".join(kinds)
        raise BlockStringError(f"block string {block_string!r}: token 'c{options['c']}': conv type must be {known}")
    se_ratio = 0.0
    if "se" in options:
        try:
            se_ratio = float(options["se"])
        except ValueError:
            raise BlockStringError(f"block string {block_string!r}: token 'se{options['se']}' is not a number") from None
        if not 0.0 < se_ratio <= 1.0:
            raise BlockStringError(f"block string {block_string!r}: token 'se{options['se']}' must be in (0, 1]")
    values = {k: _positive_int(k + options[k], options[k]) for k in ("r", "k", "e", "i", "o")}
    if values["k"] % 2 == 0:
        raise BlockStringError(f"block string {block_string!r}: token 'k{values['k']}': kernel must be odd")
    return BlockSpec(
        kind=kind,
        kernel=values["k"],
        stride=int(options["s"][0]),
        expand_ratio=values["e"],
        in_filters=values["i"],
        out_filters=values["o"],
        repeats=values["r"],
        se_ratio=se_ratio,
        skip=skip,
    )


def encode_block(block: BlockSpec) -> str:
    """Write a block in the canonical published form."""
    parts = [
        f"r{block.repeats}",
        f"k{block.kernel}",
        f"s{block.stride}{block.stride}",
        f"e{block.expand_ratio}",
        f"i{block.in_filters}",
        f"o{block.out_filters}",
    ]
    conv_type = LAYER_KINDS.get(block.kind).conv_type
    if conv_type:
        parts.append(f"c{conv_type}")
    if block.se_ratio:
        parts.append(f"se{block.se_ratio:g}")
    if not block.skip:
        parts.append("noskip")
    return "_".join(parts)
