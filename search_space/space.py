"""MNAS's factorized hierarchical search space over a skeleton, and its encoding for controllers.

The skeleton (default: EfficientNet-EdgeTPU-S) fixes the number of stages, their strides, base
filters and repeats, the stem and the head. Each stage then chooses, independently of the others,
one option per decision below; all layers inside a stage repeat that choice. A candidate is a flat
vector of option indices, stage-major, in `DECISIONS` order: that is all a controller sees.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from dataclasses import dataclass
from typing import Any, Sequence

from search_space.errors import UserError
from search_space.ops import block_kinds
from search_space.codec import BLOCK_BOUNDS
from search_space.spec import SPEC_BOUNDS, _printable, BlockSpec, Layer, ModelSpec, round_filters

DECISIONS = ("kind", "kernel", "expand_ratio", "filter_multiplier", "repeats_delta", "skip", "se_ratio")
EDGETPU_CHOICES: dict[str, tuple] = {
    "kind": ("mbconv", "fused_mbconv"),
    "kernel": (3, 5),
    "expand_ratio": (4, 8),
    "filter_multiplier": (0.75, 1.0, 1.25),
    "repeats_delta": (-1, 0, 1),
    "skip": (True, False),
    "se_ratio": (0.0,),
}


class SpaceError(UserError):
    pass


@dataclass(frozen=True)
class StageChoices:
    kind: tuple[str, ...] = EDGETPU_CHOICES["kind"]
    kernel: tuple[int, ...] = EDGETPU_CHOICES["kernel"]
    expand_ratio: tuple[int, ...] = EDGETPU_CHOICES["expand_ratio"]
    filter_multiplier: tuple[float, ...] = EDGETPU_CHOICES["filter_multiplier"]
    repeats_delta: tuple[int, ...] = EDGETPU_CHOICES["repeats_delta"]
    skip: tuple[bool, ...] = EDGETPU_CHOICES["skip"]
    se_ratio: tuple[float, ...] = EDGETPU_CHOICES["se_ratio"]

    def options(self, decision: str) -> tuple:
        return getattr(self, decision)


# The numeric options' ranges: a block's own bounds (search_space.codec.BLOCK_BOUNDS), a spec's width bound
# for the multiplier; repeats_delta within minus to plus the most repeats.
CHOICE_BOUNDS = {"kernel": BLOCK_BOUNDS["kernel"], "expand_ratio": BLOCK_BOUNDS["expand_ratio"],
                 "filter_multiplier": SPEC_BOUNDS["width"], "se_ratio": (0.0, 1.0),
                 "repeats_delta": (-BLOCK_BOUNDS["repeats"][1], BLOCK_BOUNDS["repeats"][1])}


def _check_options(path: str, name: str, values: Any) -> tuple:
    if not isinstance(values, (list, tuple)) or not values:
        raise SpaceError(f"{path}.{name}: expected a non-empty list of options, got {values!r}")
    try:
        repeated = len(set(values)) != len(values)
    except TypeError:  # a list or mapping among the options (unhashable)
        raise SpaceError(f"{path}.{name}: options must be plain values, got {list(values)!r}") from None
    if repeated:
        raise SpaceError(f"{path}.{name}: options repeat: {list(values)!r}")
    for v in values:
        if name == "kind":
            ok = v in block_kinds()
        elif name == "skip":
            ok = isinstance(v, bool)
        elif name in ("kernel", "expand_ratio"):
            ok = (isinstance(v, int) and not isinstance(v, bool) and 0 < v <= CHOICE_BOUNDS[name][1]
                  and (name != "kernel" or v % 2 == 1))
        elif name == "repeats_delta":
            ok = isinstance(v, int) and not isinstance(v, bool) and abs(v) <= CHOICE_BOUNDS[name][1]
        elif name == "filter_multiplier":  # NaN fails every comparison
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= CHOICE_BOUNDS[name][1]
        else:  # se_ratio
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
        if not ok:
            raise SpaceError(f"{path}.{name}: option {v!r} is not valid")
    if name in ("filter_multiplier", "se_ratio"):
        return tuple(float(v) for v in values)
    return tuple(values)


@dataclass(frozen=True)
class SearchSpace:
    """A skeleton and each stage's choices: `sample`, `size`, `to_spec(decisions)`, `from_dict` (YAML)."""

    skeleton: ModelSpec
    stages: tuple[StageChoices, ...]

    def __post_init__(self) -> None:
        if len(self.stages) != len(self.skeleton.blocks):
            raise SpaceError(f"search space has {len(self.stages)} stage choices for "
                             f"{len(self.skeleton.blocks)} skeleton blocks")

    @classmethod
    def from_dict(cls, data: Any, path: str = "search_space") -> "SearchSpace":
        """Read the `search_space:` section of a config; errors name the field's path."""
        from search_space.registry import get_spec

        data = {} if data is None else data
        if not isinstance(data, dict):
            raise SpaceError(f"{path}: expected a mapping")
        unknown = sorted(_printable(k) for k in set(data) - {"skeleton", "choices", "stages"})
        if unknown:
            raise SpaceError(f"{path}: unknown key(s) {', '.join(map(str, unknown))}; known: skeleton, choices, stages")
        skeleton_ref = data.get("skeleton", "efficientnet-edgetpu-S")
        try:
            if isinstance(skeleton_ref, dict):
                skeleton = ModelSpec.from_dict(skeleton_ref, source=f"{path}.skeleton")
            elif isinstance(skeleton_ref, str):
                skeleton = get_spec(skeleton_ref)
            else:
                raise SpaceError("expected a model name, a spec file or a spec mapping")
        except UserError as exc:
            raise SpaceError(f"{path}.skeleton: {exc}") from None
        base = cls._read_choices(data.get("choices", {}), f"{path}.choices", StageChoices())
        stages = [base] * len(skeleton.blocks)
        overrides = data.get("stages", {}) or {}
        if not isinstance(overrides, dict):
            raise SpaceError(f"{path}.stages: expected a mapping of stage index to choices")
        for key, value in overrides.items():
            if not isinstance(key, int) or not 0 <= key < len(stages):
                raise SpaceError(f"{path}.stages: stage {key!r} is not an index 0..{len(stages) - 1}")
            stages[key] = cls._read_choices(value, f"{path}.stages.{key}", base)
        return cls(skeleton, tuple(stages))

    @staticmethod
    def _read_choices(data: Any, path: str, base: StageChoices) -> StageChoices:
        if not isinstance(data, dict):
            raise SpaceError(f"{path}: expected a mapping of decision to options")
        unknown = sorted(_printable(k) for k in set(data) - set(DECISIONS))
        if unknown:
            raise SpaceError(f"{path}: unknown decision(s) {', '.join(map(str, unknown))}; known: {', '.join(DECISIONS)}")
        return dataclasses.replace(base, **{k: _check_options(path, k, v) for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        base = self.stages[0]
        stages = {i: {d: list(s.options(d)) for d in DECISIONS if s.options(d) != base.options(d)}
                  for i, s in enumerate(self.stages) if s != base}
        out: dict[str, Any] = {"skeleton": self.skeleton.to_dict(),
                               "choices": {d: list(base.options(d)) for d in DECISIONS}}
        if stages:
            out["stages"] = stages
        return out

    # The controller's view -------------------------------------------------------------------

    @property
    def cardinalities(self) -> list[int]:
        return [len(stage.options(d)) for stage in self.stages for d in DECISIONS]

    @property
    def decision_names(self) -> list[str]:
        return [f"stage{i}.{d}" for i in range(len(self.stages)) for d in DECISIONS]

    @property
    def size(self) -> int:
        return math.prod(self.cardinalities)

    def sample(self, rng: random.Random) -> list[int]:
        return [rng.randrange(n) for n in self.cardinalities]

    def check(self, decisions: Sequence[int]) -> list[int]:
        cards = self.cardinalities
        if len(decisions) != len(cards):
            raise SpaceError(f"expected {len(cards)} decisions, got {len(decisions)}")
        for i, (d, n) in enumerate(zip(decisions, cards)):
            if not (isinstance(d, int) and 0 <= d < n):
                raise SpaceError(f"decision {self.decision_names[i]} = {d!r} is not an index below {n}")
        return [int(d) for d in decisions]

    # Decisions <-> ModelSpec -----------------------------------------------------------------

    def _stage_values(self, decisions: Sequence[int]) -> list[dict[str, Any]]:
        decisions = self.check(decisions)
        n = len(DECISIONS)
        return [
            {d: stage.options(d)[decisions[i * n + j]] for j, d in enumerate(DECISIONS)}
            for i, stage in enumerate(self.stages)
        ]

    def to_spec(self, decisions: Sequence[int], name: str | None = None) -> ModelSpec:
        blocks = []
        in_filters = self.skeleton.blocks[0].in_filters  # keeps the first block's declared width
        for base, v in zip(self.skeleton.blocks, self._stage_values(decisions)):
            out_filters = round_filters(base.out_filters, v["filter_multiplier"], self.skeleton.depth_divisor)
            blocks.append(BlockSpec(
                kind=v["kind"], kernel=v["kernel"], stride=base.stride, expand_ratio=v["expand_ratio"],
                in_filters=in_filters, out_filters=out_filters,
                repeats=max(1, base.repeats + v["repeats_delta"]), se_ratio=v["se_ratio"], skip=v["skip"],
            ))
            in_filters = out_filters
        name = name or "candidate-" + "".join(map(str, self.check(decisions)))
        return dataclasses.replace(self.skeleton, name=name, blocks=tuple(blocks))

    def from_spec(self, spec: ModelSpec) -> list[int]:
        """The decisions that give `spec`'s blocks; a spec outside the space is an error."""
        if len(spec.blocks) != len(self.stages):
            raise SpaceError(f"spec '{spec.name}' has {len(spec.blocks)} blocks, the space {len(self.stages)} stages")
        decisions: list[int] = []
        for i, (block, base, stage) in enumerate(zip(spec.blocks, self.skeleton.blocks, self.stages)):
            for d in DECISIONS:
                match = [j for j, v in enumerate(stage.options(d)) if self._block_value(block, base, d, v)]
                if not match:
                    raise SpaceError(f"spec '{spec.name}' stage {i}: {d} is not one of the space's options")
                decisions.append(match[0])
        if self.to_spec(decisions).blocks != spec.blocks:
            raise SpaceError(f"spec '{spec.name}' is not in this search space")
        return decisions

    def _block_value(self, block: BlockSpec, base: BlockSpec, decision: str, value: Any) -> bool:
        if decision == "filter_multiplier":
            return block.out_filters == round_filters(base.out_filters, value, self.skeleton.depth_divisor)
        if decision == "repeats_delta":
            return block.repeats == max(1, base.repeats + value)
        return getattr(block, decision) == value

    # What a latency lookup table must cover ----------------------------------------------------

    def possible_layers(self, resolution: int | None = None) -> list[Layer]:
        """Every distinct layer (by `Layer.key`) any candidate can contain, stem and head included.

        Layers of a stage depend only on that stage's choices and the previous stage's output
        width, so each stage is enumerated against each predecessor width rather than the product
        of all stages; each candidate is expanded with the real `ModelSpec.layers()`.
        """
        skeleton = self.skeleton if resolution is None else dataclasses.replace(self.skeleton, resolution=resolution)
        space = dataclasses.replace(self, skeleton=skeleton)
        n = len(DECISIONS)
        rep = DECISIONS.index("repeats_delta")
        mult = DECISIONS.index("filter_multiplier")
        cards = space.cardinalities
        found: dict[tuple, Layer] = {}
        for s, stage in enumerate(space.stages):
            stage_cards = cards[s * n:(s + 1) * n]
            prev_options = range(cards[(s - 1) * n + mult]) if s else [0]
            deltas = stage.options("repeats_delta")
            most = deltas.index(max(deltas))
            for prev in prev_options:
                for combo in itertools.product(*map(range, stage_cards)):
                    decisions = [0] * len(cards)
                    decisions[s * n:(s + 1) * n] = list(combo)
                    decisions[s * n + rep] = most
                    if s:
                        decisions[(s - 1) * n + mult] = prev
                    layers = space.to_spec(decisions).layers()
                    for layer in layers:
                        if layer.stage == s or (layer.kind == "stem" and s == 0) or (
                                layer.kind == "head" and s == len(space.stages) - 1):
                            found.setdefault(layer.key, dataclasses.replace(layer, stage=-1, survival_prob=1.0))
        return list(found.values())

