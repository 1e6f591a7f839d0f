"""Tables and measurements never mix machines or runs; the probe re-times slow batches and stops a noisy run.

Fast: tables here are built on the `sim` source (the same files and checks as CPU tables, no TensorFlow).
"""

import json
import os

import pytest

from latency.calibration import fit_correction
from latency.fingerprint import Fingerprint
from latency.lookup_table import LookupTable
from latency.measure import pinned, time_warm
from latency.profiling import (NoisyMachine, Run, SimProfiler, build_table, measure_architectures, read_records,
                               write_records)
from nas.cli import main
from search_space.errors import UserError
from search_space.space import SearchSpace
from tests.test_latency_cli import build_sim_table, one_line_error

TINY = {"search_space": {
    "skeleton": {"name": "tiny", "blocks": ["r1_k3_s11_e4_i16_o16_c1_noskip", "r2_k3_s22_e4_i16_o24"],
                 "stem_filters": 16, "head_filters": 64, "num_classes": 10, "resolution": 32},
    "choices": {"kernel": [3, 5], "expand_ratio": [4], "filter_multiplier": [1.0], "repeats_delta": [0, 1],
                "skip": [True, False]}}}


@pytest.fixture
def table(tmp_path):
    return build_sim_table(tmp_path, TINY)


def _spec_file(config):
    """A candidate of the tiny space as a spec file, for `nas latency predict`."""
    space = SearchSpace.from_dict(TINY["search_space"])
    path = config.with_name("candidate.yaml")
    path.write_text(space.to_spec([0] * len(space.cardinalities)).to_yaml())
    return str(path)


def _edit_fingerprint(path, **changes):
    """As if the file had been measured on another machine: its fingerprint line with other values."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# fingerprint: "):
            data = json.loads(line.split(": ", 1)[1])
            lines[i] = "# fingerprint: " + json.dumps(dict(data, **changes), sort_keys=True)
    path.write_text("\n".join(lines) + "\n")


def test_table_and_measurements_carry_fingerprint_and_run(table, capsys):
    config, lut = table
    loaded = LookupTable.load(lut)
    assert loaded.fingerprint == SimProfiler("sim").fingerprint()
    assert loaded.header["run"]
    assert main(["latency", "calibrate", "--config", str(config), "--lut", str(lut), "--count", "8"]) == 0
    run, rows = read_records(lut.with_suffix(".calibration.csv"))
    assert run.id == loaded.header["run"] and run.fingerprint == loaded.fingerprint and len(rows) == 8
    text = lut.with_suffix(".calibration.csv").read_text().splitlines()
    assert text[0] == "# format: edgetpu-nas latency measurements v2" and text[1].startswith("# fingerprint: {")
    assert LookupTable.load(lut).header["calibrated_run"] == run.id
    capsys.readouterr()
    assert main(["latency", "predict", _spec_file(config), "--source", f"lut:{lut}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("table measured on Edge TPU cost model") and run.id in out[1] and "calibrated" in out[1]


def test_resume_across_fingerprints_is_refused(table, capsys):
    config, lut = table
    table_ = LookupTable.load(lut)
    table_.entries = dict(list(table_.entries.items())[:2])  # an interrupted build ...
    table_.save()
    _edit_fingerprint(lut, isa="avx2 avx512f avx512_vnni")  # ... on another machine
    before = lut.read_text()
    assert main(["latency", "build-lut", "--config", str(config), "--source", "sim", "-o", str(lut)]) == 2
    one_line_error(capsys, f"lookup table '{lut}' was measured on another machine", "isa avx2 avx512f avx512_vnni, not any")
    assert lut.read_text() == before  # nothing merged, nothing lost
    assert main(["latency", "build-lut", "--config", str(config), "--source", "sim", "-o", str(lut), "--refine"]) == 2
    one_line_error(capsys, "another machine")


def test_calibration_set_from_another_machine_or_run_is_refused(table, capsys):
    config, lut = table
    args = ["latency", "calibrate", "--config", str(config), "--lut", str(lut), "--count", "8"]
    assert main(args) == 0
    records = lut.with_suffix(".calibration.csv")
    _edit_fingerprint(records, device="Cortex-A76", cores=4)
    capsys.readouterr()
    assert main(args) == 2
    one_line_error(capsys, "measurements", "another machine", "device Cortex-A76", "cores 4, not 0")
    # same machine, another run (a table rebuilt on another day against old measurements)
    space = SearchSpace.from_dict(TINY["search_space"])
    run, rows = read_records(records)
    other = Run(LookupTable.load(lut).fingerprint, "20261203T101010Z-abcdef")
    write_records(records, other, rows)
    assert main(args) == 2
    one_line_error(capsys, "measurement run 20261203T101010Z-abcdef", "never combined", "--measurements")
    with pytest.raises(UserError, match="never combined"):
        measure_architectures(space, 32, 8, 0, SimProfiler("sim"), records, Run.from_header(LookupTable.load(lut).header, "t"))


def test_table_from_another_machine_is_not_calibrated_here(table, capsys):
    config, lut = table
    _edit_fingerprint(lut, litert="1.0.0")
    assert main(["latency", "calibrate", "--config", str(config), "--lut", str(lut), "--count", "8"]) == 2
    one_line_error(capsys, "another machine", "litert 1.0.0, not n/a", "calibrate on the machine")


def test_predict_refuses_a_calibration_of_another_run_and_old_files(table, capsys):
    config, lut = table
    assert main(["latency", "calibrate", "--config", str(config), "--lut", str(lut), "--count", "8"]) == 0
    lut.write_text(lut.read_text().replace("# calibrated_run: ", "# calibrated_run: 1999"))
    capsys.readouterr()
    assert main(["latency", "predict", _spec_file(config), "--source", f"lut:{lut}"]) == 2
    one_line_error(capsys, "calibration of lookup table", "never combined")
    old = lut.read_text().replace("lookup table v2", "lookup table v1")
    lut.write_text(old)
    assert main(["latency", "predict", _spec_file(config), "--source", f"lut:{lut}"]) == 2
    one_line_error(capsys, "no machine fingerprint (format v1)", "rebuild it")
    records = lut.with_suffix(".calibration.csv")
    records.write_text("\n".join(line for line in records.read_text().splitlines() if not line.startswith("#")))
    lut.write_text(old.replace("lookup table v1", "lookup table v2"))
    assert main(["latency", "calibrate", "--config", str(config), "--lut", str(lut), "--count", "8"]) == 2
    one_line_error(capsys, "no machine fingerprint", "delete the file")


class ScriptedProbe(SimProfiler):
    """The cost model's layers, with the probe times a loaded machine would give (scripted)."""

    def __init__(self, probes):
        super().__init__("sim")
        self.probes, self.timed = list(probes), 0

    def probe_ms(self):
        return self.probes.pop(0)

    def time(self, prepared):
        self.timed += 1
        return prepared


