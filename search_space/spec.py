"""`BlockSpec` and `ModelSpec`: the one description of an architecture every part speaks.

A `ModelSpec` holds the *base* blocks (as published, before width/depth scaling) plus the
coefficients; `layers()` applies the reference rounding rules and expands repeats into the concrete
per-layer list that the builder, the counters and the latency models all read.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from search_space.codec import BlockSpec, decode_block, encode_block
from search_space.errors import SpecError, UserError
from search_space.ops import LAYER_KINDS, Op, block_kind, layer_ops

ACTIVATIONS = ("relu", "relu6", "swish")
FUSED_STRIDE_PLACES = ("expand", "project")


def round_filters(filters: float, width: float, divisor: int = 8, min_depth: int | None = None) -> int:
    """The reference rule: nearest multiple of `divisor`, never more than 10% below `filters * width`."""
    filters *= width
    min_depth = min_depth or divisor
    new_filters = max(min_depth, int(filters + divisor / 2) // divisor * divisor)
    if new_filters < 0.9 * filters:
        new_filters += divisor
    return int(new_filters)


def round_repeats(repeats: int, depth: float) -> int:
    """A block's repeats under the depth coefficient: `ceil(depth * repeats)`, the reference's rounding."""
    return int(math.ceil(depth * repeats))


@dataclass(frozen=True)
class Layer:
    """One concrete layer of a built model: a stem, one repeat of a block, or the head.

    `in_size` is the square input side. For blocks, `expanded_ch` is the width of the expansion (for
    the first block of EdgeTPU models it follows the *declared* input filters, not the real input).
    For the head, `expanded_ch` is the 1x1 conv width and `out_ch` the number of classes.
    """

    kind: str  # a registered layer kind (search_space.ops): "stem", a block kind, "head"
    in_size: int
    in_ch: int
    expanded_ch: int
    out_ch: int
    kernel: int
    stride: int
    expand_ratio: int = 1  # 1: no expansion conv (for fused blocks: no spatial conv at all)
    se_ch: int = 0
    residual: bool = False
    fused_stride_on: str = "expand"
    stage: int = -1
    survival_prob: float = 1.0

    @property
    def out_size(self) -> int:
        return -(-self.in_size // self.stride)  # 'same' padding

    @property
    def ops(self) -> tuple[Op, ...]:
        return layer_ops(self)

    @property
    def key(self) -> tuple:
        """What determines this layer's cost: the lookup-table key (stage and drop-connect excluded)."""
        return (
            self.kind,
            self.in_size,
            self.in_ch,
            self.expanded_ch,
            self.out_ch,
            self.kernel,
            self.stride,
            self.expand_ratio,
            self.se_ch,
            self.residual,
            self.fused_stride_on if LAYER_KINDS.get(self.kind).stride_placement and self.stride > 1 else "expand",
        )


# Every numeric field's range (what __post_init__ enforces; NaN and infinities are never within one). Upper
# bounds are far beyond any published model (EfficientNet-L2: width 4.3, depth 5.3, 800 px); they keep the
# rounding, counting and cost-model arithmetic finite (width 1e308 overflows `round_filters`).
SPEC_BOUNDS = {"width": (0.0, 100.0), "depth": (0.0, 100.0), "resolution": (1, 8192), "num_classes": (1, 1_000_000),
               "stem_filters": (1, 65536), "head_filters": (1, 65536), "depth_divisor": (1, 1024),
               "dropout": (0.0, 1.0), "drop_connect": (0.0, 1.0), "bn_momentum": (0.0, 1.0),
               "bn_epsilon": (0.0, 1.0)}
INT_FIELDS = frozenset({"resolution", "num_classes", "stem_filters", "head_filters", "depth_divisor"})
OPEN_BELOW = frozenset({"width", "depth", "bn_epsilon"})  # these exclude their lower bound ...
OPEN_ABOVE = frozenset({"dropout", "drop_connect"})  # ... and these their upper one
CHANNEL_BOUNDS = {"mean": (-1e6, 1e6), "std": (0.0, 1e6)}  # per channel; std excludes 0


