"""`nas scale` and `nas scale search` through the CLI: tables, written specs, base choice, bad input,
and the search scored by proxy accuracy (`--config`): a fake proxy for exact checks of what is trained
and how it is ranked, real proxy training on a tiny base locally, and on a local Ray cluster."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from latency import LATENCY_SOURCES
from nas.cli import main
from search_space import REGISTRY, ModelSpec, count_macs, get_spec
from scaling import nominal_cost_factor, scale_phi
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.search_helpers import TINY, tiny_config, write_config

S = REGISTRY["efficientnet-edgetpu-S"]
ROOT = Path(__file__).resolve().parents[1]
EDGETPU_CONFIG = ROOT / "experiments" / "edgetpu.yaml"  # proxy: 16 px, width 0.25, seed 0


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


class MacsLatency:
    """A latency model for the tests: one millisecond per 100 M MACs."""

    name = "macs-ms"

    def predict_ms(self, spec):
        return count_macs(spec) / 1e8


@pytest.fixture(autouse=True)
def _empty_working_directory(tmp_path_factory, monkeypatch):
    """`nas scale` without a base picks up the newest `runs/*/best.yaml` under the working directory:
    run each test from an empty one, so a search the user ran in the checkout cannot change the base."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def macs_latency(monkeypatch):
    monkeypatch.setitem(LATENCY_SOURCES._entries, "test-macs", lambda argument: MacsLatency())
    return "test-macs"


def test_phi_table_shows_ratios_within_15_percent_and_writes_loadable_specs(tmp_path, capsys):
    out = tmp_path / "scaled"
    assert main(["scale", "--model", "efficientnet-edgetpu-S", "--phi", "0", "1,2", "3", "-o", str(out),
                 "--latency", "none", "--format", "csv"]) == 0
    rows = _csv(capsys.readouterr().out)
    assert [float(r["phi"]) for r in rows] == [0, 1, 2, 3]
    assert "latency" not in " ".join(rows[0])
    for row in rows:
        phi = float(row["phi"])
        assert float(row["target ratio"]) == pytest.approx(nominal_cost_factor(1.2, 1.1, 1.15, phi), abs=1e-3)
        assert abs(float(row["MACs ratio"]) / float(row["target ratio"]) - 1) <= 0.15
        written = get_spec(row["file"])
        assert written == scale_phi(S, phi)
        assert float(row["MACs ratio"]) == pytest.approx(count_macs(written) / count_macs(S), abs=1e-3)
    assert sorted(p.name for p in out.iterdir()) == [f"efficientnet-edgetpu-S-phi{k}.yaml" for k in range(4)]


