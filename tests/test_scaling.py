"""Compound scaling as spec arithmetic: presets, phi scaling, composition, coefficient search (no TF)."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest

from search_space import REGISTRY, UserError, count_macs, count_params, model_cost
from search_space.registry import EDGETPU_COEFFICIENTS, EFFICIENTNET_COEFFICIENTS
from scaling import (
    DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA, apply_preset, grid, nominal_cost_factor, phi_dropout,
    phi_resolution, scale_phi, scale_spec, search_coefficients,
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
    assert [phi_dropout(0.2, phi) for phi in range(8)] == [
        EFFICIENTNET_COEFFICIENTS[f"efficientnet-b{k}"][3] for k in range(8)]
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