def _within(value: Any, low: float, high: float, open_below: bool, open_above: bool) -> bool:
    """A real number (not bool, NaN or infinite) in the range; NaN fails every comparison."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (value > low if open_below else value >= low) and (value < high if open_above else value <= high)


def _interval(low: float, high: float, name: str) -> str:
    open_below = name in OPEN_BELOW or name == "std"
    return f"{'(' if open_below else '['}{low:g}, {high:g}{')' if name in OPEN_ABOVE else ']'}"


@dataclass(frozen=True)
class ModelSpec:
    """A whole network: base blocks, scaling coefficients and the training-relevant settings."""

    name: str = "custom"
    blocks: tuple[BlockSpec, ...] = ()
    stem_filters: int = 32
    head_filters: int = 1280
    scale_head: bool = True  # MnasNet keeps its 1280-wide head fixed; EfficientNet scales it
    width: float = 1.0
    depth: float = 1.0
    resolution: int = 224
    dropout: float = 0.2
    drop_connect: float = 0.2
    activation: str = "relu"
    num_classes: int = 1000
    include_background: bool = False
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-3
    mean: tuple[float, float, float] = (127.0, 127.0, 127.0)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    depth_divisor: int = 8
    fused_stride_on: str = "expand"  # "project": the 2019 release's placement (docs/guides/reproducing.md)

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if not self.blocks:
            raise SpecError("a model needs at least one block")
        if self.activation not in ACTIVATIONS:
            raise SpecError(f"activation '{self.activation}' is not one of {', '.join(ACTIVATIONS)}")
        if self.fused_stride_on not in FUSED_STRIDE_PLACES:
            raise SpecError(f"fused_stride_on must be one of {', '.join(FUSED_STRIDE_PLACES)}")
        for name, (low, high) in SPEC_BOUNDS.items():
            value = getattr(self, name)
            if name in INT_FIELDS:
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise SpecError(f"{name} must be a positive whole number, got {value!r}")
                if value > high:
                    raise SpecError(f"{name} must be at most {high}, got {value!r}")
            elif not _within(value, low, high, name in OPEN_BELOW, name in OPEN_ABOVE):
                raise SpecError(f"{name} must be a number in {_interval(low, high, name)}, got {value!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise SpecError("mean and std need three values each")
        for name in ("mean", "std"):
            low, high = CHANNEL_BOUNDS[name]
            if not all(_within(v, low, high, name == "std", False) for v in getattr(self, name)):
                raise SpecError(f"{name} values must be numbers in {_interval(low, high, name)}, "
                                f"got {list(getattr(self, name))}")
        if self.include_background and self.num_classes < 2:
            raise SpecError("include_background needs at least 2 classes")

    def filters(self, filters: int) -> int:
        return round_filters(filters, self.width, self.depth_divisor)

    @property
    def block_strings(self) -> list[str]:
        return [encode_block(b) for b in self.blocks]

    def layers(self) -> list[Layer]:
        """Stem, every repeat of every block (after rounding), head."""
        stem_ch = self.filters(self.stem_filters)
        size = self.resolution
        out = [Layer("stem", size, 3, stem_ch, stem_ch, 3, 2)]
        size = out[0].out_size
        channels = stem_ch
        plan = []
        for stage, block in enumerate(self.blocks):
            declared_in, declared_out = self.filters(block.in_filters), self.filters(block.out_filters)
            for r in range(round_repeats(block.repeats, self.depth)):
                if r:  # repeats after the first keep the resolution and their own width
                    declared_in = declared_out
                plan.append((stage, block, declared_in, declared_out, block.stride if r == 0 else 1))
        for idx, (stage, block, declared_in, declared_out, stride) in enumerate(plan):
            expanded = declared_in * block.expand_ratio if block.expand_ratio != 1 else channels
            residual = block.skip and stride == 1 and channels == declared_out
            if block_kind(block.kind).declared_residual:
                # The reference would crash on a declared match with a real mismatch, so that case
                # gets no residual here.
                residual = residual and declared_in == declared_out
            se_ch = max(1, int(declared_in * block.se_ratio)) if block.se_ratio else 0
            layer = Layer(
                block.kind,
                size,
                channels,
                expanded,
                declared_out,
                block.kernel,
                stride,
                expand_ratio=block.expand_ratio,
                se_ch=se_ch,
                residual=residual,
                fused_stride_on=self.fused_stride_on,
                stage=stage,
                survival_prob=1.0 - self.drop_connect * idx / len(plan),
            )
            out.append(layer)
            size, channels = layer.out_size, declared_out
        head_ch = self.filters(self.head_filters) if self.scale_head else self.head_filters
        out.append(Layer("head", size, channels, head_ch, self.num_classes, 1, 1))
        return out

    # YAML / dict round trip -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["blocks"] = self.block_strings
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "spec") -> "ModelSpec":
        if not isinstance(data, dict):
            raise SpecError(f"{source}: expected a mapping of spec fields, got {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(_printable(k) for k in set(data) - set(known))  # keys may be any YAML scalar
        if unknown:
            raise SpecError(f"{source}: unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}")
        if "blocks" not in data:
            raise SpecError(f"{source}: missing field 'blocks'")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "blocks":
                if not isinstance(value, list) or not value:
                    raise SpecError(f"{source}: blocks: expected a non-empty list of block strings")
                blocks = []
                for i, item in enumerate(value):
                    try:
                        blocks.append(decode_block(item) if isinstance(item, str) else BlockSpec(**item))
                    except (UserError, TypeError) as exc:
                        raise SpecError(f"{source}: blocks[{i}]: {exc}") from None
                values[name] = tuple(blocks)
                continue
            values[name] = _coerce(source, name, value, known[name].default)
        try:
            return cls(**values)
        except SpecError as exc:
            raise SpecError(f"{source}: {exc}") from None

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)

    @classmethod
    def from_yaml(cls, text: str, source: str = "spec") -> "ModelSpec":
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise SpecError(f"{source}: not valid YAML{where}") from None
        except (ValueError, RecursionError) as exc:  # a malformed date or tag value; absurd nesting
            raise SpecError(f"{source}: not valid YAML ({_printable(exc)})") from None
        return cls.from_dict(data, source)


def _printable(value: Any) -> str:
    """A user's key or value on one line: newlines and other control characters escaped."""
    return str(value).encode("unicode_escape").decode("ascii")


def _coerce(source: str, name: str, value: Any, default: Any) -> Any:
    """Check a YAML value against the field's default type (ints may stand for floats)."""
    expected = type(default)
    if expected is tuple:
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            raise SpecError(f"{source}: {name}: expected a list of numbers, got {value!r}")
        return tuple(float(v) for v in value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise SpecError(f"{source}: {name}: expected {expected.__name__}, got {value!r}")
    return value
