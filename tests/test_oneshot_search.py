"""A small one-shot search end to end: its controller finds the option a planted latency difference
favours, and the run directory holds a search's files."""

from __future__ import annotations

import json

import pytest
import yaml

pytest.importorskip("tensorflow")

from nas.oneshot.search import OneShotSearch  # noqa: E402
from nas.search.config import config_from_dict, make_latency  # noqa: E402
from tests.oneshot_helpers import TINY_SKELETON  # noqa: E402

FIXED = {"kind": ["mbconv"], "kernel": [3], "expand_ratio": [2], "filter_multiplier": [1.0],
         "repeats_delta": [0], "skip": [True], "se_ratio": [0.0]}


def _config(target_ms: float | None = None, trials: int = 40):
    data = {
        "run": {"name": "planted", "seed": 0, "trials": trials, "top_k": 2},
        # One free decision: the last stage's width. Wider is slower; the target sits on the narrow one.
        "search_space": {"skeleton": {**TINY_SKELETON, "resolution": 224}, "choices": FIXED,
                         "stages": {2: {"filter_multiplier": [0.5, 4.0]}}},
        "latency": {"source": "sim", **({"target_ms": target_ms} if target_ms else {"target_model": "efficientnet-edgetpu-S"})},
        "reward": {"kind": "absolute", "beta": -4.0},
        "controller": {"name": "tunas", "learning_rate": 0.2, "lr_increase": 2, "rl_delay": 0.1, "op_warmup": 0.0,
                       "filter_warmup": 0.0, "validation_multiplier": 2, "checkpoint_every": 10, "snapshot_every": 5},
        "proxy": {"resolution": 8, "width": 0.5, "batch_size": 16, "optimizer": "adam", "learning_rate": 0.005},
        "data": {"source": "offline", "max_train": 320, "max_val": 64},
    }
    return config_from_dict(data)


def test_planted_latency_difference_is_found(tmp_path):
    probe = _config()
    model, _ = make_latency(probe)
    narrow = model.predict_ms(probe.space.to_spec([0] * 21))
    d_wide = [0] * 21
    d_wide[14 + 3] = 1
    wide = model.predict_ms(probe.space.to_spec(d_wide))
    assert wide > 1.1 * narrow  # the plant: the wide option is clearly off the target
    config = _config(target_ms=narrow)
    best = OneShotSearch(config, tmp_path / "run", say=lambda line: None).run()
    assert best[17] == 0
    state = json.loads((tmp_path / "run" / "oneshot_state.json").read_text())
    final = state["snapshots"][-1]["probabilities"]["17"]
    assert final[0] > 0.8, final
    root = tmp_path / "run"
    for name in ("config.yaml", "journal.jsonl", "trials.csv", "best.yaml", "summary.md", "pareto.png",
                 "probabilities.png"):
        assert (root / name).is_file(), name
    assert len((root / "journal.jsonl").read_text().splitlines()) == 40
    best_spec = yaml.safe_load((root / "best.yaml").read_text())
    assert best_spec["blocks"] == probe.space.to_spec([0] * 21).block_strings
