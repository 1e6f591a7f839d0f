"""Scaled specs against real Keras models: keras.applications EfficientNet B1-B7 and our own builder.

B1-B4 run by default (B4, a large model, so that parity at scale is checked in every CI run); the
B4-B7 set takes 5-10 s a model and is marked slow.
"""

from __future__ import annotations

import pytest

keras = pytest.importorskip("keras")

from tests.scaling_keras_macs import keras_macs  # noqa: E402
from search_space import REGISTRY, count_macs, count_params  # noqa: E402
from search_space.builder import build_model, trainable_params  # noqa: E402
from scaling import apply_preset, scale_phi  # noqa: E402

B_FAMILY = {spec.name: spec for spec in apply_preset(REGISTRY["efficientnet-b0"], "efficientnet")}


def _check_against_keras_applications(index: int) -> None:
    spec = B_FAMILY[f"efficientnet-b{index}"]
    model = getattr(keras.applications, f"EfficientNetB{index}")(weights=None)
    assert model.input_shape[1:3] == (spec.resolution, spec.resolution)
    assert count_params(spec) == trainable_params(model)
    assert count_macs(spec) == keras_macs(model)
    keras.backend.clear_session()


@pytest.mark.parametrize("index", [1, 2, 3, 4])
def test_b0_scaled_by_published_coefficients_matches_keras_applications(index):
    _check_against_keras_applications(index)


@pytest.mark.slow
@pytest.mark.parametrize("index", [4, 5, 6, 7])
def test_b0_scaled_by_published_coefficients_matches_keras_applications_large(index):
    _check_against_keras_applications(index)


def test_phi_scaled_edgetpu_spec_builds_with_the_counted_params_and_macs():
    spec = scale_phi(REGISTRY["efficientnet-edgetpu-S"], 1)
    model = build_model(spec, seed=0)
    assert model.input_shape[1:3] == (256, 256)
    assert trainable_params(model) == count_params(spec)
    assert keras_macs(model) == count_macs(spec)
    keras.backend.clear_session()
