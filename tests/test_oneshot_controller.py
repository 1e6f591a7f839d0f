"""TuNAS's controller: the REINFORCE gradient, the baseline, the RL delay and the warm-up schedules."""

from __future__ import annotations

import numpy as np
import pytest

from nas.common.errors import ConfigError
from nas.oneshot.controller import (OneShotOptions, TunasController, linear_decay, log_prob, reinforce_gradient,
                                    rl_learning_rate)
from search_space.space import DECISIONS
from tests.oneshot_helpers import tiny_space


def test_reinforce_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    logits = {"0": rng.normal(size=2), "3": rng.normal(size=3), "5": rng.normal(size=2)}
    decisions = [1, 0, 0, 2, 0, 0]
    replaced = [False] * 6
    replaced[5] = True  # a warmed-up decision: constant log-prob, no gradient
    advantage = 0.37
    grads = reinforce_gradient(logits, decisions, advantage, replaced)
    assert set(grads) == {"0", "3"}
    h = 1e-6
    for k, v in logits.items():
        for j in range(len(v)):
            up = {kk: vv.copy() for kk, vv in logits.items()}
            down = {kk: vv.copy() for kk, vv in logits.items()}
            up[k][j] += h
            down[k][j] -= h
            numeric = advantage * (log_prob(up, decisions, replaced) - log_prob(down, decisions, replaced)) / (2 * h)
            analytic = grads[k][j] if k in grads else 0.0
            assert analytic == pytest.approx(numeric, abs=1e-6)


def test_schedules():
    options = OneShotOptions(learning_rate=0.01, lr_increase=10, rl_delay=0.25, op_warmup=0.2, filter_warmup=0.1)
    total = 100
    assert [linear_decay(s, total, 0.2) for s in (0, 10, 20, 50)] == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert rl_learning_rate(24, total, options) == 0.0
    assert rl_learning_rate(25, total, options) == pytest.approx(0.01)
    assert rl_learning_rate(100, total, options) == pytest.approx(0.1)  # x10 by the end, exponentially
    mid = rl_learning_rate(int(25 + 75 / 2), total, options)
    assert mid == pytest.approx(0.01 * 10 ** (37 / 75))
    with pytest.raises(ConfigError, match="longer than controller.rl_delay"):
        OneShotOptions(rl_delay=0.1, op_warmup=0.2)


def test_warmups_replace_decisions_with_the_scheduled_frequency():
    space = tiny_space()
    options = OneShotOptions(rl_delay=0.5, op_warmup=0.5, filter_warmup=0.5)
    controller = TunasController(space, options, total=1000, seed=0)
    n = len(DECISIONS)
    kind, expand = DECISIONS.index("kind"), DECISIONS.index("expand_ratio")
    for step, expected in ((0, 1.0), (250, 0.5), (500, 0.0)):
        samples = [controller.sample(step) for _ in range(400)]
        op_rate = np.mean([s.replaced[kind] for s in samples])
        mixed = np.mean([s.mixed[0][0] for s in samples])
        filt = [s for s in samples if s.replaced[expand]]
        assert op_rate == pytest.approx(expected, abs=0.08) and mixed == pytest.approx(op_rate)
        assert len(filt) / 400 == pytest.approx(expected, abs=0.08)
        assert all(s.trained[expand] == 1 for s in filt)  # expand_ratio [2, 4]: the largest is index 1
        # Repeats and skip are never replaced; the draw itself is kept for the journal.
        assert not any(s.replaced[DECISIONS.index("skip") + n] for s in samples)


def test_baseline_is_a_zero_debiased_moving_average_and_the_delay_holds_the_logits():
    space = tiny_space()
    controller = TunasController(space, OneShotOptions(baseline_decay=0.9), total=100, seed=0)
    assert controller.baseline(2.0) == pytest.approx(2.0)  # debiased: the first reward itself
    assert controller.baseline(1.0) == pytest.approx((0.9 * 0.1 * 2 + 0.1 * 1) / (1 - 0.81))
    sample = controller.sample(0)
    before = {k: v.copy() for k, v in controller.logits.items()}
    controller.tell(sample, 5.0, step=0)  # inside the RL delay: no update
    assert all(np.array_equal(before[k], controller.logits[k]) for k in before)
    sample = controller.sample(99)
    controller.tell(sample, 5.0, step=99)
    moved = [k for k in before if not np.array_equal(before[k], controller.logits[k])]
    assert moved and all(not sample.replaced[int(k)] for k in moved)
    best = controller.best()
    assert all(best[int(k)] == sample.decisions[int(k)] for k in moved)  # a reward above baseline pulls toward it
