"""What a Keras layer of the builder is, read from its name: the one place that writes and parses them.

The builder names layers as the reference's TF1 variable scopes, with '.' for '/' (Keras forbids '/'):

    <role>[_<block>].[<sub>.]<kind>[_<n>][.act]
    stem.conv2d   blocks_3.tpu_batch_normalization_1   blocks_5.se.conv2d_1   head.dense

`role` is the scope (`stem`, `blocks`, `head`), `block` the block's index in `blocks_<i>`, `sub` a nested
scope (`se`), `kind` the TF1 layer type (`conv2d`, `depthwise_conv2d`, `tpu_batch_normalization`,
`dense`, ...), `n` its count within the scope in creation order, `.act` the activation after a batch
norm. A released checkpoint's variable `<model>/<scope>/<weight>` belongs to the layer whose name is
`<scope>` with '.' for '/' (`reference_scope`).

Freezing (`--freeze-until`: role and block), the L2 term (batch norm excluded: `is_batch_norm`) and the
checkpoint mapping (`builder.reference_weight_map`: `reference_scope`, `kind`) read names only through
`parse`; the builder writes them only through `LayerName.keras`. Renaming a scope or kind here or in the
builder then fails tests/test_layer_names.py (every layer of S/M/L parses, and the released variable
lists round-trip), not a user's fine-tuning, weight decay or checkpoint loading.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

STEM, BLOCKS, HEAD = "stem", "blocks", "head"
ROLES = (STEM, BLOCKS, HEAD)
CONV, DEPTHWISE, BATCH_NORM, DENSE = "conv2d", "depthwise_conv2d", "tpu_batch_normalization", "dense"
# Layers without weights keep their own kinds (pool, flatten, dropout, add, drop_connect, act, gate, excite).
WEIGHT_KINDS = (CONV, DEPTHWISE, BATCH_NORM, DENSE)
SUBS = ("se",)
ACTIVATION = "act"

_NAME = re.compile(r"^(?P<role>[a-z]+)(?:_(?P<block>\d+))?"
                   r"\.(?:(?P<sub>" + "|".join(SUBS) + r")\.)?(?P<kind>[a-z0-9]+(?:_[a-z0-9]+)*?)(?:_(?P<n>\d+))?"
                   r"(?P<act>\.act)?$")


@dataclass(frozen=True)
class LayerName:
    role: str  # STEM, BLOCKS or HEAD
    block: int | None  # i of blocks_<i>; None outside the blocks
    kind: str  # the TF1 layer type, e.g. "conv2d"; for weightless layers their own word ("pool")
    sub: str = ""  # a nested scope, e.g. "se"
    n: int = 0  # the n-th layer of this kind in its (sub)scope
    activation: bool = False  # the activation that follows a batch norm (`<bn name>.act`)

    @property
    def scope(self) -> str:
        return self.role if self.block is None else f"{self.role}_{self.block}"

    @property
    def keras(self) -> str:
        kind = self.kind + (f"_{self.n}" if self.n else "")
        return ".".join(p for p in (self.scope, self.sub, kind) if p) + ("." + ACTIVATION if self.activation else "")

    @property
    def reference_scope(self) -> str:
        """The TF1 scope of its variables below the model's name, e.g. `blocks_5/se/conv2d_1`."""
        return self.keras.replace(".", "/")

    def activated(self) -> LayerName:
        """The activation layer that follows this (batch norm) layer."""
        return dataclasses.replace(self, activation=True)

    @property
    def is_batch_norm(self) -> bool:
        return self.kind == BATCH_NORM and not self.activation


CLASSIFIER = LayerName(HEAD, None, DENSE)  # the logits layer (`head.dense`), replaced when the classes differ


def parse(name: str) -> LayerName:
    """The parts of a builder's layer name (Keras `.` or TF1 `/` separators); ValueError if it is not one."""
    match = _NAME.match(name.replace("/", "."))
    if match is None:
        raise ValueError(f"{name!r} is not a layer name of the builder (<role>[_<block>].[<sub>.]<kind>[_<n>])")
    role, block, sub, kind = match["role"], match["block"], match["sub"] or "", match["kind"]
    if role not in ROLES or (block is None) != (role != BLOCKS):
        raise ValueError(f"{name!r} is not a layer name of the builder (scope {role}{'_' + block if block else ''})")
    return LayerName(role, None if block is None else int(block), kind, sub, int(match["n"] or 0),
                     bool(match["act"]))


def parse_variable(name: str) -> tuple[str, LayerName, str]:
    """`<model>/<scope>/<weight>` (a checkpoint variable) -> (model name, its layer, weight name)."""
    model, rest = name.split("/", 1)
    layer, weight = rest.rsplit("/", 1)
    return model, parse(layer), weight
