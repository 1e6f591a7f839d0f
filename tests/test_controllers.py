import json
import sys

import numpy as np
import pytest

from nas.common.errors import UserError
from nas.controllers import CONTROLLERS, make_controller
from nas.controllers.keras_tuner import KerasTunerController
from nas.controllers.base import log_softmax
from nas.controllers.evolution import EvolutionOptions
from nas.controllers.lstm import LstmPolicy
from nas.controllers.mnas import MnasOptions, ppo_objective
from nas.controllers.reinforce import ReinforceOptions

CARDS = [2, 3, 1, 2, 3, 2]  # one decision with a single option: always 0, never sampled
# Every registered controller but the keras-tuner ones (tests/test_keras_tuner.py covers those).
NAMES = [name for name, cls in CONTROLLERS.items() if not issubclass(cls, KerasTunerController)]
SMALL = {"mnas": MnasOptions(hidden_size=12, embedding_size=6, batch_size=4, learning_rate=0.05),
         "reinforce": ReinforceOptions(learning_rate=0.1), "evolution": EvolutionOptions(population_size=6, sample_size=3)}


def _toy_reward(decisions):
    """Rewards choosing the last option of every decision: a learnable, noise-free objective."""
    return float(np.mean([d == n - 1 for d, n in zip(decisions, CARDS) if n > 1]))


def _controller(name, seed=0, cards=CARDS):
    return make_controller(name, cards, SMALL.get(name), seed=seed)


def test_registry_holds_the_four_controllers():
    assert {"mnas", "reinforce", "evolution", "random"} <= set(NAMES)
    with pytest.raises(UserError, match=r"unknown controller 'nope' \(known: mnas, reinforce, evolution, random, "):
        make_controller("nope", CARDS)


@pytest.mark.parametrize("name", NAMES)
def test_asks_are_valid_decision_vectors(name):
    c = _controller(name)
    for _ in range(40):
        d = c.ask()
        assert len(d) == len(CARDS)
        assert all(isinstance(x, int) and 0 <= x < n for x, n in zip(d, CARDS))
        assert d[2] == 0
        c.tell(d, _toy_reward(d))
    assert (c.asked, c.told) == (40, 40)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_sequence_other_seed_other_sequence(name):
    def sequence(seed):
        c, out = _controller(name, seed), []
        for _ in range(30):
            d = c.ask()
            c.tell(d, _toy_reward(d))
            out.append(d)
        return out

    assert sequence(1) == sequence(1)
    assert sequence(1) != sequence(2)


@pytest.mark.parametrize("name", NAMES)
def test_state_survives_json_and_continues_identically(name):
    a = _controller(name)
    for _ in range(13):  # mid-batch for mnas (batch 4), population not yet full for evolution
        d = a.ask()
        a.tell(d, _toy_reward(d))
    pending = a.ask()  # asked, not yet told: must survive too
    state = json.loads(json.dumps(a.state()))
    b = _controller(name)
    b.load_state(state)
    assert b.state() == a.state()
    for controller in (a, b):
        controller.tell(pending, _toy_reward(pending))
    for _ in range(20):
        da, db = a.ask(), b.ask()
        assert da == db
        a.tell(da, _toy_reward(da))
        b.tell(db, _toy_reward(db))
    assert json.dumps(a.state()) == json.dumps(b.state())


def test_load_state_rejects_another_controller_or_space():
    state = _controller("mnas").state()
    with pytest.raises(ValueError, match="does not fit"):
        _controller("reinforce").load_state(state)
    with pytest.raises(ValueError, match="does not fit"):
        _controller("mnas", cards=[2, 2]).load_state(state)


RANDOM_TOY_MEAN = np.mean([1 / n for n in CARDS if n > 1])  # a random pick hits the last option 1/n of the time


