"""Does the default search's controller learn? Reward per quarter of the run, controller vs random.

For each seed and controller, runs the search of a config (default: experiments/edgetpu.yaml, its
real proxy training) or, with `--objective surrogate`, the same loop on bench_controllers.py's
spec-only objective (the soft reward of `sim` latency and a surrogate accuracy: seconds, not
minutes). `--objective noisy` gives that surrogate the real proxy's statistics as the issue's pilot
measured them (10 random architectures x 3 seeds of the default proxy): accuracies spread with
std 0.162 across architectures around 0.6, plus seed noise of std 0.053 drawn afresh for every
trial (a repeat is trained again). The plain surrogate's accuracy varies by ~0.01 and its reward is
nearly all latency; the noisy one is where a controller tuned for a noiseless objective breaks.
It records: mean reward of each quarter of the trials (in proposal order), the best
reward, the median predicted latency of the last quarter against the target, distinct
architectures proposed, and wall time. `--set controller.advantage=batch` (repeatable) overrides
any config value, so a candidate setting runs on exactly the default config otherwise.

Rows accumulate in `results/bench_search_quality.json` (one per objective, variant, controller and
seed: a later run of the same key replaces it), and the markdown is rebuilt from all of them, so the
figures can be gathered over several invocations as CPU time allows.

    .venv/bin/python benchmarks/bench_search_quality.py [--objective config|surrogate] [--seeds 0 1 2 3 4]
        [--controllers mnas random] [--trials N] [--set KEY=VALUE ...] [--label NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import RESULTS, commit, commits_line, markdown_table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STORE = RESULTS / "bench_search_quality.json"


def quarters(values: list[float]) -> list[float]:
    """Means of the four quarters of `values` in order (the last quarter takes any remainder)."""
    n = len(values) // 4
    cuts = [0, n, 2 * n, 3 * n, len(values)]
    return [statistics.mean(values[a:b]) for a, b in zip(cuts, cuts[1:])]


def summarise(rewards: list[float], latencies: list[float], archs: list[tuple], target: float, wall: float) -> dict:
    q = quarters(rewards)
    last = latencies[3 * (len(latencies) // 4):]
    return {"quarters": q, "mean": statistics.mean(rewards), "best": max(rewards),
            "last_latency_ratio": statistics.median(last) / target, "distinct": len(set(archs)),
            "trials": len(rewards), "wall_s": wall}


@contextlib.contextmanager
def _store_lock():
    with open(STORE.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _assign(data: dict, key: str, text: str) -> None:
    *path, leaf = key.split(".")
    for part in path:
        data = data.setdefault(part, {})
    data[leaf] = yaml.safe_load(text)


def run_config(config_path: str, controller: str, seed: int, trials: int | None, sets: list[str]) -> dict:
    from nas.search.config import config_from_dict, load_config
    from nas.search.loop import Search

    data = load_config(config_path).to_dict()
    data["run"]["seed"] = seed
    if trials:
        data["run"]["trials"] = trials
    for item in sets:
        key, _, value = item.partition("=")
        _assign(data, key, value)
    if controller != data["controller"]["name"]:
        data["controller"] = {"name": controller}  # another controller at its own defaults
    config = config_from_dict(data)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        search = Search(config, Path(tmp) / "run", say=lambda _: None)
        done = sorted(search.run(), key=lambda t: t.trial)
    wall = time.perf_counter() - start
    ok = [t for t in done if t.ok]
    return summarise([t.reward for t in done if t.reward is not None], [t.latency_ms for t in ok],
                     [tuple(t.decisions) for t in done], search.target_ms, wall)


PILOT_MEAN, PILOT_SPREAD, PILOT_NOISE = 0.6, 0.162, 0.053
_CALIBRATION: list[float] = []


class NoisyObjective:
    """bench_controllers.py's objective with the accuracy rescaled to the pilot's spread, plus noise."""

    def __init__(self, seed: int, reward: dict | None = None):
        import random

        import numpy as np
        from bench_controllers import Objective, surrogate_accuracy

        self.base = Objective()
        self.space, self.latency, self.target = self.base.space, self.base.latency, self.base.target
        self._accuracy = surrogate_accuracy
        if not _CALIBRATION:  # the surrogate's accuracy over random architectures: once per process
            rng = random.Random(12345)
            sample = [surrogate_accuracy(self.space.to_spec(self.space.sample(rng))) for _ in range(2000)]
            _CALIBRATION.extend([float(np.mean(sample)), float(np.std(sample))])
        self.mean, self.std = _CALIBRATION
        self.noise = np.random.default_rng(1000 + seed)
        from nas.common.schema import read_section
        from nas.search.reward import RewardConfig, make_reward

        self.reward = make_reward(read_section(RewardConfig, reward or {}, "reward"), self.target)

    def __call__(self, decisions: list[int]) -> float:
        spec = self.space.to_spec(decisions)
        z = (self._accuracy(spec) - self.mean) / self.std
        acc = PILOT_MEAN + PILOT_SPREAD * z + PILOT_NOISE * float(self.noise.standard_normal())
        return self.reward(min(max(acc, 0.0), 1.0), self.latency.predict_ms(spec))


def from_run(run_dir: str, wall_s: float | None = None) -> dict:
    """A row from an existing run directory (finished or still running: the trials journaled so far)."""
    from nas.search.config import make_latency
    from nas.search.journal import Journal
    from nas.search.loop import load_run_config

    root = Path(run_dir)
    done = sorted(Journal(root / "journal.jsonl").read(), key=lambda t: t.trial)
    _, target = make_latency(load_run_config(root))
    return summarise([t.reward for t in done if t.reward is not None], [t.latency_ms for t in done if t.ok],
                     [tuple(t.decisions) for t in done], target,
                     # the journal holds per-trial times only: trials in flight together overlap
                     sum(t.wall_s for t in done) if wall_s is None else wall_s)


def run_identity(run_dir: str) -> tuple[int, str]:
    """(seed, controller name) of a run directory, from its resolved config.yaml."""
    from nas.search.loop import load_run_config

    config = load_run_config(Path(run_dir))
    return config.run.seed, config.controller


def run_surrogate(controller: str, seed: int, trials: int, sets: list[str], noisy: bool = False) -> dict:
    from bench_controllers import Objective
    from nas.controllers import CONTROLLERS, make_controller
    from nas.common.schema import read_section

    config = yaml.safe_load((ROOT / "experiments/edgetpu.yaml").read_text())
    data, reward = config["controller"], config["reward"]
    for item in sets:
        key, _, value = item.partition("=")
        if key.startswith("controller."):
            _assign(data, key.split(".", 1)[1], value)
        elif key.startswith("reward.") and noisy:  # the plain surrogate keeps bench_controllers' soft reward
            _assign(reward, key.split(".", 1)[1], value)
    if controller != data["name"]:
        data = {"name": controller}
    options = read_section(CONTROLLERS.get(controller).Options, data, "controller", skip=("name",))
    objective = NoisyObjective(seed, reward) if noisy else Objective()
    c = make_controller(controller, objective.space.cardinalities, options, seed=seed)
    rewards, latencies, archs = [], [], []
    start = time.perf_counter()
    for _ in range(trials):
        d = c.ask()
        r = objective(d)
        c.tell(d, r)
        rewards.append(r)
        latencies.append(objective.latency.predict_ms(objective.space.to_spec(d)))
        archs.append(tuple(d))
    return summarise(rewards, latencies, archs, objective.target, time.perf_counter() - start)


def _goals(mnas: dict, random_mean: float | None) -> dict:
    """The issue's three goals for one run: (ratio, met) for each it can be judged on."""
    q = mnas["quarters"]
    goals = {"rise": (q[3] / q[0], q[3] >= 1.1 * q[0])}
    if random_mean is not None:
        goals["random"] = (q[3] / random_mean, q[3] >= 1.15 * random_mean)
    goals["latency"] = (mnas["last_latency_ratio"], abs(mnas["last_latency_ratio"] - 1) <= 0.3)
    return goals


