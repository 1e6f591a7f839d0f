"""The supernet: a path equals the ordinary builder's model with the same weights, for every option of
every decision; a step trains only what the path uses; the compiled step is traced once."""

from __future__ import annotations

import random

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from nas.oneshot.plan import SupernetPlan  # noqa: E402
from nas.oneshot.step import SupernetStep  # noqa: E402
from nas.oneshot.supernet import Supernet  # noqa: E402
from tests.oneshot_helpers import TINY_PROXY, tiny_space  # noqa: E402


@pytest.fixture(scope="module")
def net():
    plan = SupernetPlan(tiny_space(), TINY_PROXY, num_classes=10)
    return Supernet(plan, seed=3)


def _images(n=12, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=(n, 8, 8, 3)).astype(np.float32))


def _every_option(space, seed=0):
    """One decision vector per (decision, option): that option, the rest random."""
    rng = random.Random(seed)
    for i, n in enumerate(space.cardinalities):
        for option in range(n if n > 1 else 0):
            d = space.sample(rng)
            d[i] = option
            yield space.decision_names[i], option, d


def test_layout_follows_the_space(net):
    plan = net.plan
    # Repeats 1, 2, 2 with +1 the largest choice: 2, 3, 3 slots; four (kind, kernel) branches each.
    assert [s.stage for s in plan.slots] == [0, 0, 1, 1, 1, 2, 2, 2]
    assert all(len(s.branches) == 4 for s in plan.slots)
    # Widest expansion of stage 1's first slot: the widest stage-0 output (16 * 0.5 * 1.25 -> 16) times 4.
    assert plan.slots[2].max_expanded == 64 and plan.slots[2].max_out == 16


def _option_sweep(space):
    """Few paths that together hold every option of every decision: path o takes option o (or the last)."""
    for o in range(max(space.cardinalities)):
        yield from ((name, o, [min(o, n - 1) for n in space.cardinalities]) for name in ["all"])


def test_every_option_appears_in_a_path_equal_to_the_built_model(net):
    x = _images()
    for _, _, d in _option_sweep(net.plan.space):
        model = net.path_model(d, dropout=False)
        want = model(x, training=True).numpy()
        got = net(x, net.plan.encode(d).tensors(), batch_stats=True).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=str(d))


@pytest.mark.slow
def test_every_option_of_every_decision_equals_the_built_model(net):
    x = _images()
    covered = set()
    for name, option, d in _every_option(net.plan.space):
        path = net.plan.encode(d)
        model = net.path_model(d, dropout=False)
        want = model(x, training=True).numpy()
        got = net(x, path.tensors(), batch_stats=True).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"{name}={option}")
        covered.add((name, option))
    assert len(covered) == sum(n for n in net.plan.space.cardinalities if n > 1)


def test_moving_statistics_travel_with_the_path(net):
    """Inference mode: the path's sliced moving statistics give the built model the supernet's logits."""
    x = _images(seed=1)
    momentum, net.momentum = net.momentum, 0.0  # one update sets the statistics to this batch's
    try:
        for _, _, d in _option_sweep(net.plan.space):
            path = net.plan.encode(d)
            net(x, path.tensors(), batch_stats=True, update_stats=True)
            want = net.path_model(d)(x, training=False).numpy()
            got = net(x, path.tensors(), batch_stats=False).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    finally:
        net.momentum = momentum


def test_l2_term_sees_only_the_paths_kernels(net):
    d = net.plan.space.sample(random.Random(5))
    model = net.path_model(d)
    kernels = [w.numpy() for w in model.weights if w.name == "kernel"]
    want = 0.5 * sum(float(np.sum(k.astype(np.float64) ** 2)) for k in kernels)
    assert float(net.l2(net.plan.encode(d).tensors())) == pytest.approx(want, rel=1e-5)


def _snapshot(step):
    return [v.numpy().copy() for v in step.variables], [[s.numpy().copy() for s in slot] for slot in step.slots]


@pytest.mark.slow  # tracing the step takes a minute or more on a busy 2-core machine
def test_a_step_changes_only_the_sampled_path_and_is_traced_once():
    plan = SupernetPlan(tiny_space(), TINY_PROXY, num_classes=10)
    net = Supernet(plan, seed=0)
    step = SupernetStep(net, TINY_PROXY, weight_decay=1e-3)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(16, 8, 8, 3)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 10, 16))
    space = plan.space
    paths = [space.sample(random.Random(s)) for s in range(4)]
    for t, d in enumerate(paths[:3], 1):  # momentum in every slot the first paths touched
        step.step(images, labels, images, labels, *plan.encode(d).tensors(), tf.constant(0.01), tf.constant(t, tf.int64),
                  tf.constant([0, t], tf.int64))
    before, slots_before = _snapshot(step)
    d = paths[3]
    path = plan.encode(d)
    gates = [np.broadcast_to(g.numpy(), v.shape) for g, v in zip(net.gates(path.tensors()), step.variables)]
    step.step(images, labels, images, labels, *path.tensors(), tf.constant(0.01), tf.constant(4, tf.int64),
              tf.constant([0, 4], tf.int64))
    after, slots_after = _snapshot(step)
    moved_outside = moved_inside = 0
    for g, b, a in zip(gates, before, after):
        moved_outside += int(np.sum((a != b) & (g == 0)))
        moved_inside += int(np.sum((a != b) & (g == 1)))
    for slot_b, slot_a in zip(slots_before, slots_after):
        for g, b, a in zip(gates, slot_b, slot_a):
            moved_outside += int(np.sum((a != b) & (g == 0)))
    assert moved_outside == 0
    assert moved_inside > 0.9 * sum(int(g.sum()) for g in gates)  # nearly every used entry moved
    # Unused branches held momentum from earlier paths: without the gates they would have moved.
    assert any(np.any(s != 0) & np.any(g == 0) for s, g in zip(slots_after[0], gates))
    assert step.step.experimental_get_tracing_count() == 1
