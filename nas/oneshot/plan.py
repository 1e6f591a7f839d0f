"""What the supernet holds and how a path through it is encoded (no TensorFlow here).

The supernet is laid out from the same `SearchSpace` and the same `ModelSpec.layers()` /
`search_space.ops` description the builder reads:

- a stage has as many layer *slots* as its largest repeats choice gives; a path uses the first
  `repeats` of them (the first slot of a stage is never skipped) and a skipped slot is the identity;
- a slot has one *branch* per (block kind, kernel size) of its stage's options; a branch's ops are
  the op list (`Layer.ops`) of that kind and kernel at the slot's largest widths, the residual `add`
  excepted (it is a per-path switch). Ops whose weights do not depend on the kernel (1x1 convs) are
  shared by the kernels of one kind, as TuNAS shares them; kernel-sized ops are per kernel;
- expansion ratio and filter multiplier are channel counts: a path keeps the first k channels of
  the slot's largest width (masks).

A path is then a handful of numbers per slot, all read off the path's own `ModelSpec.layers()`:
its branch weights (one-hot; uniform over kinds / kernels during op warm-up; all zero when the slot
is skipped), its residual per branch, and its input, expanded and output widths. That encoding is
a fixed-shape tensor input to one compiled step, so no architecture re-traces it.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from nas.common.errors import UserError
from nas.proxy.task import ProxyConfig, shrink
from search_space.ops import Op
from search_space.space import DECISIONS, SearchSpace
from search_space.spec import Layer, ModelSpec

KIND, KERNEL = DECISIONS.index("kind"), DECISIONS.index("kernel")
EXPAND, FILTERS = DECISIONS.index("expand_ratio"), DECISIONS.index("filter_multiplier")
REPEATS, SKIP = DECISIONS.index("repeats_delta"), DECISIONS.index("skip")
OP_DECISIONS = ("kind", "kernel")  # op warm-up runs all their options and averages
FILTER_DECISIONS = ("expand_ratio", "filter_multiplier")  # filter warm-up forces the largest


@dataclass(frozen=True)
class BranchOp:
    """One weighted op of a branch: its shape at the slot's largest widths and who owns its weights."""

    op: Op
    key: tuple  # weights are shared between branches with the same key (within a slot)
    in_role: str  # "in" | "expanded": which of the path's widths its input channels follow
    out_role: str  # "expanded" | "out"


@dataclass(frozen=True)
class Slot:
    stage: int
    position: int  # 0: the stage's first layer (never skipped)
    branches: tuple[tuple[str, int], ...]  # (kind, kernel) per branch
    ops: tuple[tuple[BranchOp, ...], ...]  # per branch
    max_in: int
    max_expanded: int
    max_out: int


@dataclass(frozen=True)
class Path:
    """One path's encoding (numpy; the step's tensor inputs)."""

    branch_weights: np.ndarray  # float32 [slots, max_branches]
    residual: np.ndarray  # float32 [slots, max_branches]: 1 where that branch adds its input
    in_ch: np.ndarray  # int32 [slots]
    expanded_ch: np.ndarray  # int32 [slots]
    out_ch: np.ndarray  # int32 [slots]

    def tensors(self) -> tuple:
        return (self.branch_weights, self.residual, self.in_ch, self.expanded_ch, self.out_ch)


