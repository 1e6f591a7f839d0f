"""Search quality: the default controller learns on a fixed objective, and the default proxy's
feature-map sizes are what the documentation says they are. No timing: every check is on values."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from latency import make_latency_model
from nas.common.errors import ConfigError
from nas.controllers import make_controller
from nas.controllers.mnas import MnasOptions
from nas.proxy.task import ProxyConfig, shrink
from nas.proxy.visibility import blind_kernel_stages, stage_maps
from nas.search.config import load_config
from nas.search.reward import make_reward
from search_space.counting import model_cost
from search_space.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = load_config(ROOT / "experiments/edgetpu.yaml")
# The robust settings this project measured (benchmarks/results/bench_search_quality.md).
ROBUST = dict(advantage="batch", unique=True, learning_rate=0.02)


class Surrogate:
    """The default search's reward (the config's) with `sim` latency and a spec-only accuracy (as
    benchmarks/bench_controllers.py's: saturating in MACs, small bonuses per stage choice)."""

    def __init__(self):
        self.space = DEFAULT.space
        self.latency = make_latency_model("sim")
        self.target_ms = self.latency.predict_ms(REGISTRY["efficientnet-edgetpu-S"])
        self.reward = make_reward(DEFAULT.reward, self.target_ms)

    def __call__(self, decisions):
        spec = self.space.to_spec(decisions)
        acc = 0.82 - 0.06 * (model_cost(spec).macs / 1.8e9) ** -0.5
        for i, block in enumerate(spec.blocks):
            acc += 0.003 * block.skip + (0.004 if i <= 2 else -0.004) * (block.kind == "fused_mbconv")
        return self.reward(acc, self.latency.predict_ms(spec))


@pytest.fixture(scope="module")
def surrogate():
    return Surrogate()


def _run(controller, objective, trials):
    """Rewards and predicted latencies of `trials` ask/tell rounds, in proposal order."""
    rewards, latencies = [], []
    for _ in range(trials):
        d = controller.ask()
        rewards.append(objective(d))
        latencies.append(objective.latency.predict_ms(objective.space.to_spec(d)))
        controller.tell(d, rewards[-1])
    return np.array(rewards), np.array(latencies)


def _quarter_means(rewards):
    q = len(rewards) // 4
    return rewards[:q].mean(), rewards[-q:].mean()


# Seeds 5-7: the default's settings were chosen on seeds 0-4 (bench_search_quality's config rows).
@pytest.mark.parametrize("seed", [5, 6, 7])
def test_mnas_meets_the_search_quality_goals_where_random_does_not(surrogate, seed):
    """The three goals the benchmark judges a real search by, on the default config's controller and
    reward with a spec-only accuracy, 64 trials (8 PPO updates): the last quarter's mean reward is at
    least 1.1x the first's and at least 1.15x random search's whole-run mean at the same seed, and the
    last quarter's median predicted latency is within +-30% of the target. Random search at the same
    seed is the control. A policy that never moves fails here (random search at other seeds ended 2.1-2.9x
    over the target on these three), and so does a sign error in the update (telling the controller
    -reward gave Q4/Q1 of 0.01-0.10 on seeds 5, 6 and 7)."""
    options = dataclasses.replace(DEFAULT.controller_options, **ROBUST)
    rewards, latencies = _run(make_controller("mnas", surrogate.space.cardinalities, options, seed), surrogate, 64)
    random_rewards, _ = _run(make_controller("random", surrogate.space.cardinalities, seed=seed), surrogate, 64)
    first, last = _quarter_means(rewards)
    assert last >= 1.1 * first, (first, last)
    assert last >= 1.15 * random_rewards.mean(), (last, random_rewards.mean())
    ratio = np.median(latencies[-16:]) / surrogate.target_ms
    assert abs(ratio - 1) <= 0.3, ratio


def test_batch_advantages_raise_the_best_of_a_batch_below_the_baseline():
    """A batch entirely below the moving baseline: with baseline advantages every sample is pushed
    down; with batch-normalised ones the batch's best sequence still becomes more likely."""
    cards = [3, 3, 3]
    for advantage, rises in (("baseline", False), ("batch", True)):
        c = make_controller("mnas", cards, MnasOptions(batch_size=4, advantage=advantage, learning_rate=0.05), seed=0)
        c.baseline = 10.0  # as if earlier batches had scored far higher
        asked = [c.ask() for _ in range(4)]
        rewards = [1.0, 2.0, 3.0, 4.0]
        best = np.array([asked[3]])

        def logp():
            logits, _ = c.policy.forward(best)
            return sum(float(np.log(np.exp(z[0, a]) / np.exp(z[0]).sum())) for z, a in zip(logits, best[0]))

        before = logp()
        for d, r in zip(asked, rewards):
            c.tell(d, r)
        assert (logp() > before) == rises, advantage


def test_unique_proposals_do_not_repeat_until_the_space_is_exhausted():
    c = make_controller("mnas", [2, 2], MnasOptions(batch_size=2, unique=True), seed=0)
    seen = []
    for _ in range(4):
        d = c.ask()
        seen.append(tuple(d))
        c.tell(d, float(sum(d)))
    assert len(set(seen)) == 4
    restored = make_controller("mnas", [2, 2], MnasOptions(batch_size=2, unique=True), seed=0)
    restored.load_state(c.state())
    assert restored.seen == c.seen


# The default proxy's feature maps ------------------------------------------------------------------

def _documented_blind_stages() -> list[int]:
    """The stages the docs say the default proxy cannot see kernels in ([] if they say it sees all)."""
    text = (ROOT / "docs/guides/search.md").read_text()
    if "default proxy sees the kernel choice of every stage" in text:
        return []
    match = re.search(r"default proxy cannot see the kernel choice of stages ([\d, and]+)", text)
    if match is None:
        pytest.fail("docs/guides/search.md does not state which kernel choices the default proxy can see")
    return [int(s) for s in re.findall(r"\d", match.group(1))]


def test_documented_blind_kernel_stages_match_the_default_config():
    kernels = DEFAULT.space.stages[0].kernel
    assert len(set(kernels)) > 1  # the default space does search kernels
    assert blind_kernel_stages(DEFAULT.space.skeleton, DEFAULT.proxy, kernels) == _documented_blind_stages()


def test_skeleton_strides_run_late_stages_on_one_pixel():
    """Without `proxy.strides`, at 16 px the skeleton's total stride 32 leaves stages 4 and 5 on 1x1
    maps only, and stages 3 to 5 blind to their kernel (what docs/guides/search.md says of that proxy)."""
    proxy = dataclasses.replace(DEFAULT.proxy, strides=None)
    maps = {m.stage: m.sizes for m in stage_maps(DEFAULT.space.skeleton, proxy)}
    assert set(maps[4]) == {1} and set(maps[5]) == {1}
    assert blind_kernel_stages(DEFAULT.space.skeleton, proxy, (3, 5)) == [3, 4, 5]
    assert "without `proxy.strides` it could not see the kernel choice of stages 3, 4 and 5" in (
        ROOT / "docs/guides/search.md").read_text()


def test_proxy_strides_let_every_stage_see_its_kernel():
    proxy = dataclasses.replace(DEFAULT.proxy, strides="1,1,2,1,1,2")
    assert blind_kernel_stages(DEFAULT.space.skeleton, proxy, (3, 5)) == []
    assert min(min(m.sizes) for m in stage_maps(DEFAULT.space.skeleton, proxy)) >= 2
    small = shrink(DEFAULT.space.skeleton, proxy, 10, False)
    assert [b.stride for b in small.blocks] == [1, 1, 2, 1, 1, 2]
    assert [b.kernel for b in small.blocks] == [b.kernel for b in DEFAULT.space.skeleton.blocks]


@pytest.mark.parametrize("text", ["1,1,3", "", "a,b", "1,,2"])
def test_bad_proxy_strides_are_config_errors(text):
    with pytest.raises(ConfigError, match="proxy.strides"):
        ProxyConfig(strides=text)


def test_proxy_strides_must_match_the_stage_count():
    with pytest.raises(ConfigError, match="proxy.strides: 2 strides given, the candidate has 6 stages"):
        shrink(DEFAULT.space.skeleton, ProxyConfig(strides="1,2"), 10, False)


def test_the_built_proxy_model_has_the_computed_map_sizes():
    """visibility.py's arithmetic is the builder's: the Keras model of the strides proxy ends its
    blocks on the map size `stage_maps` computes, and still classifies."""
    import keras

    from search_space.builder import build_model

    proxy = dataclasses.replace(DEFAULT.proxy, strides="1,1,2,1,1,2")
    small = shrink(DEFAULT.space.skeleton, proxy, 10, False)
    model = build_model(small, seed=0, drop_connect=False)
    last = stage_maps(DEFAULT.space.skeleton, proxy)[-1]
    expected = -(-last.sizes[0] // 2)  # stage 5 keeps its stride 2
    shapes = [layer.output.shape for layer in model.layers if layer.name.startswith("blocks_")]
    assert tuple(shapes[-1][1:3]) == (expected, expected)
    assert model(np.zeros((1, 16, 16, 3), np.float32)).shape == (1, 10)
    keras.backend.clear_session()
