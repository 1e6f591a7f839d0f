"""What each layer computes, said once: its primitive ops, and the registry of layer kinds.

A layer kind (the stem, the head, every block kind) is registered here with the function that
turns a concrete `Layer` into its ops. The Keras builder creates one Keras layer (or a few) per op,
the counters sum the ops' parameters and MACs, and the Edge TPU cost model maps each op to the int8
TFLite ops it becomes, so what a block computes cannot disagree between them.

To add a block kind: register its name, its block-string conv-type token (`c<N>`) and its op list
below; the builder needs a change only for an op kind it does not know yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from search_space.errors import UserError
from search_space.extensions import Registry

# Op kinds: "conv" (full kxk), "conv1x1", "depthwise", "se" (squeeze-excite), "pool" (whole-map
# average), "dense" (the classifier, bias included), "add" (the residual connection).
WEIGHTED_OPS = ("conv", "conv1x1", "depthwise", "se", "dense")


@dataclass(frozen=True)
class Op:
    """One primitive op on a square `in_size` map; convs carry no bias (batch norm has the shift)."""

    kind: str
    in_size: int
    out_size: int
    in_ch: int
    out_ch: int
    kernel: int = 1
    stride: int = 1
    hidden: int = 0  # the squeeze width of an "se" op
    norm: bool = False  # followed by batch norm (gamma and beta trainable)
    act: bool = False  # ... and then the model's activation

    @property
    def weights(self) -> int:
        """Multiplicative weights (no biases, no batch norm)."""
        if self.kind in ("conv", "conv1x1"):
            return self.kernel * self.kernel * self.in_ch * self.out_ch
        if self.kind == "depthwise":
            return self.kernel * self.kernel * self.out_ch
        if self.kind == "se":
            return 2 * self.out_ch * self.hidden
        if self.kind == "dense":
            return self.in_ch * self.out_ch
        return 0

    @property
    def params(self) -> int:
        """Trainable parameters: weights, biases (se, dense), batch-norm gamma and beta."""
        biases = {"se": self.hidden + self.out_ch, "dense": self.out_ch}.get(self.kind, 0)
        return self.weights + biases + (2 * self.out_ch if self.norm else 0)

    @property
    def macs(self) -> int:
        # Squeeze-excite's convs run on the pooled 1x1 map; the dense layer on a vector.
        pixels = self.out_size * self.out_size if self.kind in ("conv", "conv1x1", "depthwise") else 1
        return self.weights * pixels


def conv(size_in: int, kernel: int, cin: int, cout: int, stride: int = 1, act: bool = True) -> Op:
    """A convolution with batch norm; a 1x1 one is its own kind (it runs at another efficiency)."""
    size_out = -(-size_in // stride)
    return Op("conv1x1" if kernel == 1 else "conv", size_in, size_out, cin, cout, kernel, stride, norm=True, act=act)


@dataclass(frozen=True)
class LayerKind:
    name: str
    ops: Callable  # (Layer) -> tuple[Op, ...]
    conv_type: int | None = None  # the block string's `c<N>`; None: not a block (stem, head)
    # The reference decides a residual from the declared filters rather than the real input width.
    declared_residual: bool = False
    # Whether ModelSpec.fused_stride_on changes this kind's strided layers (and so their table key).
    stride_placement: bool = False


LAYER_KINDS = Registry("layer kind")


def layer_kind(name: str, conv_type: int | None = None, **flags):
    """Decorator registering `ops(layer)` as what layers of kind `name` compute."""

    def decorate(ops):
        LAYER_KINDS.register(name)(LayerKind(name, ops, conv_type, **flags))
        return ops

    return decorate


def block_kinds() -> tuple[str, ...]:
    return tuple(name for name, kind in LAYER_KINDS.items() if kind.conv_type is not None)


def block_kind(name: str) -> LayerKind:
    """The registered block kind `name`; an unknown one is the user's error."""
    if name not in block_kinds():
        raise UserError(f"block kind '{name}' is not one of {', '.join(block_kinds())}")
    return LAYER_KINDS.get(name)


def layer_ops(layer) -> tuple[Op, ...]:
    return LAYER_KINDS.get(layer.kind).ops(layer)


@layer_kind("stem")
def _stem(layer) -> tuple[Op, ...]:
    return (conv(layer.in_size, layer.kernel, layer.in_ch, layer.out_ch, layer.stride),)


@layer_kind("head")
def _head(layer) -> tuple[Op, ...]:
    size, width = layer.in_size, layer.expanded_ch
    return (conv(size, 1, layer.in_ch, width), Op("pool", size, 1, width, width),
            Op("dense", 1, 1, width, layer.out_ch))


def _excite_project_add(layer, size: int, project_stride: int) -> tuple[Op, ...]:
    """What every block ends with: optional squeeze-excite, the linear 1x1 projection, the residual."""
    e = layer.expanded_ch
    ops = (Op("se", size, size, e, e, hidden=layer.se_ch),) if layer.se_ch else ()
    ops += (conv(size, 1, e, layer.out_ch, project_stride, act=False),)
    if layer.residual:
        ops += (Op("add", layer.out_size, layer.out_size, layer.out_ch, layer.out_ch),)
    return ops


@layer_kind("mbconv", conv_type=0)
def _mbconv(layer) -> tuple[Op, ...]:
    """Inverted residual: 1x1 expansion (unless ratio 1), strided depthwise kxk, [SE], 1x1 project."""
    size, e = layer.in_size, layer.expanded_ch
    ops = (conv(size, 1, layer.in_ch, e),) if layer.expand_ratio != 1 else ()
    ops += (Op("depthwise", size, layer.out_size, e, e, layer.kernel, layer.stride, norm=True, act=True),)
    return ops + _excite_project_add(layer, layer.out_size, 1)


@layer_kind("fused_mbconv", conv_type=1, declared_residual=True, stride_placement=True)
def _fused_mbconv(layer) -> tuple[Op, ...]:
    """Full kxk expansion conv, [SE], 1x1 project. With ratio 1 there is no kxk conv at all (the
    reference's quirk) and the project conv takes the stride; `fused_stride_on="project"` moves the
    stride there too (the 2019 EdgeTPU release's placement)."""
    on_project = layer.fused_stride_on == "project" or layer.expand_ratio == 1
    ops: tuple[Op, ...] = ()
    if layer.expand_ratio != 1:
        stride = 1 if on_project else layer.stride
        ops = (conv(layer.in_size, layer.kernel, layer.in_ch, layer.expanded_ch, stride),)
    size = layer.in_size if on_project else layer.out_size
    return ops + _excite_project_add(layer, size, layer.stride if on_project else 1)
