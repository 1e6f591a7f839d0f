"""Shared by the search tests: a tiny config (fast real proxy training) and a spec-only evaluator."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from search_space.counting import model_cost
from nas.proxy.task import TrialFailed

TINY = {
    "run": {"name": "tiny", "seed": 3, "trials": 4, "top_k": 3},
    "search_space": {
        "skeleton": {
            "name": "tiny-skeleton",
            "blocks": ["r1_k3_s11_e2_i16_o16", "r2_k3_s22_e4_i16_o24"],
            "stem_filters": 16,
            "head_filters": 64,
            "resolution": 32,
            "num_classes": 10,
            "dropout": 0.0,
        },
        "choices": {"kind": ["mbconv", "fused_mbconv"], "kernel": [3, 5], "expand_ratio": [2, 4],
                    "filter_multiplier": [0.75, 1.0], "repeats_delta": [0, 1], "skip": [True, False]},
    },
    "latency": {"source": "sim", "target_ms": 1.0},
    "reward": {"kind": "soft"},
    "controller": {"name": "mnas", "batch_size": 2, "hidden_size": 16, "learning_rate": 0.05},
    "proxy": {"resolution": 16, "width": 1.0, "epochs": 1, "batch_size": 32},
    "data": {"source": "offline", "max_train": 192, "max_val": 96},
}


def tiny_config(**sections) -> dict:
    """TINY with some sections' keys replaced: tiny_config(run={"trials": 6})."""
    data = copy.deepcopy(TINY)
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return data


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass(frozen=True)
class Result:
    accuracy: float
    train_loss: float = 0.0
    seconds: float = 0.0


class SpecOnlyEvaluator:
    """Accuracy as a fixed function of the spec (no training), so runner tests are fast and exact.

    `fail` lists trial seeds that raise TrialFailed (as a NaN loss would); `interrupt_at` raises
    KeyboardInterrupt at that call, as Ctrl-C in the middle of a trial does.
    """

    def __init__(self, fail: tuple[int, ...] = (), interrupt_at: int | None = None):
        self.fail, self.interrupt_at = fail, interrupt_at
        self.calls: list[int] = []

    def evaluate(self, spec, seed: int) -> Result:
        self.calls.append(seed)
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        if seed in self.fail:
            raise TrialFailed(f"training loss became nan at step 1 (seed {seed})")
        macs = model_cost(spec).macs
        skips = sum(b.skip for b in spec.blocks)
        return Result(0.5 + 0.3 * math.tanh(macs / 2e8) + 0.01 * skips)


# What differs between two runs of the same trials: times, and a traceback's line text.
TIMING, TIMING_EXTRA = ("wall_s",), ("proxy_s", "traceback")


def comparable_journal(journal: Path) -> list[dict]:
    """A journal's records without what may differ between equal runs (times, tracebacks)."""
    records = []
    for line in journal.read_text().splitlines():
        record = json.loads(line)
        for key in TIMING:
            record.pop(key)
        for key in TIMING_EXTRA:
            record["extra"].pop(key, None)
        records.append(record)
    return records
