"""The search's objective: accuracy traded against latency, as pure functions (no TensorFlow).

MNAS (Tan et al., 2019, eq. 2): `ACC(m) * (LAT(m) / T) ** w` with `w = alpha` if `LAT <= T`,
else `beta`. The soft constraint (`alpha = beta = -0.07`) makes doubling the latency worth about
5% relative accuracy (2 ** -0.07 = 0.953) on either side of the target; the hard constraint
(`alpha = 0, beta = -1`) leaves models under the target unpenalised and punishes those over it
sharply. TuNAS (Bender et al., 2020) uses an absolute reward, `ACC + beta * |LAT / T - 1|`,
which pulls the search towards the target from both sides and hits it more reliably.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.common.errors import ConfigError
from nas.common.schema import setting

SOFT = (-0.07, -0.07)
HARD = (0.0, -1.0)
TUNAS_BETA = -0.1  # TuNAS's published value for its absolute reward (docs/concepts.md, "The reward")
KINDS = ("soft", "hard", "absolute")


def mnas_reward(accuracy: float, latency_ms: float, target_ms: float, alpha: float, beta: float) -> float:
    """MNAS's multi-objective reward `acc * (lat / target) ** w`."""
    ratio = latency_ms / target_ms
    return accuracy * ratio ** (alpha if latency_ms <= target_ms else beta)


def absolute_reward(accuracy: float, latency_ms: float, target_ms: float, beta: float = TUNAS_BETA) -> float:
    """TuNAS's absolute reward `acc + beta * |lat / target - 1|` (beta < 0)."""
    return accuracy + beta * abs(latency_ms / target_ms - 1.0)


@dataclass(frozen=True)
class RewardConfig:
    """`reward:` in a search config. `alpha` / `beta` left out take the kind's published values."""

    kind: str = setting("soft", choices=KINDS)
    alpha: float | None = setting(None, max=0.0)
    beta: float | None = setting(None, max=0.0)

    def __post_init__(self) -> None:
        if self.kind == "absolute" and self.alpha is not None:
            raise ConfigError("reward.alpha: the absolute reward has no alpha (only beta)")

    @property
    def exponents(self) -> tuple[float, float]:
        """(alpha, beta) after defaults; alpha is unused (0) for the absolute reward."""
        if self.kind == "absolute":
            return 0.0, TUNAS_BETA if self.beta is None else self.beta
        alpha, beta = SOFT if self.kind == "soft" else HARD
        return (alpha if self.alpha is None else self.alpha), (beta if self.beta is None else self.beta)

    def describe(self, target_ms: float) -> str:
        alpha, beta = self.exponents
        if self.kind == "absolute":
            return f"acc + {beta:g} * |lat / {target_ms:.3g} ms - 1| (TuNAS absolute)"
        return f"acc * (lat / {target_ms:.3g} ms) ^ w, w = {alpha:g} under the target, {beta:g} over ({self.kind})"


def make_reward(config: RewardConfig, target_ms: float):
    """`reward(accuracy, latency_ms) -> float` for the configured kind and target."""
    alpha, beta = config.exponents
    if config.kind == "absolute":
        return lambda accuracy, latency_ms: absolute_reward(accuracy, latency_ms, target_ms, beta)
    return lambda accuracy, latency_ms: mnas_reward(accuracy, latency_ms, target_ms, alpha, beta)
