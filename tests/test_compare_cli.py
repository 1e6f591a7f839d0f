"""`nas compare` refuses what it cannot compare in one line, before evaluating anything.

Its working path (two exported int8 models on one image folder) runs in tests/test_guide_photos.py.
"""

from tests.cli_helpers import assert_one_line_error, run_cli


def test_compare_names_the_file_it_cannot_use(tmp_path, capsys):
    (tmp_path / "val" / "bolt").mkdir(parents=True)
    good = tmp_path / "missing.tflite"
    compiled = tmp_path / "mine_int8_edgetpu.tflite"
    compiled.write_bytes(b"x")
    code, _, err = run_cli(capsys, "compare", compiled, "--data-dir", tmp_path / "val")
    assert_one_line_error(code, err, "compiled for the Edge TPU", "'mine_int8.tflite'")
    code, _, err = run_cli(capsys, "compare", tmp_path / "spec.yaml", "--data-dir", tmp_path / "val")
    assert_one_line_error(code, err, "is not a .tflite file")
    code, _, err = run_cli(capsys, "compare", good, "--data-dir", tmp_path / "val")
    assert_one_line_error(code, err, f"model file '{good}' does not exist")
    code, _, err = run_cli(capsys, "compare", "--data-dir", tmp_path / "val")
    assert code == 2 and "the following arguments are required: MODEL.tflite" in err