@pytest.mark.parametrize("name, floor", [("mnas", 0.85), ("reinforce", 0.85), ("evolution", 0.55)])
def test_learning_controllers_beat_random_on_a_toy_objective(name, floor):
    # 300 samples of a noise-free objective, 5 seeds: the last 50 rewards average far above what random
    # proposals score (0.43); evolution, mutating one decision at a time in a population of 6, climbs slowest.
    finals = []
    for seed in range(5):
        c = _controller(name, seed)
        rewards = []
        for _ in range(300):
            d = c.ask()
            rewards.append(_toy_reward(d))
            c.tell(d, rewards[-1])
        finals.append(np.mean(rewards[-50:]))
    assert np.mean(finals) > floor > RANDOM_TOY_MEAN + 0.1, finals


def test_random_does_not_learn():
    c = _controller("random")
    rewards = []
    for _ in range(600):
        d = c.ask()
        rewards.append(_toy_reward(d))
        c.tell(d, rewards[-1])
    assert abs(np.mean(rewards) - RANDOM_TOY_MEAN) < 0.05


def test_evolution_is_aging_and_mutates_one_decision():
    c = _controller("evolution")
    told = []
    for i in range(30):
        d = c.ask()
        if i >= 6:  # past the random initial population: a child differs from some member in exactly one place
            assert any(sum(x != y for x, y in zip(d, m)) == 1 for m, _ in c.population)
        reward = -float(i)  # later is worse: pure truncation selection would keep the first six forever
        c.tell(d, reward)
        told.append((d, reward))
    assert [r for _, r in c.population] == [r for _, r in told[-6:]]  # the oldest left, whatever its reward


def test_mnas_updates_once_per_batch():
    c = _controller("mnas")
    before = {k: v.copy() for k, v in c.policy.params.items()}
    for i in range(3):
        d = c.ask()
        c.tell(d, _toy_reward(d))
    assert c.updates == 0 and all(np.array_equal(before[k], v) for k, v in c.policy.params.items())
    d = c.ask()
    c.tell(d, _toy_reward(d))
    assert c.updates == 1 and not all(np.array_equal(before[k], v) for k, v in c.policy.params.items())


def _numerical_grads(f, params, eps=1e-6):
    out = {}
    for key, arr in params.items():
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = f()
            arr[idx] = old - eps
            down = f()
            arr[idx] = old
            g[idx] = (up - down) / (2 * eps)
        out[key] = g
    return out


def _policy_and_batch(seed=1):
    rng = np.random.default_rng(seed)
    cards = [2, 3, 2, 3]
    policy = LstmPolicy(cards, hidden_size=5, embedding_size=4, rng=rng, init_range=0.5)
    actions = np.array([[rng.integers(n) for n in cards] for _ in range(6)])
    return policy, actions, rng


def test_lstm_backward_matches_finite_differences():
    policy, actions, rng = _policy_and_batch()
    weights = [rng.normal(size=(len(actions), n)) for n in policy.cardinalities]

    def f():
        logits, _ = policy.forward(actions)
        return float(sum((w * z).sum() for w, z in zip(weights, logits)))

    _, cache = policy.forward(actions)
    grads = policy.backward(actions, cache, weights)
    numeric = _numerical_grads(f, policy.params)
    for key in policy.params:
        np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-5, atol=1e-8, err_msg=key)


def test_ppo_objective_gradient_matches_finite_differences():
    policy, actions, rng = _policy_and_batch(2)
    logits, _ = policy.forward(actions)
    logp = sum(log_softmax(z)[np.arange(len(actions)), actions[:, t]] for t, z in enumerate(logits))
    old_logp = logp + np.array([0.05, -0.05, 0.3, -0.3, 0.02, -0.4])  # some ratios inside the clip range, some out
    advantages = np.array([0.3, -0.2, 0.5, -0.4, -0.1, 0.2])
    _, grads = ppo_objective(policy, actions, advantages, old_logp, 0.2, 0.01)
    numeric = _numerical_grads(lambda: ppo_objective(policy, actions, advantages, old_logp, 0.2, 0.01)[0],
                               policy.params)
    for key in policy.params:
        np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-5, atol=1e-8, err_msg=key)


