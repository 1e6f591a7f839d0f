"""The whole pipeline through the CLI: search -> scale -> train -> export full-int8 -> eval of the int8 file.

The searched and scaled specs are full-size (224 px); they are trained here shrunk (width x 0.25,
32 px), as the search's proxy trains them, so that the test runs on a laptop CPU. A reduced version
(no search: the search's tiny skeleton as the base) is slow too: over the default run's ~60 s budget.
"""

import dataclasses
import re

import pytest

from search_space import get_spec
from tests.cli_helpers import run_cli
from tests.search_helpers import TINY, tiny_config, write_config


def _top1(text):
    return float(re.findall(r"Final: top1_acc = ([\d.]+)%", text)[-1])


def _train_export_eval(capsys, tmp_path, spec_file, epochs):
    """Train `spec_file`, check the run directory's float top-1, export full-int8, eval it: (float, int8)."""
    run_dir = tmp_path / "train"
    code, out, err = run_cli(capsys, "train", "--spec", spec_file, "--epochs", epochs, "--run-dir", run_dir)
    assert code == 0, err
    trained = float(out.strip().splitlines()[-1].rsplit(" ", 1)[1].rstrip("%"))
    code, out, err = run_cli(capsys, "eval", "--ckpt", run_dir, "--offline")
    assert code == 0, err
    float_top1 = _top1(out)
    assert abs(float_top1 - trained) < 0.3  # the same averaged weights, read back from the run directory
    code, out, err = run_cli(capsys, "export", "--ckpt", run_dir, "--output-tflite", tmp_path / "int8.tflite",
                             "--num-calibration", "300")
    assert code == 0, err
    assert "10 classes" in out
    code, out, err = run_cli(capsys, "eval", "--tflite", tmp_path / "int8.tflite", "--spec", spec_file, "--offline")
    assert code == 0, err
    assert "10 outputs" in out
    return float_top1, _top1(out)


@pytest.mark.slow  # 163 s with the machine shared four ways (the budget for the default run is ~60 s)
def test_scale_train_export_eval(tmp_path, capsys):
    """Reduced: the search's tiny skeleton as the searched base -> nas scale -> nas train -> int8 -> eval."""
    from search_space import ModelSpec, decode_block

    skeleton = TINY["search_space"]["skeleton"]
    base = ModelSpec(**{**skeleton, "blocks": tuple(decode_block(b) for b in skeleton["blocks"])})
    (tmp_path / "base.yaml").write_text(base.to_yaml())
    code, out, err = run_cli(capsys, "scale", "--phi", "1", "--spec", tmp_path / "base.yaml", "-o", tmp_path / "scaled")
    assert code == 0, err
    scaled = sorted((tmp_path / "scaled").glob("*.yaml"))[-1]
    assert get_spec(scaled).resolution == 32 and get_spec(scaled).width > 1.0
    float_top1, int8_top1 = _train_export_eval(capsys, tmp_path, scaled, 3)
    assert float_top1 > 25  # learning: chance is 10%
    assert abs(int8_top1 - float_top1) <= 2.0, (float_top1, int8_top1)


@pytest.mark.slow  # a search, a training run, a full-int8 conversion: about 2 minutes on 2 shared cores
def test_search_scale_train_export_eval(tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(run={"trials": 2}))
    code, out, err = run_cli(capsys, "search", "--config", config, "--run-dir", tmp_path / "search")
    assert code == 0, err
    code, out, err = run_cli(capsys, "scale", "--phi", "1", "--spec", tmp_path / "search" / "best.yaml",
                             "-o", tmp_path / "scaled")
    assert code == 0, err
    scaled = sorted((tmp_path / "scaled").glob("*.yaml"))[-1]
    spec = get_spec(scaled)
    small = dataclasses.replace(spec, width=spec.width * 0.25, resolution=32)
    (tmp_path / "small.yaml").write_text(small.to_yaml())
    float_top1, int8_top1 = _train_export_eval(capsys, tmp_path, tmp_path / "small.yaml", 4)
    assert float_top1 > 40  # learned: chance is 10%
    assert abs(int8_top1 - float_top1) <= 2.0, (float_top1, int8_top1)