def test_edgetpu_preset_writes_the_released_m_and_l(tmp_path, capsys):
    assert main(["scale", "--preset", "edgetpu", "-o", str(tmp_path), "--latency", "none"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet-edgetpu-L" in out and "preset edgetpu" in out
    published = {"efficientnet-edgetpu-S": (1.0, 1.0, 224, 0.2), "efficientnet-edgetpu-M": (1.0, 1.1, 240, 0.2),
                 "efficientnet-edgetpu-L": (1.2, 1.4, 300, 0.3)}  # the published table (docs/guides/reproducing.md), typed independently of the registry
    for name, coefficients in published.items():
        written = get_spec(str(tmp_path / f"{name}.yaml"))
        assert written == REGISTRY[name]
        assert (written.width, written.depth, written.resolution, written.dropout) == coefficients


def test_latency_column_from_the_requested_source(tmp_path, capsys, macs_latency):
    assert main(["scale", "--phi", "1", "--latency", macs_latency, "-o", str(tmp_path), "--format", "csv"]) == 0
    (row,) = _csv(capsys.readouterr().out)
    spec = scale_phi(S, 1)
    assert float(row["latency ms (macs-ms)"]) == pytest.approx(count_macs(spec) / 1e8, abs=1e-3)
    assert float(row["latency ratio"]) == pytest.approx(float(row["MACs ratio"]), abs=2e-3)


def test_default_latency_source_unavailable_leaves_the_column_out(tmp_path, capsys, monkeypatch):
    # A copy without sim, the registry's own dict put back afterwards: deleting and re-inserting the key
    # would move sim to the end of every later "known: ..." list.
    without_sim = {k: v for k, v in LATENCY_SOURCES._entries.items() if k != "sim"}
    monkeypatch.setattr(LATENCY_SOURCES, "_entries", without_sim)
    assert main(["scale", "--phi", "1", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no latency column" in out and "latency ms" not in out


def test_default_base_is_the_newest_search_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["scale", "--latency", "none"]) == 0  # no runs/: efficientnet-edgetpu-S
    assert "base: efficientnet-edgetpu-S (default" in capsys.readouterr().out
    older, newer = tmp_path / "runs" / "a" / "best.yaml", tmp_path / "runs" / "b" / "best.yaml"
    for path, model in ((older, "efficientnet-b0"), (newer, "mnasnet-a1")):
        path.parent.mkdir(parents=True)
        path.write_text(REGISTRY[model].to_yaml())
    os.utime(older, (2e9, 2e9))  # newer on disk, though written first
    os.utime(newer, (1e9, 1e9))
    assert main(["scale", "--latency", "none", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert "efficientnet-b0 (latest search run" in captured.err
    (row,) = _csv(captured.out)
    assert row["name"] == "efficientnet-b0-phi1"
    assert (tmp_path / "scaled" / "efficientnet-b0-phi1.yaml").is_file()


def test_search_lists_feasible_triples_and_says_no_scorer_was_used(tmp_path, capsys):
    table = tmp_path / "triples.csv"
    assert main(["scale", "search", "--model", "efficientnet-edgetpu-S", "--grid", "1.0:1.3:0.1",
                 "--gamma-grid", "1.0,1.15", "--top", "3", "-o", str(table)]) == 0
    out = capsys.readouterr().out
    assert "no accuracy scorer was used" in out and "ranked by closeness of the MACs ratio to 2" in out
    assert "give --config FILE" in out and "accuracy" not in table.read_text().splitlines()[0]
    table_lines = out.split("----\n", 1)[1].split("scale with:")[0].splitlines()  # rows below the rule
    shown = [line.split() for line in table_lines]
    assert [row[0] for row in shown] == ["1", "2", "3"]
    assert len(shown) == 3
    rows = _csv(table.read_text())
    assert rows and all(abs(float(r["MACs ratio"]) - 2) <= 0.2 for r in rows)
    for row in rows:
        spec = scale_phi(S, 1, float(row["alpha"]), float(row["beta"]), float(row["gamma"]))
        assert float(row["MACs ratio"]) == pytest.approx(count_macs(spec) / count_macs(S), abs=1e-4)
    assert {float(r["gamma"]) for r in rows} <= {1.0, 1.15}


def test_search_by_latency(capsys, macs_latency):
    assert main(["scale", "search", "--cost", "latency", "--latency", macs_latency, "--grid", "1.0:1.3:0.1",
                 "--format", "csv"]) == 0
    rows = _csv(capsys.readouterr().out)
    assert rows and all(abs(float(r["latency ratio"]) - 2) <= 0.2 for r in rows)


@pytest.mark.parametrize("argv, message", [
    (["scale", "--phi", "-1"], "--phi must be >= 0"),
    (["scale", "--phi", "abc"], "--phi: 'abc' is not a number"),
    (["scale", "--phi", "1", "nan"], "--phi: 'nan' is not a finite number"),
    (["scale", "--phi", "1e4"], "use a smaller phi"),
    (["scale", "--alpha", "0"], "--alpha must be a positive number"),
    (["scale", "--beta", "-1.1"], "--beta must be a positive number"),
    (["scale", "--gamma", "x"], "--gamma: 'x' is not a number"),
    (["scale", "--preset", "mobilenet"], "unknown preset 'mobilenet'"),
    (["scale", "--preset", "edgetpu", "--phi", "2"], "--preset uses the published coefficients"),
    (["scale", "--resolution-divisor", "0"], "--resolution-divisor must be a positive whole number"),
    (["scale", "--spec", "{tmp}/missing.yaml"], "does not exist"),
    (["scale", "--spec", "{tmp}/bad.yaml"], "not valid YAML"),
    (["scale", "--spec", "{tmp}/wrong.yaml"], "unknown field(s) colour"),
    (["scale", "--spec", "{tmp}"], "is not a file"),
    (["scale", "--spec", "{tmp}/bad.yaml", "--model", "efficientnet-b0"], "either --spec FILE or --model NAME"),
    (["scale", "--model", "efficientnet-edgetpu-s"], "did you mean 'efficientnet-edgetpu-S'"),
    (["scale", "--runs-dir", "{tmp}/nowhere"], "runs directory"),
    (["scale", "--runs-dir", "{tmp}"], "no search run with a best.yaml"),
    (["scale", "--latency", "nosuch"], "unknown latency source 'nosuch'"),
    (["scale", "search", "--grid", "1.5:1.0:0.1"], "below its start"),
    (["scale", "search", "--alpha-grid", "1:a:0.1"], "--alpha-grid: 'a' is not a number"),
    (["scale", "search", "--grid", "1:2"], "expected LO:HI:STEP"),
    (["scale", "search", "--tolerance", "-0.1"], "--tolerance must be >= 0"),
    (["scale", "search", "--target", "0"], "--target must be a positive number"),
    (["scale", "search", "--cost", "flops"], "unknown cost 'flops'"),
    (["scale", "search", "--cost", "latency", "--latency", "nosuch"], "unknown latency source 'nosuch'"),
    (["scale", "search", "--grid", "1.0", "--tolerance", "0.01"], "none of the 1 triples"),
    (["scale", "search", "--top", "0"], "--top must be a positive whole number"),
    (["scale", "search", "--config", "{tmp}/cfg.yaml", "--max-scored", "0"],
     "--max-scored must be a positive whole number"),
    (["scale", "search", "--config", "{tmp}/cfg.yaml", "--max-scored", "two"], "--max-scored: 'two' is not a number"),
    (["scale", "search", "--max-scored", "3"], "--max-scored needs --config FILE"),
    (["scale", "search", "--config", "{tmp}/missing.yaml"], "config file '{tmp}/missing.yaml' does not exist"),
    (["scale", "search", "--config", "{tmp}/wrong.yaml"], "blocks: unknown section"),
    (["scale", "search", "--config", "{tmp}/cfg.yaml", "--grid", "1.0", "--tolerance", "0.01"],
     "none of the 1 triples"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("blocks: [unclosed\n")
    (tmp_path / "wrong.yaml").write_text("blocks: [r1_k3_s11_e1_i32_o16]\ncolour: red\n")
    write_config(tmp_path / "cfg.yaml", tiny_config())
    monkeypatch.setattr("nas.proxy.jobs.run_jobs", lambda *a, **k: pytest.fail("nothing may be trained"))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "nas: error: ", message.replace("{tmp}", str(tmp_path)))
    assert not (tmp_path / "scaled").exists()


# Scored by proxy accuracy (--config) -------------------------------------------------------------

def _expected_px(resolution: int, base_resolution: int, proxy: int) -> int:
    """The documented rule, written out here rather than imported: round(proxy * res / base), >= 8."""
    return max(8, int(proxy * resolution / base_resolution + 0.5))


def _triple(row: dict) -> tuple[float, float, float]:
    return float(row["alpha"]), float(row["beta"]), float(row["gamma"])


class FakeProxy:
    """Stands in for `nas.proxy.jobs.run_jobs`: records the jobs, answers an accuracy that is a fixed
    function of the job (favouring resolution, then width, unlike the cost order), fails chosen jobs."""

    def __init__(self, fail_at: tuple[int, ...] = ()):
        self.fail_at = fail_at
        self.calls: list[tuple] = []

    @staticmethod
    def accuracy(job) -> float:
        return round(0.3 + job.resolution / 100 + job.spec.width / 20 - job.spec.depth / 50, 4)

    def __call__(self, config, jobs, progress=lambda done, total, index, outcome: None):
        from nas.proxy.task import ProxyResult

        self.calls.append((config, list(jobs)))
        outcomes = []
        for i, job in enumerate(jobs):
            outcome = (f"training loss became nan at step 3 of 44 (job {i})" if i in self.fail_at
                       else ProxyResult(self.accuracy(job), 1.0, 2.5))
            outcomes.append(outcome)
            progress(i + 1, len(jobs), i, outcome)
        return outcomes


def test_scored_search_trains_the_closest_networks_and_ranks_by_accuracy(tmp_path, capsys, monkeypatch):
    fake = FakeProxy(fail_at=(2,))  # the second phi = 1 network fails
    # 8 feasible triples, 6 distinct networks: 5 at 256 px, one at 224 px (the fifth closest)
    monkeypatch.setattr("nas.proxy.jobs.run_jobs", fake)
    table = tmp_path / "triples.csv"
    code, out, err = run_cli(capsys, "scale", "search", "--model", "efficientnet-edgetpu-S", "--config", EDGETPU_CONFIG,
                             "--grid", "1.0:1.3:0.1", "--gamma-grid", "1.0,1.15", "--max-scored", "5",
                             "--format", "csv", "-o", table)
    assert code == 0, err
    rows = _csv(out)
    assert rows == _csv(table.read_text())  # the file has every feasible triple, with the same columns
    assert {"proxy px", "accuracy", "proxy_s", "status"} <= set(rows[0])

    (config, jobs), = fake.calls  # one batch: the base and five networks, trainable in parallel
    assert len(jobs) == 6
    assert jobs[0].spec == S and jobs[0].resolution == 16
    assert {job.seed for job in jobs} == {0}  # run.seed of experiments/edgetpu.yaml, for every model
    assert config.proxy.width == 0.25
    base_macs = count_macs(S)
    gaps = [abs(count_macs(job.spec) / base_macs - 2) for job in jobs[1:]]
    assert gaps == sorted(gaps)  # the five closest to the target, closest first
    trained = {tuple(job.spec.layers()): job for job in jobs[1:]}
    assert len(trained) == 5
    for job in jobs[1:]:
        assert job.resolution == _expected_px(job.spec.resolution, 224, 16)
    assert {job.resolution for job in jobs[1:]} == {16, 18}  # 224 and 256 px: gamma 1.15 survives the proxy

    statuses = [r["status"] for r in rows]
    assert statuses == sorted(statuses, key=["scored", "not scored", "failed"].index)
    assert "not scored" in statuses and "failed" in statuses
    for row in rows:
        spec = scale_phi(S, 1, *_triple(row))
        job = trained.get(tuple(spec.layers()))
        assert int(row["proxy px"]) == _expected_px(spec.resolution, 224, 16)
        if row["status"] == "not scored":
            assert job is None and row["accuracy"] == ""
        elif row["status"] == "failed":
            assert job is jobs[2] and row["accuracy"] == ""
        else:
            assert float(row["accuracy"]) == FakeProxy.accuracy(job) and float(row["proxy_s"]) == 2.5
    scored = [(-float(r["accuracy"]), abs(float(r["MACs ratio"]) - 2)) for r in rows if r["status"] == "scored"]
    assert scored == sorted(scored)  # by accuracy, ties by closeness of the ratio
    ratio_order = sorted(rows, key=lambda r: abs(float(r["MACs ratio"]) - 2))
    assert [_triple(r) for r in rows] != [_triple(r) for r in ratio_order]  # accuracy, not cost, decided

    best = rows[0]
    assert (f"scale with: nas scale --phi 1 --alpha {float(best['alpha']):g} --beta {float(best['beta']):g} "
            f"--gamma {float(best['gamma']):g}") in err
    assert f"base (phi = 0) proxy accuracy: {FakeProxy.accuracy(jobs[0]):.4f} at 16 px" in err
    assert "ranked by proxy accuracy of the phi = 1 model: 5 of 6 distinct" in err and "1 failed" in err
    progress = [line for line in err.splitlines() if line.startswith("proxy ")]
    assert [line.split()[1] for line in progress] == [f"{k}/6" for k in range(1, 7)]
    assert all("ETA" in line for line in progress) and "FAILED (training loss became nan" in progress[2]
    assert "base (phi = 0)  16 px" in progress[0]


def test_scored_search_where_every_training_fails_exits_1(capsys, monkeypatch):
    monkeypatch.setattr("nas.proxy.jobs.run_jobs", FakeProxy(fail_at=tuple(range(10))))
    code, out, err = run_cli(capsys, "scale", "search", "--model", "efficientnet-edgetpu-S", "--config",
                             EDGETPU_CONFIG, "--grid", "1.0:1.3:0.1", "--gamma-grid", "1.0,1.15", "--max-scored", "2")
    assert code == 1
    assert "none of the 2 proxy trainings succeeded" in err and "scale with" not in out
    assert "base (phi = 0) proxy training failed at 16 px" in out


def _tiny_base(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"  # TINY's skeleton as a spec: 32 px, two blocks
    path.write_text(ModelSpec.from_dict(TINY["search_space"]["skeleton"]).to_yaml())
    return path


# Three feasible networks (target 2.1 +- 20%): width 1.4 (32 px), resolution 48 px, depth 2; the
# two closest (width 1.4 and 48 px) are trained, at 16 and 24 px on the tiny config's 16 px proxy.
TINY_GRID = ["--resolution-divisor", "8", "--alpha-grid", "1,2", "--beta-grid", "1.0,1.4", "--gamma-grid",
             "1.0,1.5", "--target", "2.1", "--tolerance", "0.2", "--max-scored", "2", "--format", "csv"]


def _check_tiny_rows(rows: list[dict]) -> list[dict]:
    assert [(_triple(r), r["status"], r["proxy px"]) for r in rows[2:]] == [((2.0, 1.0, 1.0), "not scored", "16")]
    scored = rows[:2]
    assert {(_triple(r), r["proxy px"]) for r in scored} == {((1.0, 1.4, 1.0), "16"), ((1.0, 1.0, 1.5), "24")}
    assert all(r["status"] == "scored" for r in scored)
    # top-1 over the tiny config's 96 validation images; the tests below also retrain and compare
    assert all(float(r["accuracy"]) == pytest.approx(round(float(r["accuracy"]) * 96) / 96, abs=5e-4) for r in scored)
    keys = [(-float(r["accuracy"]), abs(float(r["MACs ratio"]) - 2.1)) for r in scored]
    assert keys == sorted(keys)
    return scored


def _replayed(config_path: Path, base: ModelSpec, rows: list[dict]) -> list[float]:
    """The base and the rows' phi = 1 models trained again in this process with the rule written out."""
    from nas.search.config import load_config
    from nas.proxy.jobs import ProxyJob, run_jobs

    config = load_config(config_path)
    config = type(config)(**{**config.__dict__, "execution": type(config.execution)()})  # local backend
    specs = [base] + [scale_phi(base, 1, *_triple(r), 8) for r in rows]
    jobs = [ProxyJob(spec, _expected_px(spec.resolution, 32, 16), 3) for spec in specs]
    return [outcome.accuracy for outcome in run_jobs(config, jobs)]


def _base_accuracy(text: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith("base (phi = 0) proxy accuracy: "))
    return float(line.split(": ")[1].split()[0])


def test_scored_search_trains_for_real_on_the_local_backend(tmp_path, capsys):
    config = write_config(tmp_path / "tiny-config.yaml", tiny_config())
    base = _tiny_base(tmp_path)
    code, out, err = run_cli(capsys, "scale", "search", "--spec", base, "--config", config, *TINY_GRID,
                             "-o", tmp_path / "scored.csv")
    assert code == 0, err
    rows = _csv(out)
    assert rows == _csv((tmp_path / "scored.csv").read_text())
    scored = _check_tiny_rows(rows)
    assert "locally, one at a time" in err and "base at 16 px" in err
    assert len([line for line in err.splitlines() if line.startswith("proxy ")]) == 3
    # what was printed is what these models give when trained on their own (same spec, px and seed)
    replay = _replayed(config, get_spec(str(base)), scored)
    assert _base_accuracy(err) == pytest.approx(replay[0], abs=1e-4)
    assert [float(r["accuracy"]) for r in scored] == pytest.approx(replay[1:], abs=1e-4)


@pytest.mark.slow  # 30 s of Ray start-up; the scored search itself runs by default (locally, above)
def test_scored_search_on_a_local_ray_cluster(tmp_path):
    config = write_config(tmp_path / "tiny-ray.yaml",
                          tiny_config(execution={"backend": "ray", "max_concurrent": 2}))
    base = _tiny_base(tmp_path)
    # A cluster of its own (address: local), in the subprocess's own session (killable as a group).
    done = subprocess.run([sys.executable, "-m", "nas", "scale", "search", "--spec", str(base), "--config",
                           str(config), *TINY_GRID], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          start_new_session=True)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _csv(done.stdout)
    scored = _check_tiny_rows(rows)
    assert "as Ray tasks (local), at most 2 at once" in done.stderr
    assert "Ray cluster: 1 node(s)" in done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("proxy ")]
    assert [line.split()[1] for line in progress] == ["1/3", "2/3", "3/3"]
    replay = _replayed(config, get_spec(str(base)), scored)  # the Ray tasks trained the right models
    assert _base_accuracy(done.stderr) == pytest.approx(replay[0], abs=1e-4)
    assert [float(r["accuracy"]) for r in scored] == pytest.approx(replay[1:], abs=1e-4)