_GOAL_NAMES = {"rise": "Q4/Q1", "random": "Q4/random", "latency": "latency"}


def _random_mean(rows: list[dict], r: dict) -> float | None:
    """Whole-run mean of the same seed's random run: the same variant's (same reward) if there is one,
    else the default's."""
    randoms = [x for x in rows if x["objective"] == r["objective"] and x["controller"] == "random"
               and x["seed"] == r["seed"] and x["trials"] == r["trials"] and x["variant"] in (r["variant"], "default")]
    best = max(randoms, key=lambda x: x["variant"] == r["variant"], default=None)
    return best["result"]["mean"] if best else None


def render(rows: list[dict]) -> str:
    body = ["## Goals met, per controller", ""]
    summary = []
    for objective in ("config", "noisy", "surrogate"):
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            if r["objective"] == objective and r["controller"] != "random":
                groups.setdefault((r["variant"], r["controller"], r["trials"]), []).append(r)
        for (variant, controller, trials), mine in sorted(groups.items()):
            goals = [_goals(r["result"], _random_mean(rows, r)) for r in mine]
            cells = []
            for name in _GOAL_NAMES:
                judged = [g[name] for g in goals if name in g]
                cells.append(f"{sum(ok for _, ok in judged)} of {len(judged)} "
                             f"({min(v for v, _ in judged):.2f}-{max(v for v, _ in judged):.2f})" if judged else "-")
            summary.append([objective, variant, controller, trials, " ".join(str(r["seed"]) for r in sorted(
                mine, key=lambda r: r["seed"])), *cells])
    body += markdown_table(["objective", "variant", "controller", "trials", "seeds", "Q4 >= 1.1 x Q1 (Q4/Q1 range)",
                            "Q4 >= 1.15 x random's mean (ratio range)", "Q4 median latency within +-30% of target "
                            "(latency/target range)"], summary) + [""]
    for objective in ("config", "noisy", "surrogate"):
        mine = [r for r in rows if r["objective"] == objective]
        if not mine:
            continue
        body += [f"## Objective: {objective}", ""]
        table = []
        for r in sorted(mine, key=lambda r: (r["variant"], r["controller"], r["seed"])):
            s = r["result"]
            marks = ""
            if r["controller"] != "random":
                marks = ", ".join(f"{_GOAL_NAMES[k]} {v:.2f} {'ok' if ok else 'no'}"
                                  for k, (v, ok) in _goals(s, _random_mean(rows, r)).items())
            table.append([r["variant"], r["controller"], r["seed"], s["trials"], *(f"{v:.3f}" for v in s["quarters"]),
                          f"{s['best']:.3f}", f"{s['last_latency_ratio']:.2f}", s["distinct"], f"{s['wall_s']:.0f}", marks,
                          r.get("commit") or "unknown"])
        body += markdown_table(["variant", "controller", "seed", "trials", "Q1", "Q2", "Q3", "Q4", "best",
                                "Q4 median latency / target", "distinct archs", "wall s", "goals", "commit"], table) + [""]
    body += ["Q1..Q4: mean reward of each quarter of the trials in proposal order. Goals: Q4 >= 1.1 x Q1; "
             "Q4 >= 1.15 x the random controller's whole-run mean (same seed, same trials, same reward); Q4 "
             "median predicted latency within +-30% of the target. `variant` names the `--set` overrides "
             "(`default`: experiments/edgetpu.yaml as committed). config: the config's real search (proxy "
             "training on the offline digits); noisy: bench_controllers.py's spec-only accuracy rescaled to "
             "the pilot's spread across architectures (0.162) plus seed noise (0.053), with the config's "
             "reward (no training); surrogate: bench_controllers.py's objective (soft reward). Controllers other "
             "than the config's run at their own default options. Seeds not listed were not run. Wall times "
             "are on a 2-core machine shared with other jobs. `commit`: the code each row was measured on (the "
             "header's commit is when this file was last written)."]
    return "\n".join(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objective", choices=("config", "surrogate", "noisy"), default="config")
    parser.add_argument("--config", default=str(ROOT / "experiments/edgetpu.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="default: 0 1 2 3 4; with --from-run: the run's run.seed")
    parser.add_argument("--controllers", nargs="+", default=None,
                        help="default: mnas random; with --from-run: the run's controller")
    parser.add_argument("--trials", type=int, default=None, help="default: the config's run.trials")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--label", default=None, help="the variant's name (default: the --set list)")
    parser.add_argument("--from-run", default=None, metavar="RUN_DIR",
                        help="record an existing run's journal (one seed, one controller) instead of running")
    parser.add_argument("--wall-s", type=float, default=None,
                        help="with --from-run: the run's measured wall time (default: the sum of its trial times)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the markdown from what is stored")
    args = parser.parse_args()

    if args.report_only:
        with _store_lock():
            write_results("bench_search_quality", "Search quality: does the controller learn?",
                          render(json.loads(STORE.read_text())))
        return
    if args.from_run:  # one run is one seed of one controller: its own, whatever the defaults are
        seed, controller = run_identity(args.from_run)
        for flag, given, own in (("--seeds", args.seeds, [seed]), ("--controllers", args.controllers, [controller])):
            if given not in (None, own):
                parser.error(f"{flag} {' '.join(map(str, given))}: {args.from_run} is {own[0]} "
                             "(its config.yaml); leave the option out")
        args.seeds, args.controllers = [seed], [controller]
    args.seeds = [0, 1, 2, 3, 4] if args.seeds is None else args.seeds
    args.controllers = ["mnas", "random"] if args.controllers is None else args.controllers
    variant = args.label or (" ".join(args.sets) or "default")
    measured_at = commit()  # once: the store's own writes would make the tree read "-dirty" from then on
    for seed in args.seeds:
        for controller in args.controllers:
            if args.from_run:
                result = from_run(args.from_run, args.wall_s)
            elif args.objective == "config":
                result = run_config(args.config, controller, seed, args.trials, args.sets)
            else:
                trials = args.trials or yaml.safe_load(Path(args.config).read_text())["run"]["trials"]
                result = run_surrogate(controller, seed, trials, args.sets, args.objective == "noisy")
            # random ignores controller settings, but not the reward's
            shared = any(not item.startswith("controller.") for item in args.sets)
            label = variant if controller != "random" or shared else "default"
            key = (args.objective, label, controller, seed, result["trials"])
            with _store_lock():  # two invocations (one per controller, say) may finish at once
                rows = json.loads(STORE.read_text()) if STORE.exists() else []
                rows = [r for r in rows if (r["objective"], r["variant"], r["controller"], r["seed"], r["trials"]) != key]
                rows.append({"objective": args.objective, "variant": label, "controller": controller, "seed": seed,
                             "trials": result["trials"], "result": result, "commit": measured_at})
                STORE.write_text(json.dumps(rows, indent=1))
                write_results("bench_search_quality", "Search quality: does the controller learn?", render(rows))
            print(f"{args.objective} {label} {controller} seed {seed}: quarters "
                  f"{' '.join(f'{v:.3f}' for v in result['quarters'])}, best {result['best']:.3f}, latency/target "
                  f"{result['last_latency_ratio']:.2f}, {result['distinct']} distinct, {result['wall_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