class SupernetPlan:
    """The supernet's layout for a space trained at the proxy's size, and the encoder of its paths."""

    def __init__(self, space: SearchSpace, proxy: ProxyConfig, num_classes: int, include_background: bool = False):
        self.space, self.proxy = space, proxy
        self.num_classes, self.include_background = num_classes, include_background
        for i, stage in enumerate(space.stages):
            ratios, se = stage.options("expand_ratio"), stage.options("se_ratio")
            if 1 in ratios and len(ratios) > 1:
                raise UserError(f"search_space stage {i}: the one-shot search cannot mask expand_ratio 1 (no "
                                f"expansion op) together with other ratios; give ratios above 1 only")
            if any(se):
                raise UserError(f"search_space stage {i}: the one-shot search does not support squeeze-excite "
                                f"(se_ratio > 0) yet; use se_ratio [0.0]")
        self.skeleton = self.path_spec([0] * len(space.cardinalities))
        self.slots = self._layout()
        self.max_branches = max(len(s.branches) for s in self.slots)
        self.stem, self.head = self.skeleton.layers()[0], self.skeleton.layers()[-1]

    # Specs and layers ---------------------------------------------------------------------------

    def path_spec(self, decisions: Sequence[int]) -> ModelSpec:
        """The spec the supernet trains for `decisions`: the candidate shrunk as the proxy shrinks it."""
        return shrink(self.space.to_spec(list(decisions)), self.proxy, self.num_classes, self.include_background)

    @functools.lru_cache(maxsize=4096)
    def _layers(self, decisions: tuple[int, ...]) -> tuple[Layer, ...]:
        return tuple(self.path_spec(decisions).layers())

    def stage_layers(self, decisions: Sequence[int]) -> list[list[Layer]]:
        layers = self._layers(tuple(decisions))
        out: list[list[Layer]] = [[] for _ in self.space.stages]
        for layer in layers[1:-1]:
            out[layer.stage].append(layer)
        return out

    def _layout(self) -> tuple[Slot, ...]:
        n = len(DECISIONS)
        stages = self.space.stages
        widest: dict[tuple[int, int], list[int]] = {}
        templates: dict[tuple[int, int], Layer] = {}
        for s, stage in enumerate(stages):
            prev = range(len(stages[s - 1].filter_multiplier)) if s else [0]
            deltas = stage.options("repeats_delta")
            for p, f, e in itertools.product(prev, range(len(stage.filter_multiplier)),
                                             range(len(stage.expand_ratio))):
                d = [0] * len(self.space.cardinalities)
                d[s * n + FILTERS], d[s * n + EXPAND], d[s * n + REPEATS] = f, e, deltas.index(max(deltas))
                if s:
                    d[(s - 1) * n + FILTERS] = p
                for r, layer in enumerate(self.stage_layers(d)[s]):
                    w = widest.setdefault((s, r), [0, 0, 0])
                    w[:] = [max(w[0], layer.in_ch), max(w[1], layer.expanded_ch), max(w[2], layer.out_ch)]
                    templates.setdefault((s, r), layer)
        # The head's input follows the last stage's width: its widest is the last slot's widest output.
        slots = []
        for (s, r), (mi, me, mo) in sorted(widest.items()):
            stage = stages[s]
            branches = tuple(itertools.product(stage.options("kind"), stage.options("kernel")))
            ops = tuple(self._branch_ops(templates[s, r], kind, kernel, mi, me, mo) for kind, kernel in branches)
            slots.append(Slot(s, r, branches, ops, mi, me, mo))
        return tuple(slots)

    @staticmethod
    def _branch_ops(template: Layer, kind: str, kernel: int, mi: int, me: int, mo: int) -> tuple[BranchOp, ...]:
        layer = dataclasses.replace(template, kind=kind, kernel=kernel, in_ch=mi, expanded_ch=me, out_ch=mo,
                                    residual=False)
        weighted = [op for op in layer.ops if op.kind != "add"]
        out, role = [], "in"
        for i, op in enumerate(weighted):
            out_role = "out" if i == len(weighted) - 1 else "expanded"  # every block kind ends in its projection
            key = (kind, i, op.kind, op.kernel)  # a 1x1 op (kernel 1) is one key for every kernel choice
            out.append(BranchOp(op, key, role, out_role))
            role = out_role
        return tuple(out)

    # Paths --------------------------------------------------------------------------------------

    def encode(self, decisions: Sequence[int], mixed: Sequence[Sequence[bool]] | None = None) -> Path:
        """The path of `decisions`; `mixed[stage]` = (kinds, kernels) (op warm-up) spreads that stage's
        weight evenly over all its kinds and / or all its kernels instead of the chosen one."""
        decisions = self.space.check(list(decisions))
        n = len(DECISIONS)
        layers = self.stage_layers(decisions)
        count = len(self.slots)
        weights = np.zeros((count, self.max_branches), np.float32)
        residual = np.zeros((count, self.max_branches), np.float32)
        widths = np.zeros((3, count), np.int32)
        for i, slot in enumerate(self.slots):
            stage_layers = layers[slot.stage]
            if slot.position >= len(stage_layers):  # skipped: identity (widths unused, kept valid)
                widths[:, i] = widths[2, i - 1] if slot.position else 0
                continue
            layer = stage_layers[slot.position]
            widths[:, i] = (layer.in_ch, layer.expanded_ch, layer.out_ch)
            mix_kinds, mix_kernels = mixed[slot.stage] if mixed is not None else (False, False)
            options = self.space.stages[slot.stage]
            for b, (kind, kernel) in enumerate(slot.branches):
                w_kind = 1.0 / len(options.kind) if mix_kinds else float(kind == layer.kind)
                w_kernel = 1.0 / len(options.kernel) if mix_kernels else float(kernel == layer.kernel)
                weights[i, b] = w_kind * w_kernel
                if weights[i, b] and kind != layer.kind:  # the residual as that kind would have it
                    alt = list(decisions)
                    alt[slot.stage * n + KIND] = options.kind.index(kind)
                    residual[i, b] = float(self.stage_layers(alt)[slot.stage][slot.position].residual)
                elif weights[i, b]:
                    residual[i, b] = float(layer.residual)
        return Path(weights, residual, *widths)