def test_ppo_clipping_stops_the_gradient_outside_the_trust_region():
    policy, actions, _ = _policy_and_batch(3)
    logits, _ = policy.forward(actions[:1])
    logp = sum(log_softmax(z)[0, actions[0, t]] for t, z in enumerate(logits))
    one = actions[:1]
    # ratio e^0.5 > 1.2 with a positive advantage: already pushed enough, no gradient (entropy off)
    _, grads = ppo_objective(policy, one, np.array([1.0]), np.array([logp - 0.5]), 0.2, 0.0)
    assert all(not g.any() for g in grads.values())
    # same ratio, negative advantage: the unclipped term is the minimum, the gradient flows
    _, grads = ppo_objective(policy, one, np.array([-1.0]), np.array([logp - 0.5]), 0.2, 0.0)
    assert any(g.any() for g in grads.values())


def test_controllers_do_not_import_tensorflow():
    import subprocess

    code = ("import sys; from nas.controllers import make_controller\n"
            "for n in ['mnas', 'reinforce', 'evolution', 'random']:\n"
            "    c = make_controller(n, [2, 3, 2]); d = c.ask(); c.tell(d, 0.5)\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def _default_mnas_after(trials: int):
    """The default `mnas` controller over the default EdgeTPU space, told `trials` trials."""
    from search_space.space import SearchSpace

    controller = make_controller("mnas", SearchSpace.from_dict(None).cardinalities, None, seed=0)
    for _ in range(trials):
        d = controller.ask()
        controller.tell(d, _toy_reward(d[:len(CARDS)]))
    return controller


def _continue(controller, steps=12):
    out = []
    for _ in range(steps):
        d = controller.ask()
        controller.tell(d, _toy_reward(d[:len(CARDS)]))
        out.append(d)
    return out


def test_snapshot_is_a_small_json_beside_binary_arrays_and_resumes_exactly(tmp_path):
    from nas.search.snapshot import arrays_path, load_snapshot, save_snapshot

    a = _default_mnas_after(2)
    old_size = len(json.dumps({"trials": 2, "state": a.state()}))  # what the JSON-only snapshot wrote
    path = tmp_path / "controller.json"
    save_snapshot(path, a, 2)
    assert path.stat().st_size < 20_000 < 1_000_000 < old_size  # the arrays left the JSON ...
    assert arrays_path(path).stat().st_size < old_size / 2  # ... as float64 binary
    assert not [p.name for p in tmp_path.iterdir() if p.name not in ("controller.json", "controller.npz")]
    trials, state = load_snapshot(path)
    assert trials == 2 and state == a.state()  # every float bit for bit
    b = _default_mnas_after(0)
    b.load_state(state)
    assert _continue(a) == _continue(b)


def test_a_snapshot_in_the_old_json_format_still_loads(tmp_path):
    """Written as the JSON-only format wrote it (the old save_snapshot's one line, arrays as lists)."""
    from nas.search.snapshot import load_snapshot

    a = _default_mnas_after(5)
    path = tmp_path / "controller.json"
    path.write_text(json.dumps({"trials": 5, "state": a.state()}))
    trials, state = load_snapshot(path)
    assert trials == 5 and state == a.state()
    b = _default_mnas_after(0)
    b.load_state(state)
    assert _continue(a) == _continue(b)


def test_arrays_that_do_not_match_the_json_are_refused(tmp_path):
    """A kill between the two writes leaves new arrays beside an old JSON: refused (the run then replays the
    whole journal), never silently mixed."""
    from nas.search.snapshot import load_snapshot, save_snapshot

    path = tmp_path / "controller.json"
    save_snapshot(path, _default_mnas_after(2), 2)
    old_json = path.read_text()
    save_snapshot(path, _default_mnas_after(10), 10)  # past the first PPO update (batch 8): new weights
    path.write_text(old_json)
    with pytest.raises(ValueError, match="controller.npz is not the one controller.json was written with"):
        load_snapshot(path)
