"""benchmarks/freshness.py: which results files predate a change to what their benchmark measures.

On a small repository made here (real git, real files) where every rule can be seen to matter, and on
this repository's own benchmarks for what they must be found to measure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from freshness import changed_since, measured_files, staleness  # noqa: E402

SCRIPT = '''"""Reads experiments/demo.yaml."""
import subprocess, sys
from nas import Thing  # lazy: nas/lazy.py
from common import write_results


def run():
    from latency.model import predict  # inside a function
    subprocess.run([sys.executable, "-m", "scaling", "go"])
'''

FILES = {
    "nas/__init__.py": 'import importlib\n_LAZY = {"Thing": "nas.lazy", "Other": "nas.other"}\n',
    "nas/lazy.py": "from .helper import x\n",  # relative import
    "nas/helper.py": "x = 1\n",
    "nas/other.py": "y = 2\n",  # named in the table, never imported: not measured
    "nas/cli.py": 'import importlib\ndef load(n):\n    return importlib.import_module(f"nas.commands.{n}")\n',
    "nas/commands/__init__.py": "",
    "nas/commands/one.py": "",
    "latency/__init__.py": "",
    "latency/model.py": "def predict(): pass\n",
    "latency/data/table.json": "{}\n",
    "scaling/__init__.py": "",
    "scaling/__main__.py": "from nas.cli import load\n",  # reached through `-m scaling`
    "search_space/__init__.py": "",  # not imported
    "nas/experiments/demo.yaml": "a: 1\n",
    "nas/experiments/other.yaml": "b: 2\n",
    "benchmarks/common.py": "def write_results(): pass\n",
    "benchmarks/bench_demo.py": SCRIPT,
    "tests/test_x.py": "",
}
MEASURED = ["benchmarks/bench_demo.py", "latency/__init__.py", "latency/data/table.json", "latency/model.py",
            "nas/__init__.py", "nas/cli.py", "nas/commands/__init__.py", "nas/commands/one.py",
            "nas/experiments/demo.yaml", "nas/helper.py", "nas/lazy.py", "scaling/__init__.py", "scaling/__main__.py"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "--short", "HEAD")


def stamp(repo: Path, at: str) -> None:
    (repo / "benchmarks/results").mkdir(exist_ok=True)
    (repo / "benchmarks/results/bench_demo.md").write_text(
        f"# Demo\n\nDate: 2026-12-03. Commit: {at}. Machine: x, 2 cores; load average 1.0 when written.\n\n1 ms\n")


@pytest.fixture
def repo(tmp_path) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    git(tmp_path, "init", "-q")
    return tmp_path


def test_what_a_benchmark_measures_follows_its_imports(repo):
    commit(repo, "start")
    assert measured_files(repo / "benchmarks/bench_demo.py", repo) == MEASURED


def test_a_change_to_a_measured_file_makes_the_results_stale_and_nothing_else_does(repo):
    at = commit(repo, "start")
    stamp(repo, at)
    commit(repo, "results")
    assert not staleness("demo", repo).stale

    for unmeasured in ("nas/other.py", "nas/experiments/other.yaml", "benchmarks/common.py", "tests/test_x.py"):
        (repo / unmeasured).write_text("# changed\n")
    commit(repo, "elsewhere")
    assert not staleness("demo", repo).stale

    (repo / "nas/helper.py").write_text("x = 2\n")  # uncommitted counts
    found = staleness("demo", repo)
    assert found.stale and found.changed == ["nas/helper.py"] and found.commits == [at]
    commit(repo, "helper")
    (repo / "latency/data/table.json").write_text('{"a": 1}\n')
    assert staleness("demo", repo).changed == ["latency/data/table.json", "nas/helper.py"]
    assert "STALE (measured at " in staleness("demo", repo).describe()

    stamp(repo, commit(repo, "table"))  # measured again
    assert not staleness("demo", repo).stale



def test_a_shipped_config_moved_from_experiments_into_the_package_is_the_same_file(repo):
    (repo / "nas/experiments/demo.yaml").rename(repo / "experiments.yaml")
    (repo / "experiments").mkdir()
    (repo / "experiments.yaml").rename(repo / "experiments/demo.yaml")  # where it was before the move
    at = commit(repo, "start")
    stamp(repo, at)
    commit(repo, "results")
    (repo / "nas/experiments").mkdir(exist_ok=True)
    (repo / "experiments/demo.yaml").rename(repo / "nas/experiments/demo.yaml")
    commit(repo, "ship the configs")
    assert not staleness("demo", repo).stale
    (repo / "nas/experiments/demo.yaml").write_text("a: 2\n")
    assert staleness("demo", repo).changed == ["nas/experiments/demo.yaml"]


def test_comments_docstrings_and_formatting_never_make_results_stale_but_behaviour_does(repo):
    (repo / "nas/helper.py").write_text('"""Helper."""\n\n\ndef f(a, b):\n    """Adds."""\n    return a + b\n\nx = 1\n')
    (repo / "nas/experiments/demo.yaml").write_text("a: 1  # one\nb: [1, 2]\n")
    at = commit(repo, "start")
    stamp(repo, at)
    commit(repo, "results")
    # A comment-, docstring- and format-only commit, in a module, a YAML file and the script itself.
    (repo / "nas/helper.py").write_text(
        '"""Helper: now documented at length."""\n# why x is 1\n\ndef f(a,\n      b):  # sums\n'
        '    """Adds two numbers,\n    said differently."""\n    return (a + b)\n\n\nx = 1  # one\n"""What x is."""\n')
    (repo / "nas/experiments/demo.yaml").write_text("# the demo\na: 1   # still one\nb:\n  - 1\n  - 2\n")
    (repo / "benchmarks/bench_demo.py").write_text(SCRIPT.replace('"""Reads experiments/demo.yaml."""',
                                                                  '"""Reads experiments/demo.yaml (only)."""'))
    assert not staleness("demo", repo).stale  # uncommitted
    commit(repo, "comments only")
    assert not staleness("demo", repo).stale
    # Behaviour: a changed expression, a changed YAML value, a string that is not a docstring.
    for path, text, expect in [
            ("nas/helper.py", '"""Helper."""\ndef f(a, b):\n    """Adds."""\n    return a - b\nx = 1\n', "nas/helper.py"),
            ("nas/experiments/demo.yaml", "a: 2\nb: [1, 2]\n", "nas/experiments/demo.yaml"),
            ("nas/lazy.py", 'from .helper import x\nNAME = "a string, not a docstring"\n', "nas/lazy.py")]:
        before = (repo / path).read_text()
        (repo / path).write_text(text)
        found = staleness("demo", repo)
        assert found.stale and found.changed == [expect], (path, found)
        (repo / path).write_text(before)
    assert not staleness("demo", repo).stale
    (repo / "latency/data/table.json").unlink()  # a file removed counts
    assert staleness("demo", repo).changed == ["latency/data/table.json"]

def test_a_json_store_is_as_old_as_its_oldest_measurement(repo):
    old = commit(repo, "start")
    (repo / "latency/model.py").write_text("def predict(): return 1\n")
    new = commit(repo, "model")
    stamp(repo, new)  # the markdown was rewritten at `new`, but one measurement is older
    store = repo / "benchmarks/results/bench_demo.json"
    store.write_text(json.dumps({"a|0": {"accuracy": 0.5, "commit": new}, "a|1": {"accuracy": 0.6, "commit": old}}))
    found = staleness("demo", repo)
    assert found.commits == sorted([old, new]) and found.changed == ["latency/model.py"]
    measured = measured_files(repo / "benchmarks/bench_demo.py", repo)  # per measurement (what --remeasure retrains)
    assert changed_since(old, measured, repo) == ["latency/model.py"] and changed_since(new, measured, repo) == []
    assert changed_since(f"{new}-dirty", measured, repo) is None and changed_since(None, measured, repo) is None
    store.write_text(json.dumps([{"result": {}, "commit": new}, {"result": {}, "commit": new}]))
    assert not staleness("demo", repo).stale
    store.write_text(json.dumps([{"result": {}, "commit": new}, {"result": {}}]))  # a row without its commit
    assert "measured at 'unknown'" in staleness("demo", repo).reason


@pytest.mark.parametrize("at, reason", [("abc1234-dirty", "not at a commit of this repository"),
                                        ("0123abc", "is not in this clone's history")])
def test_results_of_unknown_code_are_stale(repo, at, reason):
    commit(repo, "start")
    stamp(repo, at)
    found = staleness("demo", repo)
    assert found.stale and reason in found.reason


def test_this_repositorys_benchmarks_measure_what_they_run():
    def measured(name):
        return set(measured_files(ROOT / "benchmarks" / f"bench_{name}.py"))

    # bench_train runs `python -m nas train ...`: the CLI loads its commands by name
    assert {"nas/commands/train.py", "nas/train/trainer.py", "nas/deploy/exporter.py"} <= measured("train")
    assert {"search_space/builder.py", "latency/data/edgetpu_constants.json", "latency/edgetpu_model.py",
            "nas/experiments/edgetpu.yaml", "nas/search/parallel.py", "nas/controllers/mnas.py",
            "nas/proxy/task.py"} <= measured("search_quality")
    assert "nas/experiments/edgetpu_bayesian.yaml" not in measured("search_quality")
    assert {"tests/test_benchmark_freshness.py", "pyproject.toml"} <= measured("test_suite")
    assert not any(f.startswith("nas/") for f in measured("foundation"))  # it measures the model zoo alone
    assert "benchmarks/common.py" not in measured("scaling")
    assert "benchmarks/freshness.py" not in measured("proxy_fidelity")  # it picks what to re-run, measures nothing


def test_run_all_lists_each_benchmark_as_current_or_stale():
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--is-shallow-repository"], capture_output=True,
                      text=True).stdout.strip() != "false":
        pytest.skip("a shallow clone has not the commits the results were measured at")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/run_all"), "--stale", "--list"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    names = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    verdicts = [line for line in done.stdout.splitlines() if line.startswith("bench_")]
    assert [line.split(":")[0] for line in verdicts] == names
    assert all(": current (measured at " in line or ": STALE (measured at " in line for line in verdicts)


def test_commit_is_dirty_for_code_changes_not_for_results(repo, monkeypatch):
    import common

    monkeypatch.setattr(common, "ROOT", repo)
    monkeypatch.delenv("BENCH_COMMIT", raising=False)
    at = commit(repo, "start")
    stamp(repo, at)  # a results file written (untracked), then changed after a commit
    assert common.commit() == at
    at = commit(repo, "results")
    (repo / "benchmarks/results/bench_demo.md").write_text("# Demo, rewritten\n")
    assert common.commit() == at
    (repo / "nas/helper.py").write_text("x = 3\n")
    assert common.commit() == f"{at}-dirty"


def test_from_run_records_the_runs_own_seed_and_controller(tmp_path):
    """A fix the old (text) staleness rule held back: `--from-run` recorded one run under every default
    seed and controller."""
    import yaml

    from bench_search_quality import run_identity

    config = yaml.safe_load((ROOT / "experiments/edgetpu.yaml").read_text())
    config["run"]["seed"], config["controller"] = 7, {"name": "evolution"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert run_identity(str(tmp_path)) == (7, "evolution")
    for flag in (["--seeds", "0"], ["--controllers", "mnas"]):
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_search_quality.py"), "--from-run",
                               str(tmp_path), *flag], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 2 and "its config.yaml" in done.stderr, done.stderr