def test_a_batch_with_a_slow_probe_is_timed_again(tmp_path):
    space = SearchSpace.from_dict(TINY["search_space"])
    profiler = ScriptedProbe([1.0, 1.01, 1.0, 1.3, 1.0, 1.02] + [1.0] * 100)  # batch 2's probe after: 30% slow
    profiler.batch_layers = len(space.possible_layers()) // 2 + 1
    table = build_table(space, 32, profiler, tmp_path / "lut.csv")
    assert profiler.timed == 3  # two batches, the second timed twice
    assert float(table.header["probe_best_ms"]) == 1.0
    assert sorted({v["probe_ms"] for v in table.entries.values()}) == [1.01, 1.02]  # each row keeps its probe


def test_a_run_whose_probe_will_not_settle_stops_and_keeps_its_work(tmp_path, capsys):
    space = SearchSpace.from_dict(TINY["search_space"])
    profiler = ScriptedProbe([1.0, 1.0] + [1.0, 1.25] * 2 + [1.0, 1.12, 1.3, 1.0])
    profiler.batch_layers = len(space.possible_layers()) // 2 + 1
    with pytest.raises(NoisyMachine, match=r"^machine too noisy: probe spread 12% over the run's best 1.000 ms"):
        build_table(space, 32, profiler, tmp_path / "lut.csv")
    assert len(LookupTable.load(tmp_path / "lut.csv").entries) == profiler.batch_layers  # the first batch is saved


def test_time_warm_warms_each_model_right_before_its_block_and_pins_one_core():
    calls = []
    cores = []

    def make(name):
        def invoke():
            calls.append(name)
            if hasattr(os, "sched_getaffinity"):
                cores.append(len(os.sched_getaffinity(0)))
        return invoke

    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    timings = time_warm([make("a"), make("b")], warmup=2, repeats=4, rounds=2)
    assert calls == ["a"] * 4 + ["b"] * 4 + ["a"] * 4 + ["b"] * 4
    assert [t.repeats for t in timings] == [4, 4]
    if before is not None:
        assert set(cores) == {1} and os.sched_getaffinity(0) == before
        with pinned(threads=2) as core:
            assert core is None


def test_calibration_is_a_single_scale_unless_more_terms_earn_it():
    import numpy as np

    rng = np.random.default_rng(0)
    features = np.column_stack([rng.uniform(10, 50, 30), rng.integers(10, 25, 30), rng.uniform(0.5, 2, 30)])
    noisy = 0.8 * features[:, 0] * (1 + rng.normal(0, 0.03, 30))
    noisy[3] *= 1.6  # one model measured under load: the robust fit is not pulled by it
    calibration = fit_correction(features, noisy)
    assert calibration.correction.terms == ("table_ms",)
    assert calibration.correction.coef[0] == pytest.approx(0.8, rel=0.02) and calibration.correction.intercept == 0
    # a real per-layer cost (each layer's own overhead) is earned on held-out rows and kept
    overhead = 0.8 * features[:, 0] + 0.4 * features[:, 1]
    assert fit_correction(features, overhead).correction.terms == ("table_ms", "layers")
    # the exact model with an intercept: found; on the way, a term whose held-out ranking is worse than the
    # plain sum's is refused even where it lowers the error
    exact = 1.2 * features[:, 0] + 0.3 * features[:, 1] + 2.0
    calibration = fit_correction(features, exact)
    assert calibration.correction.terms == ("table_ms", "layers", "intercept")
    assert calibration.correction.coef == pytest.approx((1.2, 0.3, 0.0), abs=1e-6)
    verdicts = {c.terms: c for c in calibration.candidates}
    refused = verdicts[("table_ms", "macs_g")]
    assert refused.verdict.startswith("refused: leave-one-out Spearman below the plain sum's")
    assert refused.loo_loss < verdicts[("table_ms",)].loo_loss and refused.loo_spearman < calibration.sum_spearman


def test_fingerprint_describes_the_machine():
    fp = Fingerprint.of_this_machine("tflite-cpu", 1, "int8")
    assert fp.cores == os.cpu_count() and fp.tensorflow and fp.litert
    assert Fingerprint.from_json(fp.to_json(), "x") == fp
    assert "1 thread" in fp.describe() and fp.isa in fp.describe()
