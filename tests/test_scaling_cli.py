"""`nas scale` and `nas scale search` through the CLI: tables, written specs, base choice, bad input."""

from __future__ import annotations

import csv
import io
import os

import pytest

import latency.base
import latency.sources  # noqa: F401  (registers the built-in sources before tests add or remove one)
from nas.cli import main
from search_space import REGISTRY, count_macs, get_spec
from scaling import nominal_cost_factor, scale_phi
from tests.cli_helpers import assert_one_line_error, run_cli

S = REGISTRY["efficientnet-edgetpu-S"]


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


class MacsLatency:
    """A latency model for the tests: one millisecond per 100 M MACs."""

    name = "macs-ms"

    def predict_ms(self, spec):
        return count_macs(spec) / 1e8


@pytest.fixture
def macs_latency(monkeypatch):
    monkeypatch.setitem(latency.base._FACTORIES, "test-macs", lambda argument: MacsLatency())
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
    for name in ("efficientnet-edgetpu-S", "efficientnet-edgetpu-M", "efficientnet-edgetpu-L"):
        assert get_spec(str(tmp_path / f"{name}.yaml")) == REGISTRY[name]


def test_latency_column_from_the_requested_source(tmp_path, capsys, macs_latency):
    assert main(["scale", "--phi", "1", "--latency", macs_latency, "-o", str(tmp_path), "--format", "csv"]) == 0
    (row,) = _csv(capsys.readouterr().out)
    spec = scale_phi(S, 1)
    assert float(row["latency ms (macs-ms)"]) == pytest.approx(count_macs(spec) / 1e8, abs=1e-3)
    assert float(row["latency ratio"]) == pytest.approx(float(row["MACs ratio"]), abs=2e-3)


def test_default_latency_source_unavailable_leaves_the_column_out(tmp_path, capsys, monkeypatch):
    monkeypatch.delitem(latency.base._FACTORIES, "sim", raising=False)
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
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("blocks: [unclosed\n")
    (tmp_path / "wrong.yaml").write_text("blocks: [r1_k3_s11_e1_i32_o16]\ncolour: red\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "nas: error: ", message)
    assert not (tmp_path / "scaled").exists()
