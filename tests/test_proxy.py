"""The proxy task with real Keras training on the offline digits (tiny specs, a few seconds each)."""

import gc
import random

import numpy as np
import pytest

from nas.search.config import config_from_dict
from nas.data import DataConfig, load_dataset
from nas.proxy.task import ProxyConfig, ProxyTask, TrialFailed, shrink
from search_space.registry import REGISTRY
from tests.search_helpers import TINY

SPACE = config_from_dict(TINY, "tiny").space
SPEC = SPACE.to_spec([0] * len(SPACE.cardinalities))


@pytest.fixture(scope="module")
def digits16():
    return load_dataset(DataConfig(max_train=640, max_val=240), 16)


def test_shrink_applies_the_proxy_resolution_width_and_classes():
    s = REGISTRY["efficientnet-edgetpu-S"]
    small = shrink(s, ProxyConfig(resolution=32, width=0.25), num_classes=10, include_background=False)
    assert (small.resolution, small.width, small.num_classes, small.include_background) == (32, 0.25, 10, False)
    assert small.blocks == s.blocks  # the architecture itself is untouched
    same = shrink(s, ProxyConfig(resolution=None, width=1.0), num_classes=1001, include_background=True)
    assert (same.resolution, same.width, same.num_classes, same.include_background) == (224, 1.0, 1001, True)


def test_training_learns_the_digits_and_is_repeatable(digits16):
    task = ProxyTask(ProxyConfig(resolution=16, width=1.0, epochs=1, batch_size=32), digits16)
    first = task.evaluate(SPEC, seed=7)
    assert first.accuracy > 0.5  # chance is 0.1; a working step, schedule and BN recalibration do far better
    assert np.isfinite(first.train_loss) and first.seconds > 0
    again = task.evaluate(SPEC, seed=7)
    assert (again.accuracy, again.train_loss) == (first.accuracy, first.train_loss)  # same seed, same numbers
    other = task.evaluate(SPEC, seed=8)
    assert other.train_loss != first.train_loss


def test_a_diverging_candidate_fails_with_the_step_named(digits16):
    task = ProxyTask(ProxyConfig(resolution=16, width=1.0, epochs=1, batch_size=32, learning_rate=1e12), digits16)
    with pytest.raises(TrialFailed, match=r"training loss became (nan|inf) at step \d+ of \d+"):
        task.evaluate(SPEC, seed=0)


def test_no_model_survives_a_trial():
    import keras

    small = load_dataset(DataConfig(max_train=64, max_val=32), 16)
    task = ProxyTask(ProxyConfig(resolution=16, width=0.5, epochs=1, batch_size=32), small)
    for seed in range(2):
        task.evaluate(SPACE.to_spec(SPACE.sample(random.Random(seed))), seed=seed)
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, keras.Model)]
    assert alive == []  # every trial's model, layers and traced step are released: memory stays flat
