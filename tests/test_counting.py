"""Analytic counts against published figures and against the Keras models the builder makes."""

import collections
import dataclasses
import sys

import pytest

from search_space import REGISTRY, Cost, count_macs, count_params, model_cost


def _thousand_classes(name):
    return dataclasses.replace(REGISTRY[name], num_classes=1000)


@pytest.mark.parametrize(
    "name, params_m, gmacs",
    [("efficientnet-edgetpu-S", 5.44, 1.79), ("efficientnet-edgetpu-M", 6.90, 3.01), ("efficientnet-edgetpu-L", 10.59, 7.94)],
)
def test_edgetpu_matches_published_size(name, params_m, gmacs):
    cost = model_cost(_thousand_classes(name))
    assert round(cost.params / 1e6, 2) == params_m
    assert round(cost.macs / 1e9, 2) == gmacs


@pytest.mark.parametrize("name, params, macs", [
    ("efficientnet-edgetpu-S", 5_438_392, 1_788_731_008),
    ("efficientnet-edgetpu-M", 6_899_496, 3_013_321_088),
    ("efficientnet-edgetpu-L", 10_589_712, 7_936_082_848),
])
def test_edgetpu_exact_counts(name, params, macs):
    # The published 1,789 / 3,013 / 7,936 M MACs, to the unit as the reference counts them.
    assert model_cost(_thousand_classes(name)) == Cost(params, macs)


def test_mnasnet_a1_matches_published_size():
    cost = model_cost(REGISTRY["mnasnet-a1"])
    assert round(cost.params / 1e6, 2) == 3.89
    assert round(cost.macs / 1e6) == 312


def test_background_class_adds_one_dense_row():
    s = REGISTRY["efficientnet-edgetpu-S"]
    assert count_params(s) - count_params(_thousand_classes(s.name)) == 1280 + 1


def test_release_stride_placement_keeps_params_and_raises_macs():
    s = _thousand_classes("efficientnet-edgetpu-S")
    project = dataclasses.replace(s, fused_stride_on="project")
    assert count_params(project) == count_params(s)
    # the two stride-2 fused stages' 3x3 expansions run at 4x the area: 112^2*9*24*192 and 56^2*9*32*256 MACs
    extra = 3 * (56 * 56 * 9 * 24 * 192 + 28 * 28 * 9 * 32 * 256)
    assert count_macs(project) - count_macs(s) == extra


def test_counting_does_not_import_tensorflow():
    import subprocess

    code = ("import sys; from search_space import REGISTRY, model_cost; "
            "[model_cost(s) for s in REGISTRY.values()]; print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _keras_trainable(model):
    return sum(int(w.numpy().size) for w in model.trainable_weights)


FAST = ["efficientnet-edgetpu-S", "efficientnet-edgetpu-M", "efficientnet-edgetpu-L", "efficientnet-b0",
        "efficientnet-b1", "efficientnet-b2", "efficientnet-b3", "mnasnet-a1", "mnasnet-b1"]
SLOW = [n for n in REGISTRY if n not in FAST]


def _check_builder(name):
    """Whole model and layer by layer: the Keras layers of each scope hold the params of its ops."""
    import keras

    from search_space.builder import build_model, trainable_params

    spec = REGISTRY[name]
    model = build_model(spec)
    assert trainable_params(model) == _keras_trainable(model) == count_params(spec)
    per_scope = collections.Counter()
    for layer in model.layers:
        per_scope[layer.name.split(".")[0]] += sum(int(w.numpy().size) for w in layer.trainable_weights)
    layers = spec.layers()
    scopes = ["stem", *(f"blocks_{i}" for i in range(len(layers) - 2)), "head"]
    assert {scope: per_scope[scope] for scope in scopes} == {
        scope: sum(op.params for op in layer.ops) for scope, layer in zip(scopes, layers)}
    keras.backend.clear_session()


@pytest.mark.parametrize("name", FAST)
def test_builder_trainable_params_equal_analytic_count(name):
    _check_builder(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_builder_trainable_params_equal_analytic_count_large(name):
    _check_builder(name)


def _check_keras_applications(index):
    import keras

    reference = getattr(keras.applications, f"EfficientNetB{index}")(weights=None)
    assert count_params(REGISTRY[f"efficientnet-b{index}"]) == _keras_trainable(reference)
    keras.backend.clear_session()


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_efficientnet_counts_equal_keras_applications(index):
    _check_keras_applications(index)


@pytest.mark.slow
@pytest.mark.parametrize("index", [4, 5, 6, 7])
def test_efficientnet_counts_equal_keras_applications_large(index):
    _check_keras_applications(index)
