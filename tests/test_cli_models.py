import csv
import io
import json
import subprocess
import sys

import yaml

from search_space import REGISTRY, ModelSpec, count_params
from tests.cli_helpers import assert_one_line_error, run_cli


def test_models_lists_every_registered_model_with_counts(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    for name, spec in REGISTRY.items():
        line = next(l for l in out.splitlines() if l.startswith(name + " "))
        assert f"{count_params(spec):,d}" in line


def test_models_csv_and_json_are_machine_readable(capsys):
    _, out, _ = run_cli(capsys, "models", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == list(REGISTRY)
    assert int(rows[0]["params"]) == count_params(REGISTRY[rows[0]["name"]])
    _, out, _ = run_cli(capsys, "models", "--format", "json")
    assert {r["name"]: r["resolution"] for r in json.loads(out)}["efficientnet-edgetpu-L"] == 300


def test_models_show_prints_block_strings_and_layers(capsys):
    code, out, _ = run_cli(capsys, "models", "show", "efficientnet-edgetpu-S")
    assert code == 0
    assert "r1_k3_s11_e4_i24_o24_c1_noskip" in out and "r2_k5_s22_e8_i144_o192" in out
    assert "112x112x32" in out  # the first block's real input: the stem's 32 channels
    _, out, _ = run_cli(capsys, "models", "show", "efficientnet-edgetpu-S", "--format", "json")
    rows = json.loads(out)
    assert len(rows) == 20 and rows[1]["expanded"] == 96


def test_export_spec_writes_yaml_accepted_wherever_a_name_is(capsys, tmp_path):
    path = tmp_path / "s.yaml"
    code, _, _ = run_cli(capsys, "models", "export-spec", "efficientnet-edgetpu-M", "-o", str(path))
    assert code == 0
    assert ModelSpec.from_dict(yaml.safe_load(path.read_text())) == REGISTRY["efficientnet-edgetpu-M"]
    code, out, _ = run_cli(capsys, "models", "show", str(path))
    assert code == 0 and "efficientnet-edgetpu-M" in out


def test_unknown_model_is_one_line_and_exit_2(capsys):
    code, _, err = run_cli(capsys, "models", "show", "nosuch")
    assert_one_line_error(code, err, "unknown model 'nosuch'")
    code, _, err = run_cli(capsys, "models", "show", "EfficientNet-EdgeTPU-S")
    assert_one_line_error(code, err, "did you mean 'efficientnet-edgetpu-S'")


def test_malformed_block_string_in_a_spec_file(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("blocks:\n  - r1_k3_s11_e1_i32_o16\n  - r2_k3_s12_e6_i16_o24\n")
    code, _, err = run_cli(capsys, "models", "show", str(path))
    assert_one_line_error(code, err, str(path), "blocks[1]", "'s12'")


def test_malformed_spec_yaml(capsys, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("blocks: [r1_k3_s11_e1_i32_o16\nwidth: 1.0\n")
    code, _, err = run_cli(capsys, "models", "show", str(path))
    assert_one_line_error(code, err, "not valid YAML")
    path.write_text("blocks: [r1_k3_s11_e1_i32_o16]\nresolution: big\n")
    code, _, err = run_cli(capsys, "models", "show", str(path))
    assert_one_line_error(code, err, "resolution: expected int")
    code, _, err = run_cli(capsys, "models", "show", str(tmp_path / "absent.yaml"))
    assert_one_line_error(code, err, "does not exist")


def test_unwritable_output_and_bad_arguments(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cli(capsys, "models", "export-spec", "mnasnet-a1", "-o", str(blocker / "x.yaml"))
    assert_one_line_error(code, err, "cannot write")
    code, _, err = run_cli(capsys, "models", "--format", "xml")
    assert_one_line_error(code, err, "invalid choice")


def test_listing_models_does_not_import_tensorflow():
    code = "import sys; from nas.cli import main; main(['models']); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_console_script_runs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "nas", "models", "show", "mnasnet-a1"], capture_output=True, text=True)
    assert out.returncode == 0 and "r1_k3_s11_e6_i160_o320" in out.stdout


def test_models_table_shows_predicted_edge_tpu_latency_ordered_s_m_l(capsys):
    _, out, _ = run_cli(capsys, "models", "--format", "json")
    latency = {r["name"]: r["latency_ms"] for r in json.loads(out)}
    assert 0 < latency["efficientnet-edgetpu-S"] < latency["efficientnet-edgetpu-M"] < latency["efficientnet-edgetpu-L"]
    code, _, err = run_cli(capsys, "models", "--latency", "nosuch")
    assert_one_line_error(code, err, "unknown latency source 'nosuch'")
    _, out, _ = run_cli(capsys, "models", "--latency", "none", "--format", "csv")
    assert "latency" not in out.splitlines()[0]


def test_tensorflow_import_noise_is_filtered_from_the_cli_stderr_but_other_lines_kept():
    code = ("import sys\nfrom nas.cli import native_stderr_filtered\nwith native_stderr_filtered():\n"
            "    import tensorflow\n    print('a real message', file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr == "a real message\n"


def test_models_csv_and_json_give_exact_numbers_with_units_in_the_names(capsys):
    from latency import make_latency_model
    from search_space import count_macs, get_spec

    spec = get_spec("efficientnet-edgetpu-S")
    _, out, _ = run_cli(capsys, "models", "--format", "json")
    row = {r["name"]: r for r in json.loads(out)}["efficientnet-edgetpu-S"]
    assert row["macs"] == count_macs(spec) == 1_788_732_288  # the published 1.79 G (1001 classes)
    assert row["params"] == count_params(spec)
    assert row["latency_ms"] == make_latency_model("sim").predict_ms(spec) and row["latency_source"] == "sim"
    assert "MACs (M)" not in row
    _, out, _ = run_cli(capsys, "models", "--format", "csv")
    csv_row = {r["name"]: r for r in csv.DictReader(io.StringIO(out))}["efficientnet-edgetpu-S"]
    assert int(csv_row["macs"]) == 1_788_732_288 and float(csv_row["latency_ms"]) == row["latency_ms"]
    _, out, _ = run_cli(capsys, "models")
    assert "MACs (M)" in out.splitlines()[0] and "1,788.7" in out  # the table keeps the rounded display
