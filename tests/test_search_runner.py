"""The search loop with a spec-only evaluator: journaling, failures, interruption and resume, outputs."""

import json

import pytest
import yaml

from nas.search.config import config_from_dict
from nas.controllers import make_controller
from nas.search.journal import Journal
from nas.search.loop import FAILED_REWARD, SNAPSHOT_EVERY, Search
from nas.search.snapshot import load_snapshot
from nas.search.trial_runner import trial_seed
from search_space.registry import get_spec
from tests.search_helpers import SpecOnlyEvaluator, tiny_config


def _config(trials=12, controller=None, top_k=3):
    controller = controller or {"name": "mnas", "batch_size": 3, "hidden_size": 8, "learning_rate": 0.05}
    data = tiny_config(run={"trials": trials, "top_k": top_k})
    data["controller"] = controller
    return config_from_dict(data, "tiny")


def _search(config, run_dir, evaluator=None, lines=None):
    return Search(config, run_dir, evaluator or SpecOnlyEvaluator(), say=(lines.append if lines is not None else lambda _: None))


def _state(run_dir):
    trials, state = load_snapshot(run_dir / "controller.json")
    return {"trials": trials, "state": state}


def test_every_trial_is_journaled_with_its_measurements(tmp_path):
    config = _config(trials=7)
    lines = []
    trials = _search(config, tmp_path / "run", lines=lines).run()
    journal = Journal(tmp_path / "run" / "journal.jsonl").read()
    assert journal == trials and [t.trial for t in journal] == list(range(7))
    for t in journal:
        spec = config.space.to_spec(t.decisions)
        assert t.status == "ok" and t.spec["blocks"] == spec.to_dict()["blocks"]
        assert 0 < t.accuracy < 1 and t.latency_ms > 0 and t.params > 0 and t.macs > 0 and t.wall_s >= 0
        assert t.reward == pytest.approx(t.accuracy * (t.latency_ms / 1.0) ** -0.07)  # soft, target 1 ms
    progress = [line for line in lines if line.startswith("trial ")]
    assert len(progress) == 7 and progress[-1].startswith("trial 7/7") and "ETA" in progress[0] and "best" in progress[0]


def test_a_failing_trial_is_recorded_and_the_search_goes_on(tmp_path):
    config = _config(trials=6)
    evaluator = SpecOnlyEvaluator(fail=(trial_seed(3, 1), trial_seed(3, 4)))
    trials = _search(config, tmp_path / "run", evaluator).run()
    assert [t.status for t in trials] == ["ok", "failed", "ok", "ok", "failed", "ok"]
    failed = trials[1]
    assert failed.accuracy is None and failed.reward is None and "nan" in failed.error
    assert failed.latency_ms > 0 and failed.params > 0  # what could be measured still is
    # the controller heard FAILED_REWARD for it: replaying the journal that way reproduces its state
    replay = make_controller("mnas", config.space.cardinalities, config.controller_options, seed=3)
    for t in trials:
        assert replay.ask() == t.decisions
        replay.tell(t.decisions, t.reward if t.ok else FAILED_REWARD)
    assert json.dumps(replay.state()) == json.dumps(_state(tmp_path / "run")["state"])
    csv = (tmp_path / "run" / "trials.csv").read_text().splitlines()
    assert len(csv) == 7 and csv[2].split(",")[1] == "failed"


def test_an_unexpected_exception_in_a_trial_is_recorded_too(tmp_path):
    class Exploding(SpecOnlyEvaluator):
        def evaluate(self, spec, seed):
            if seed == trial_seed(3, 0):
                raise RuntimeError("out of memory\nsecond line")
            return super().evaluate(spec, seed)

    trials = _search(_config(trials=2), tmp_path / "run", Exploding()).run()
    assert trials[0].error == "RuntimeError: out of memory second line"
    assert "traceback" in trials[0].extra and trials[1].ok


@pytest.mark.parametrize("controller", ["mnas", "evolution", "reinforce", "random"])
def test_same_seed_same_architectures(tmp_path, controller):
    config = _config(trials=9, controller={"name": controller})
    a = _search(config, tmp_path / "a").run()
    b = _search(config, tmp_path / "b").run()
    assert [t.decisions for t in a] == [t.decisions for t in b]
    other = _search(config_from_dict({**tiny_config(run={"trials": 9, "seed": 4}), "controller": {"name": controller}},
                                     "tiny"), tmp_path / "c").run()
    assert [t.decisions for t in other] != [t.decisions for t in a]


