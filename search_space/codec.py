"""The official block-string grammar of the TPU models repository (EfficientNet, MnasNet, EdgeTPU).

`r2_k3_s22_e8_i24_o32_c1` means: 2 repeats, kernel 3, stride 2x2, expansion 8, 24 -> 32 filters,
conv type 1 (fused). Tokens: r k s e i o (required), se<float>, c<0|1>, noskip. The grammar also has
f, p, cc, d and a; none of the released models sets them, so only their neutral value (0) is
accepted and anything else is rejected rather than silently ignored.

Encoding writes the canonical order the reference encoder uses (r k s e i o c se noskip), leaving
out `c0`, which is how every published string is written, so published strings round-trip unchanged.
"""

from __future__ import annotations

import re

from search_space.errors import UserError
from search_space.spec import BlockSpec

_TOKEN = re.compile(r"^([a-z]+)(\d.*)?$")
_REQUIRED = ("r", "k", "s", "e", "i", "o")
_NEUTRAL_ONLY = {"f": "fused_conv", "p": "super_pixel", "cc": "condense_ratio", "d": "dilation", "a": "activation"}
_KINDS = {0: "mbconv", 1: "fused_mbconv"}
_CONV_TYPES = {kind: c for c, kind in _KINDS.items()}


class BlockStringError(UserError):
    pass


def _positive_int(token: str, value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise BlockStringError(f"token '{token}': expected a positive whole number after '{token[0]}'")
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
            raise BlockStringError(f"block string '{block_string}': unknown token '{token}'")
        key, value = match.groups()
        if key not in _REQUIRED and key not in ("se", "c") and key not in _NEUTRAL_ONLY:
            raise BlockStringError(f"block string '{block_string}': unknown token '{token}'")
        if key in options:
            raise BlockStringError(f"block string '{block_string}': token '{key}' given twice")
        options[key] = value
    missing = [k for k in _REQUIRED if k not in options]
    if missing:
        raise BlockStringError(f"block string '{block_string}': missing token(s) {', '.join(missing)}")
    stride_token = "s" + options["s"]
    if not re.fullmatch(r"[12]{2}", options["s"]) or options["s"][0] != options["s"][1]:
        raise BlockStringError(
            f"block string '{block_string}': token '{stride_token}': stride must be two equal digits, s11 or s22"
        )
    for key, what in _NEUTRAL_ONLY.items():
        if key in options and options[key] not in ("0",):
            raise BlockStringError(
                f"block string '{block_string}': token '{key}{options[key]}' ({what}) is not supported; only {key}0"
            )
    conv_type = options.get("c", "0")
    if conv_type not in ("0", "1"):
        raise BlockStringError(f"block string '{block_string}': token 'c{options['c']}': conv type must be 0 or 1")
    se_ratio = 0.0
    if "se" in options:
        try:
            se_ratio = float(options["se"])
        except ValueError:
            raise BlockStringError(f"block string '{block_string}': token 'se{options['se']}' is not a number") from None
        if not 0.0 < se_ratio <= 1.0:
            raise BlockStringError(f"block string '{block_string}': token 'se{options['se']}' must be in (0, 1]")
    values = {k: _positive_int(k + options[k], options[k]) for k in ("r", "k", "e", "i", "o")}
    if values["k"] % 2 == 0:
        raise BlockStringError(f"block string '{block_string}': token 'k{values['k']}': kernel must be odd")
    return BlockSpec(
        kind=_KINDS[int(conv_type)],
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
    if _CONV_TYPES[block.kind]:
        parts.append(f"c{_CONV_TYPES[block.kind]}")
    if block.se_ratio:
        parts.append(f"se{block.se_ratio:g}")
    if not block.skip:
        parts.append("noskip")
    return "_".join(parts)
