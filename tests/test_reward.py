import math

import pytest

from nas.search.reward import HARD, SOFT, RewardConfig, absolute_reward, make_reward, mnas_reward
from nas.common.schema import ConfigError, read_section


def test_soft_constraint_doubling_latency_costs_about_five_percent():
    # MNAS: with alpha = beta = -0.07, twice the latency is worth 2 ** -0.07 = 0.953 of the accuracy
    assert mnas_reward(0.8, 10.0, 5.0, *SOFT) == pytest.approx(0.8 * 2 ** -0.07)
    assert mnas_reward(0.8, 2.5, 5.0, *SOFT) == pytest.approx(0.8 * 0.5 ** -0.07)  # faster than target: a bonus
    assert mnas_reward(0.8, 5.0, 5.0, *SOFT) == pytest.approx(0.8)


def test_hard_constraint_ignores_speed_below_target_and_punishes_above():
    assert mnas_reward(0.8, 1.0, 5.0, *HARD) == pytest.approx(0.8)
    assert mnas_reward(0.8, 4.99, 5.0, *HARD) == pytest.approx(0.8)
    assert mnas_reward(0.8, 10.0, 5.0, *HARD) == pytest.approx(0.4)


def test_reward_is_continuous_at_the_target_and_monotone_in_latency():
    for alpha, beta in (SOFT, HARD, (-0.02, -0.3)):
        below = mnas_reward(0.7, 5.0 - 1e-9, 5.0, alpha, beta)
        above = mnas_reward(0.7, 5.0 + 1e-9, 5.0, alpha, beta)
        assert below == pytest.approx(above)
        values = [mnas_reward(0.7, lat, 5.0, alpha, beta) for lat in (1, 2, 4, 5, 6, 10, 40)]
        assert values == sorted(values, reverse=True)


def test_absolute_reward_pulls_towards_the_target_from_both_sides():
    assert absolute_reward(0.8, 5.0, 5.0) == pytest.approx(0.8)
    assert absolute_reward(0.8, 7.5, 5.0, beta=-0.1) == pytest.approx(0.8 - 0.05)
    assert absolute_reward(0.8, 2.5, 5.0, beta=-0.1) == pytest.approx(0.8 - 0.05)


def test_config_defaults_per_kind_and_overrides():
    assert RewardConfig().exponents == SOFT
    assert RewardConfig(kind="hard").exponents == HARD
    assert RewardConfig(kind="soft", beta=-0.2).exponents == (-0.07, -0.2)
    reward = make_reward(RewardConfig(kind="hard"), target_ms=5.0)
    assert reward(0.8, 10.0) == pytest.approx(0.4)
    reward = make_reward(RewardConfig(kind="absolute", beta=-0.5), target_ms=4.0)
    assert reward(0.8, 6.0) == pytest.approx(0.8 - 0.25)
    assert math.isfinite(make_reward(RewardConfig(), 4.6)(0.0, 100.0))


@pytest.mark.parametrize("data, fragment", [
    ({"kind": "medium"}, "reward.kind: 'medium' is not one of soft, hard, absolute"),
    ({"beta": 0.1}, "reward.beta: must be at most 0.0"),
    ({"alpha": "x"}, "reward.alpha: expected a number or null"),
    ({"kind": "absolute", "alpha": -0.1}, "reward.alpha: the absolute reward has no alpha"),
    ({"gamma": 1}, "reward.gamma: unknown key"),
])
def test_bad_reward_settings_name_the_field(data, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        read_section(RewardConfig, data, "reward")
