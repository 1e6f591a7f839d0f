"""Lookup tables, calibration and measurement on a tiny space (2 stages at 32x32): real conversions."""

import random
import subprocess
import sys

import numpy as np
import pytest
import yaml

from latency.calibration import score
from latency.lookup_table import LookupTable, LookupTableModel, SpaceTable
from nas.cli import main
from search_space.space import SearchSpace

TINY = {
    "search_space": {
        "skeleton": {"name": "tiny", "blocks": ["r1_k3_s11_e4_i16_o16_c1_noskip", "r2_k3_s22_e4_i16_o24"],
                     "stem_filters": 16, "head_filters": 64, "num_classes": 10, "resolution": 32},
        "choices": {"kernel": [3, 5], "expand_ratio": [4], "filter_multiplier": [1.0],
                    "repeats_delta": [0, 1], "skip": [True]},
    }
}
FAST = ["--warmup", "1", "--repeats", "3", "--probe-tolerance", "1000"]  # a loaded test machine: never "too noisy"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lut")
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    lut = tmp / "lut.csv"
    assert main(["latency", "build-lut", "--config", str(config), "-o", str(lut), *FAST]) == 0
    space = SearchSpace.from_dict(TINY["search_space"])
    return config, lut, space


def test_table_covers_every_layer_and_names_its_source(built):
    _, lut, space = built
    table = LookupTable.load(lut)
    assert set(table.entries) == {layer.key for layer in space.possible_layers()}
    assert table.header["source"] == "tflite-cpu" and table.header["quantization"] == "int8"
    assert "tensorflow" in table.header["versions"]
    assert all(v["min_ms"] <= v["median_ms"] <= v["max_ms"] and v["ms"] > 0 for v in table.entries.values())
    table.check_space(space, 32)
    # the probe was timed with every batch and each entry keeps its batch's probe
    best = float(table.header["probe_best_ms"])
    assert best > 0 and all(v["probe_ms"] >= best for v in table.entries.values())
    assert table.fingerprint.source == "tflite-cpu" and table.fingerprint.quantization == "int8"


def test_layers_are_timed_as_inside_a_model(built):
    """int8 in and out (no quantise ops of their own), and the timed call is a bare invoke that computes
    what the signature runner computes."""
    from latency.layer_models import layers_to_tflite, signature_invokes
    from search_space.tflite import load_interpreter

    _, _, space = built
    layers = space.possible_layers()[1:3]
    content = layers_to_tflite(layers, space.skeleton)
    interp = load_interpreter(content)
    assert "QUANTIZE" not in {op["op_name"] for op in interp._get_ops_details()}
    invokes = signature_invokes(content, len(layers))
    for i, invoke in enumerate(invokes):
        runner = interp.get_signature_runner(f"l{i}")
        assert runner.get_input_details()["x"]["dtype"] == np.int8
    # the bare invoke runs the layer: its output is the runner's on the same input
    from latency.measure import random_inputs

    interp2 = load_interpreter(content)
    runner = interp2.get_signature_runner("l0")
    (x,) = random_inputs([runner.get_input_details()["x"]], seed=0)
    (expected,) = runner(x=x).values()
    bare = signature_invokes(content, len(layers))
    bare[0]()
    wrapper_interp = bare[0].func.__self__
    (out_index,) = runner._signature_def["outputs"].values()
    assert np.array_equal(wrapper_interp.GetTensor(out_index, runner._subgraph_index), expected)


def test_rerun_resumes_and_keeps_measured_entries(built, tmp_path, capsys):
    config, lut, space = built
    table = LookupTable.load(lut)
    keep = dict(list(table.entries.items())[:-2])  # as if interrupted before the last two layers
    partial = LookupTable(table.header, keep, None)
    partial.save(tmp_path / "partial.csv")
    capsys.readouterr()
    assert main(["latency", "build-lut", "--config", str(config), "-o", str(tmp_path / "partial.csv"), *FAST]) == 0
    assert "2 to profile" in capsys.readouterr().err
    resumed = LookupTable.load(tmp_path / "partial.csv")
    assert len(resumed.entries) == len(table.entries)
    assert all(resumed.entries[k] == pytest.approx(v) for k, v in keep.items())


def test_prediction_sums_entries_and_the_vectorised_path_agrees(built):
    _, lut, space = built
    table = LookupTable.load(lut)
    model = LookupTableModel(table)
    rng = random.Random(1)
    decisions = [space.sample(rng) for _ in range(20)]
    specs = [space.to_spec(d) for d in decisions]
    sums = [sum(table.entries[layer.key]["ms"] for layer in s.layers()) for s in specs]
    assert [model.predict_ms(s) for s in specs] == pytest.approx(sums)
    assert SpaceTable(table, space).predict_ms(np.array(decisions)) == pytest.approx(sums)


def test_lut_prediction_does_not_import_tensorflow(built):
    _, lut, _ = built
    code = (f"import sys; from latency import make_latency_model; from search_space import get_spec; "
            f"import yaml; from search_space.space import SearchSpace; "
            f"s = SearchSpace.from_dict(yaml.safe_load(open({str(built[0])!r}))['search_space']); "
            f"m = make_latency_model('lut:{lut}'); print(m.predict_ms(s.to_spec([0] * len(s.cardinalities)))); "
            f"assert 'tensorflow' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.slow  # four whole-model conversions; the sim-table calibration in test_latency_cli is fast
def test_calibrate_fits_saves_and_reports(built, tmp_path, capsys):
    config, lut, space = built
    copy = tmp_path / "lut.csv"
    copy.write_text(lut.read_text())
    args = ["latency", "calibrate", "--config", str(config), "--lut", str(copy), "--count", "4", *FAST]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "held-out" in out and "Spearman" in out and "within +-10%" in out
    table = LookupTable.load(copy)
    assert table.correction is not None
    records = (tmp_path / "lut.calibration.csv").read_text().splitlines()
    assert records[0] == "# format: edgetpu-nas latency measurements v2" and records[1].startswith("# fingerprint: ")
    assert records[4].startswith("model,decisions,ms,min_ms,median_ms,max_ms,repeats,probe_ms") and len(records) == 9
    # the calibrated model predicts the correction of the table sum
    model = LookupTableModel(table)
    spec = space.to_spec(space.sample(random.Random(3)))
    assert model.name.startswith("lut:") and "uncalibrated" not in model.name
    assert model.predict_ms(spec) != pytest.approx(model.sum_ms(spec))
    # a re-run measures nothing new
    assert main(args) == 0
    assert "0 to measure" in capsys.readouterr().err


def test_scores():
    measured = np.linspace(10, 40, 30)
    s = score(measured * 1.05, measured)
    assert s.mape_percent == pytest.approx(5) and s.within_10_percent == 100 and s.spearman == pytest.approx(1)
    bad = score(measured[::-1], measured)
    assert bad.within_10_percent < 100 and bad.spearman < 0.5