@pytest.mark.parametrize("keep_snapshot", [True, False])
def test_interrupted_run_resumes_to_exactly_the_uninterrupted_result(tmp_path, keep_snapshot):
    config = _config(trials=14)
    straight = _search(config, tmp_path / "straight").run()

    run = tmp_path / "interrupted"
    evaluator = SpecOnlyEvaluator(interrupt_at=SNAPSHOT_EVERY + 3)  # Ctrl-C during trial 11
    with pytest.raises(KeyboardInterrupt):
        _search(config, run, evaluator).run()
    assert len(Journal(run / "journal.jsonl").read()) == SNAPSHOT_EVERY + 2
    if keep_snapshot:
        assert _state(run)["trials"] == SNAPSHOT_EVERY  # the last periodic one; trials 9 and 10 are replayed
    else:
        (run / "controller.json").unlink()  # as after a SIGKILL before any snapshot: the journal alone suffices
    resumed_evaluator = SpecOnlyEvaluator()
    resumed = _search(config, run, resumed_evaluator).run(resume=True)

    assert resumed_evaluator.calls == [trial_seed(3, i) for i in range(SNAPSHOT_EVERY + 2, 14)]  # nothing re-run
    assert [(t.trial, t.decisions, t.reward) for t in resumed] == [(t.trial, t.decisions, t.reward) for t in straight]
    assert _state(run) == _state(tmp_path / "straight")  # the controller ends in exactly the same state


def test_resume_can_extend_the_budget(tmp_path):
    run = tmp_path / "run"
    _search(_config(trials=4), run).run()
    evaluator = SpecOnlyEvaluator()
    trials = _search(_config(trials=7), run, evaluator).run(resume=True)
    assert [t.trial for t in trials] == list(range(7)) and len(evaluator.calls) == 3
    assert yaml.safe_load((run / "config.yaml").read_text())["run"]["trials"] == 7


def test_outputs_are_files_people_can_open(tmp_path):
    run = tmp_path / "run"
    lines = []
    trials = _search(_config(trials=9, top_k=3), run, lines=lines).run()
    names = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    assert names == {".lock", "config.fingerprint.json", "config.yaml", "journal.jsonl", "controller.json", "controller.npz", "trials.csv", "best.yaml", "summary.md",
                     "pareto.png", "top/1.yaml", "top/2.yaml", "top/3.yaml"}
    assert (run / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = max(trials, key=lambda t: t.reward)
    spec = get_spec(str(run / "best.yaml"))  # what `nas scale` reads
    assert list(spec.blocks) == list(_config().space.to_spec(best.decisions).blocks)
    assert f"reward {best.reward:.4f}" in (run / "best.yaml").read_text().splitlines()[0]
    assert (run / "top" / "1.yaml").read_text() == (run / "best.yaml").read_text()
    rewards = []
    for k in (1, 2, 3):
        get_spec(str(run / "top" / f"{k}.yaml"))  # each is a loadable spec
        rewards.append(float((run / "top" / f"{k}.yaml").read_text().split("reward ")[1].split(",")[0]))
    assert rewards == sorted(rewards, reverse=True) and rewards[0] == pytest.approx(best.reward, abs=1e-4)
    header = (run / "trials.csv").read_text().splitlines()[0]
    assert header.startswith("trial,status,accuracy,latency_ms,reward,params")
    summary = (run / "summary.md").read_text()
    assert summary in "\n".join(lines)  # printed at the end too
    assert "Best: trial" in summary and "| trials | mean reward | mean accuracy | median latency (ms) |" in summary and "| 1-3 |" in summary
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["search_space"]["skeleton"]["name"] == "tiny-skeleton" and config["controller"]["batch_size"] == 3


def test_a_run_where_every_trial_fails_still_finishes_and_says_so(tmp_path):
    evaluator = SpecOnlyEvaluator(fail=tuple(trial_seed(3, i) for i in range(3)))
    trials = _search(_config(trials=3), tmp_path / "run", evaluator).run()
    assert all(not t.ok for t in trials)
    assert not (tmp_path / "run" / "best.yaml").exists()
    assert "No trial finished successfully" in (tmp_path / "run" / "summary.md").read_text()
