"""Compound scaling as spec arithmetic: presets, phi scaling, composition, coefficient search (no TF)."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest

from search_space import REGISTRY, UserError, count_macs, count_params, model_cost
from search_space.registry import EDGETPU_COEFFICIENTS, EFFICIENTNET_COEFFICIENTS
from scaling import (
    DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA, apply_preset, grid, nominal_cost_factor, phi_dropout,
    phi_resolution, proxy_resolution, scale_phi, scale_spec, search_coefficients,
)

S = REGISTRY["efficientnet-edgetpu-S"]
B0 = REGISTRY["efficientnet-b0"]


# Presets -----------------------------------------------------------------------------------------

def test_edgetpu_preset_on_s_gives_the_registry_m_and_l():
    family = apply_preset(S, "edgetpu")
    assert [spec.name for spec in family] == list(EDGETPU_COEFFICIENTS)
    for spec in family:
        released = REGISTRY[spec.name]
        assert spec == released  # every field, name included
        assert spec.layers() == released.layers()
        assert model_cost(spec) == model_cost(released)
    m, l = family[1], family[2]
    # The published figures (about 6.90M / 10.59M params with a 1000-class head; here 1001 classes).
    assert count_params(m) - 1281 == pytest.approx(6.90e6, rel=0.005)
    assert count_params(l) - 1537 == pytest.approx(10.59e6, rel=0.005)


def test_efficientnet_preset_on_b0_gives_the_registry_b0_to_b7():
    family = apply_preset(B0, "efficientnet")
    assert [spec.name for spec in family] == list(EFFICIENTNET_COEFFICIENTS)
    for spec in family:
        assert spec == REGISTRY[spec.name]
        assert spec.layers() == REGISTRY[spec.name].layers()


# Published figures, typed here independently of search_space/registry.py's coefficient tables, so that a
# typo in a table fails a test instead of being reproduced on both sides of it.
# The published S/M/L table (docs/guides/reproducing.md) and the EfficientNet paper's B0-B7: (width, depth, resolution, dropout).
PUBLISHED_EDGETPU = {
    "efficientnet-edgetpu-S": (1.0, 1.0, 224, 0.2),
    "efficientnet-edgetpu-M": (1.0, 1.1, 240, 0.2),
    "efficientnet-edgetpu-L": (1.2, 1.4, 300, 0.3),
}
PUBLISHED_EFFICIENTNET = {
    "efficientnet-b0": (1.0, 1.0, 224, 0.2), "efficientnet-b1": (1.0, 1.1, 240, 0.2),
    "efficientnet-b2": (1.1, 1.2, 260, 0.3), "efficientnet-b3": (1.2, 1.4, 300, 0.3),
    "efficientnet-b4": (1.4, 1.8, 380, 0.4), "efficientnet-b5": (1.6, 2.2, 456, 0.4),
    "efficientnet-b6": (1.8, 2.6, 528, 0.5), "efficientnet-b7": (2.0, 3.1, 600, 0.5),
}
# keras.applications.EfficientNetB0..B7 "Total params" (1000 classes, as its model summaries print them).
KERAS_TOTAL_PARAMS = {
    "efficientnet-b0": 5_330_571, "efficientnet-b1": 7_856_239, "efficientnet-b2": 9_177_569,
    "efficientnet-b3": 12_320_535, "efficientnet-b4": 19_466_823, "efficientnet-b5": 30_562_527,
    "efficientnet-b6": 43_265_143, "efficientnet-b7": 66_658_687,
}


def _coefficients(spec):
    return (spec.width, spec.depth, spec.resolution, spec.dropout)


@pytest.mark.parametrize("preset, base, published", [("edgetpu", S, PUBLISHED_EDGETPU),
                                                     ("efficientnet", B0, PUBLISHED_EFFICIENTNET)])
def test_presets_and_registry_carry_the_published_coefficients(preset, base, published):
    family = apply_preset(base, preset)
    assert {spec.name: _coefficients(spec) for spec in family} == published
    assert {name: _coefficients(REGISTRY[name]) for name in published} == published


def _keras_non_trainable(spec):
    """Batch-norm moving mean and variance of every normalised channel, plus keras.applications'
    input Normalization layer (mean 3, variance 3, count 1)."""
    channels = 0
    for layer in spec.layers():
        if layer.kind == "stem":
            channels += layer.out_ch
        elif layer.kind == "head":
            channels += layer.expanded_ch  # the head's 1x1 conv; the dense layer has no batch norm
        else:
            channels += (layer.expanded_ch if layer.expand_ratio != 1 else 0) + layer.expanded_ch + layer.out_ch
    return 2 * channels + 7


@pytest.mark.parametrize("name", list(KERAS_TOTAL_PARAMS))
def test_efficientnet_params_equal_the_published_keras_totals(name):
    spec = apply_preset(B0, "efficientnet")[int(name[-1])]
    assert spec.name == name
    assert count_params(spec) + _keras_non_trainable(spec) == KERAS_TOTAL_PARAMS[name]


def test_efficientnet_b0_keras_model_has_the_published_parameter_count():
    from search_space.builder import build_model

    model = build_model(B0)
    assert model.count_params() + 7 == KERAS_TOTAL_PARAMS["efficientnet-b0"]  # + keras' Normalization layer
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 5_288_548  # its "Trainable params"


def test_preset_on_another_base_composes_and_names_by_label():
    m = REGISTRY["efficientnet-edgetpu-M"]  # width 1.0, depth 1.1, resolution 240
    family = apply_preset(m, "edgetpu")
    assert [spec.name for spec in family] == [
        "efficientnet-edgetpu-M-S", "efficientnet-edgetpu-M-M", "efficientnet-edgetpu-M-L"]
    large = family[2]
    assert (large.width, large.depth, large.dropout) == (1.2, 1.54, 0.3)  # 1.0*1.2, 1.1*1.4, as published
    assert large.resolution == 321  # 240 * 300/224 = 321.4, nearest pixel
    assert large.blocks == m.blocks and large.activation == m.activation


def test_unknown_preset_is_a_user_error():
    with pytest.raises(UserError, match="unknown preset 'mobilenet'"):
        apply_preset(S, "mobilenet")


# Phi scaling -------------------------------------------------------------------------------------

def test_phi_coefficients_and_resolution_rule():
    for phi in range(5):
        spec = scale_phi(S, phi)
        assert spec.width == pytest.approx(DEFAULT_BETA**phi, abs=1e-12)
        assert spec.depth == pytest.approx(DEFAULT_ALPHA**phi, abs=1e-12)
        side = 224 * DEFAULT_GAMMA**phi
        assert spec.resolution % 32 == 0 and side - 32 < spec.resolution <= side
    # 224 * 1.15**phi = 224, 257.6, 296.2, 340.7, 391.8 -> rounded down to multiples of 32.
    assert [scale_phi(S, phi).resolution for phi in range(5)] == [224, 256, 288, 320, 384]
    assert scale_phi(S, 1).width == 1.1 and scale_phi(S, 2).width == 1.21  # stored without float noise
    assert [scale_phi(S, phi).name for phi in (0, 1, 2.5)] == [
        "efficientnet-edgetpu-S-phi0", "efficientnet-edgetpu-S-phi1", "efficientnet-edgetpu-S-phi2.5"]
    assert scale_phi(S, 1, name="m").name == "m"


def test_phi_zero_is_the_base_and_keeps_an_odd_resolution():
    assert dataclasses.replace(scale_phi(S, 0), name=S.name) == S
    odd = dataclasses.replace(S, resolution=250)
    assert scale_phi(odd, 0).resolution == 250
    assert scale_phi(odd, 1).resolution == 256  # 287.5 -> 256
    assert phi_resolution(224, 1.15, divisor=1) == 257
    assert phi_resolution(224, 0.01) == 32  # never below one divisor


@pytest.mark.parametrize("phi", [0, 1, 2, 3])
def test_macs_ratio_follows_the_compound_rule_within_15_percent(phi):
    ratio = count_macs(scale_phi(S, phi)) / count_macs(S)
    nominal = nominal_cost_factor(DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA, phi)
    assert nominal == pytest.approx(1.92**phi, rel=1e-3)
    assert abs(ratio / nominal - 1) <= 0.15


def test_scaling_a_scaled_spec_composes():
    twice = scale_phi(scale_phi(S, 1), 1)
    once = scale_phi(S, 2)
    assert (twice.width, twice.depth) == (once.width, once.depth)
    assert twice.resolution == once.resolution == 288  # 256 * 1.15 = 294.4 -> 288
    assert twice.layers() == once.layers()
    wider = scale_spec(scale_spec(S, width=1.1), width=1.1)
    assert wider.width == 1.21 and wider.layers() == scale_spec(S, width=1.21).layers()


def test_phi_dropout_follows_the_published_steps():
    # EfficientNet-B0..B7's published dropout rates (the reference's table), not the registry's copy
    assert [phi_dropout(0.2, phi) for phi in range(8)] == [0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5]
    assert phi_dropout(0.2, 1.5) == 0.2 and phi_dropout(0.2, 2.5) == 0.3
    assert phi_dropout(0.6, 4) == 0.6  # never lowered
    assert scale_phi(S, 3).dropout == 0.3 and scale_phi(S, 3).drop_connect == S.drop_connect


@pytest.mark.parametrize("phi", [-1, -0.5, math.nan, math.inf, "1", True])
def test_bad_phi_is_a_user_error(phi):
    with pytest.raises(UserError, match="phi must be a number >= 0"):
        scale_phi(S, phi)


@pytest.mark.parametrize("name", ["alpha", "beta", "gamma"])
@pytest.mark.parametrize("value", [0, -1.2, math.nan])
def test_bad_coefficient_is_a_user_error(name, value):
    with pytest.raises(UserError, match=f"{name} must be a positive number"):
        scale_phi(S, 1, **{name: value})


def test_absurd_phi_is_refused_before_expanding_layers():
    with pytest.raises(UserError, match="scales depth by more than 64x"):
        scale_phi(S, 1000)


# Coefficient search ------------------------------------------------------------------------------

SMALL_GRID = grid(1.0, 1.3, 0.1)


def test_grid_values_and_errors():
    assert grid(1.0, 1.5, 0.05) == (1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4, 1.45, 1.5)
    assert grid(1.2, 1.2, 0.1) == (1.2,)
    with pytest.raises(UserError, match="below its start"):
        grid(1.5, 1.0, 0.1)
    with pytest.raises(UserError, match="grid step must be a positive number"):
        grid(1.0, 1.5, 0)


def test_search_lists_exactly_the_feasible_triples_with_their_real_ratio():
    result = search_coefficients(S, count_macs, alphas=SMALL_GRID, betas=SMALL_GRID, gammas=SMALL_GRID,
                                 tolerance=0.1)
    base = count_macs(S)
    expected = set()
    for a in SMALL_GRID:
        for b in SMALL_GRID:
            for g in SMALL_GRID:
                ratio = count_macs(scale_phi(S, 1, a, b, g)) / base
                if abs(ratio - 2.0) <= 0.2:
                    expected.add((a, b, g))
    assert {(c.alpha, c.beta, c.gamma) for c in result.candidates} == expected
    assert result.evaluated == len(SMALL_GRID) ** 3 and not result.scored
    assert result.costed < result.evaluated  # e.g. gamma 1.0 and 1.1 both give 224 px: costed once
    for c in result.candidates:
        assert c.cost_ratio == pytest.approx(count_macs(c.spec) / base)
        assert c.nominal == pytest.approx(c.alpha * c.beta**2 * c.gamma**2)
        assert c.score is None
    gaps = [abs(c.cost_ratio - 2.0) for c in result.candidates]
    assert gaps == sorted(gaps)


def test_paper_coefficients_are_feasible_for_s():
    result = search_coefficients(S, count_macs, tolerance=0.1)
    paper = [c for c in result.candidates if (c.alpha, c.beta, c.gamma) == (1.2, 1.1, 1.15)]
    assert len(paper) == 1
    assert paper[0].cost_ratio == pytest.approx(count_macs(scale_phi(S, 1)) / count_macs(S))


def test_search_ranks_by_the_callers_scorer_and_scores_each_network_once():
    calls = []

    def score(spec):  # stands in for proxy accuracy: prefer the highest resolution, then the deepest
        calls.append(spec.layers())
        return spec.resolution + spec.depth / 10

    result = search_coefficients(S, count_macs, alphas=SMALL_GRID, betas=SMALL_GRID, gammas=SMALL_GRID,
                                 tolerance=0.1, score=score)
    assert result.scored
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True)
    assert len(calls) == len({tuple(layers) for layers in calls})  # no network scored twice
    assert result.candidates[0].spec.resolution == max(c.spec.resolution for c in result.candidates)


def _network(spec):
    return tuple(spec.layers())


def test_score_many_is_called_once_with_the_networks_closest_to_the_target_first():
    calls = []

    def score_many(specs):  # prefers the highest resolution, then the widest: not the cost order
        calls.append(list(specs))
        return [spec.resolution + spec.width for spec in specs]

    plain = search_coefficients(S, count_macs, alphas=SMALL_GRID, betas=SMALL_GRID, gammas=SMALL_GRID)
    result = search_coefficients(S, count_macs, alphas=SMALL_GRID, betas=SMALL_GRID, gammas=SMALL_GRID,
                                 score_many=score_many)
    assert len(calls) == 1
    (specs,) = calls
    networks = {_network(c.spec) for c in plain.candidates}
    assert len(specs) == len(networks) == result.feasible_networks == result.scored_networks
    assert {_network(s) for s in specs} == networks  # every distinct feasible network, once
    base = count_macs(S)
    gaps = [abs(count_macs(s) / base - 2.0) for s in specs]
    assert gaps == sorted(gaps)  # the closest to the target first (a parallel runner starts those first)
    assert result.scored and result.failed_networks == 0
    assert all(c.scored and c.score == c.spec.resolution + c.spec.width for c in result.candidates)
    keys = [(-c.score, abs(c.cost_ratio - 2.0)) for c in result.candidates]
    assert keys == sorted(keys)  # by score, then by closeness of the ratio
    assert [c.alpha for c in result.candidates] != [c.alpha for c in plain.candidates] or \
        [c.gamma for c in result.candidates] != [c.gamma for c in plain.candidates]  # the score changed the order


def test_max_scored_scores_the_closest_networks_and_lists_the_rest_after_them():
    seen = []

    def score_many(specs):
        seen.extend(specs)
        return [float(-i) for i in range(len(specs))]  # the closest network scores best

    plain = search_coefficients(S, count_macs, alphas=SMALL_GRID, betas=SMALL_GRID, gammas=SMALL_GRID)
    closest = []
    for c in plain.candidates:  # distinct networks in order of closeness
        if _network(c.spec) not in closest:
            closest.append(_network(c.spec))
    assert len(closest) > 3
    result = search_coefficients(S, count_macs, alphas=SMALL_GRID, betas=SMALL_GRID, gammas=SMALL_GRID,
                                 score_many=score_many, max_scored=3)
    assert [_network(s) for s in seen] == closest[:3]
    assert (result.scored_networks, result.feasible_networks) == (3, len(closest))
    scored = [c for c in result.candidates if c.scored]
    rest = [c for c in result.candidates if not c.scored]
    assert result.candidates == tuple(scored + rest)  # scored ones first
    assert {_network(c.spec) for c in scored} == set(closest[:3])
    assert all(c.score is None for c in rest) and rest
    gaps = [abs(c.cost_ratio - 2.0) for c in rest]
    assert gaps == sorted(gaps)
    assert len(plain.candidates) == len(result.candidates)  # nothing dropped


def test_failed_scores_rank_after_the_scored_and_the_unscored():
    def score_many(specs):  # the first (closest) fails, the second gives NaN: both count as failed
        return [None, math.nan, *[0.5] * (len(specs) - 2)]

    result = search_coefficients(S, count_macs, alphas=SMALL_GRID, betas=SMALL_GRID, gammas=SMALL_GRID,
                                 score_many=score_many, max_scored=4)
    groups = ["scored" if c.score is not None else "failed" if c.scored else "unscored" for c in result.candidates]
    assert groups == sorted(groups, key=["scored", "unscored", "failed"].index)
    assert groups.count("scored") >= 2 and "failed" in groups and "unscored" in groups
    assert result.failed_networks == 2
    assert all(c.score is None or math.isfinite(c.score) for c in result.candidates)


def test_scorer_errors():
    with pytest.raises(TypeError, match="not both"):
        search_coefficients(S, count_macs, score=lambda s: 1.0, score_many=lambda specs: [])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(UserError, match="whole number >= 1"):
            search_coefficients(S, count_macs, score_many=lambda specs: [1.0] * len(specs), max_scored=bad)
    with pytest.raises(ValueError, match="returned 1 values"):
        search_coefficients(S, count_macs, alphas=SMALL_GRID, betas=SMALL_GRID, gammas=SMALL_GRID,
                            score_many=lambda specs: [1.0])


def test_no_feasible_triple_means_no_scoring():
    calls = []
    result = search_coefficients(S, count_macs, alphas=(1.0,), betas=(1.0,), gammas=(1.0,), tolerance=0.01,
                                 score_many=lambda specs: calls.append(specs) or [])
    assert result.candidates == () and calls == []


def test_proxy_resolution_keeps_gammas_effect():
    assert proxy_resolution(224, 224, 16) == 16  # the base trains at the proxy's resolution
    assert proxy_resolution(256, 224, 16) == 18  # 18.29: gamma 1.15 survives the 16 px proxy
    assert proxy_resolution(240, 224, 16) == 17  # 17.14
    assert proxy_resolution(48, 32, 16) == 24
    assert proxy_resolution(36, 32, 16) == 18
    assert proxy_resolution(17, 2, 1, minimum=1) == 9  # 8.5 rounds half up (round() would give 8)
    assert proxy_resolution(112, 224, 8) == 8  # never below the minimum (4 otherwise)
    assert proxy_resolution(300, 224, None) == 300  # no proxy resolution: the model's own
    with pytest.raises(UserError):
        proxy_resolution(224, 0, 16)


def test_search_with_a_latency_like_cost_and_progress():
    seen = []

    def fake_ms(spec):  # any callable works: here, a cost that grows with params, not MACs
        return count_params(spec) / 1e6

    result = search_coefficients(S, fake_ms, alphas=SMALL_GRID, betas=SMALL_GRID, gammas=(1.0,), tolerance=0.15,
                                 progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (16, 16) and len(seen) == 16
    assert result.candidates
    for c in result.candidates:
        assert abs(fake_ms(c.spec) / fake_ms(S) - 2) <= 0.3


def test_search_errors():
    with pytest.raises(UserError, match="tolerance"):
        search_coefficients(S, count_macs, tolerance=-0.1)
    with pytest.raises(UserError, match="target"):
        search_coefficients(S, count_macs, target=0)
    with pytest.raises(UserError, match="cost of the base model"):
        search_coefficients(S, lambda spec: 0.0)


def test_scaling_and_the_scale_command_never_import_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "import scaling, search_space\n"
        "from nas.commands import scale\n"
        "from scaling import scale_phi, search_coefficients, apply_preset\n"
        "s = search_space.REGISTRY['efficientnet-edgetpu-S']\n"
        "apply_preset(s, 'edgetpu'); scale_phi(s, 3)\n"
        "search_coefficients(s, search_space.count_macs)\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
