"""`nas search` config mistakes: one line naming the field's path, exit status 2, before any work."""

import subprocess
import sys

import pytest
import yaml

from tests.cli_helpers import assert_one_line_error, run_cli
from nas.search.config import config_from_dict, load_config
from tests.search_helpers import TINY, tiny_config, write_config


@pytest.mark.parametrize("sections, fragments", [
    ({"extra": {"a": 1}}, ["extra: unknown section", "known: run, search_space"]),
    ({"proxy": {"epoch": 2}}, ["proxy.epoch: unknown key", "epochs"]),
    ({"proxy": {"epochs": "two"}}, ["proxy.epochs: expected a whole number, got 'two'"]),
    ({"proxy": {"epochs": 0}}, ["proxy.epochs: must be at least 1, got 0"]),
    ({"proxy": {"width": -1}}, ["proxy.width: must be above 0.0"]),
    ({"run": {"trials": 2.5}}, ["run.trials: expected a whole number"]),
    ({"run": {"name": "a/b"}}, ["run.name: 'a/b' is not usable"]),
    ({"reward": {"beta": 0.5}}, ["reward.beta: must be at most 0.0, got 0.5"]),
    ({"reward": {"kind": "strict"}}, ["reward.kind: 'strict' is not one of soft, hard, absolute"]),
    ({"data": {"source": "directory", "path": "/no/such/dir"}}, ["data.path: directory '/no/such/dir' does not exist"]),
    ({"data": {"source": "imagenet"}}, ["data.path: the 'imagenet' source needs one"]),
    ({"data": {"source": "offline", "path": "x"}}, ["data.path: not used by the 'offline' source"]),
    ({"data": {"source": "tfds", "name": "mnist"}}, ["data.source: 'tfds' needs TensorFlow Datasets",
                                                      "pip install tensorflow-datasets"]),
    ({"data": {"source": "web"}}, ["data.source: unknown data source 'web' (known: offline, mnist, directory, tfds, imagenet)"]),
    ({"controller": {"name": "foo"}}, ["controller.name: unknown controller 'foo'",
                                       "mnas, reinforce, evolution, random"]),
    ({"controller": {"name": "evolution", "learning_rate": 0.1}},
     ["controller.learning_rate: unknown key", "population_size, sample_size"]),
    ({"controller": {"batch_size": 0}}, ["controller.batch_size: must be at least 1"]),
    ({"latency": {"source": "abacus"}}, ["latency.source: unknown latency source 'abacus'", "sim"]),
    ({"latency": {"target_ms": None, "target_model": "efficientnet-edgetpu-XL"}},
     ["latency.target_model: unknown model 'efficientnet-edgetpu-XL'"]),
    ({"latency": {"target_model": "efficientnet-edgetpu-S"}}, ["latency: give target_ms or target_model, not both"]),
    ({"search_space": {"choices": {"kernel": [4]}}}, ["search_space.choices.kernel: option 4 is not valid"]),
])
def test_bad_config_is_one_line_naming_the_field_and_nothing_is_started(tmp_path, capsys, sections, fragments):
    data = tiny_config()
    for section, values in sections.items():  # merged into the tiny config's section; a new controller replaces it
        data[section] = values if "name" in values or section not in data else {**data[section], **values}
    config = write_config(tmp_path / "bad.yaml", data)
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "search", "--config", str(config), "--runs-dir", str(runs))
    assert_one_line_error(code, err, *fragments)
    assert not runs.exists()  # failed before any work: no run directory


def test_missing_and_malformed_config_files(tmp_path, capsys):
    code, _, err = run_cli(capsys, "search", "--config", str(tmp_path / "none.yaml"))
    assert_one_line_error(code, err, "config file", "does not exist")
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: {seed: 1\nproxy: [")
    code, _, err = run_cli(capsys, "search", "--config", str(bad))
    assert_one_line_error(code, err, "not valid YAML at line")


def test_cli_arguments_are_checked(capsys):
    code, _, err = run_cli(capsys, "search", "--config", "x.yaml", "--trials", "0")
    assert_one_line_error(code, err, "--trials", "must be at least 1")
    code, _, err = run_cli(capsys, "search", "--resume")
    assert_one_line_error(code, err, "give --config FILE")


def test_resume_needs_a_run_and_a_new_run_needs_a_fresh_directory(tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", tiny_config())
    code, _, err = run_cli(capsys, "search", "--config", str(config), "--runs-dir", str(tmp_path), "--resume")
    assert_one_line_error(code, err, "nothing to resume in", "start the run without --resume")
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.yaml").write_text(yaml.safe_dump(config_from_dict(TINY, "tiny").to_dict()))
    code, _, err = run_cli(capsys, "search", "--config", str(config), "--runs-dir", str(tmp_path))
    assert_one_line_error(code, err, "already holds a run", "--resume", "--name")


def test_resume_with_a_different_config_names_the_difference(tmp_path, capsys):
    run = tmp_path / "tiny"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(config_from_dict(TINY, "tiny").to_dict()))
    changed = write_config(tmp_path / "tiny.yaml", tiny_config(proxy={"epochs": 3}))
    code, _, err = run_cli(capsys, "search", "--config", str(changed), "--runs-dir", str(tmp_path), "--resume")
    assert_one_line_error(code, err, "differs from", "proxy.epochs (1 in the run, 3 now)")


def test_defaults_and_resolved_config_round_trip(tmp_path):
    config = load_config(write_config(tmp_path / "mine.yaml", {}))
    assert config.run.name == "mine"  # the file's name
    assert config.controller == "mnas" and config.data.source == "offline" and config.latency.source == "sim"
    assert config.latency.target_model == "efficientnet-edgetpu-S"
    assert config.space.cardinalities == [2, 2, 2, 3, 3, 2, 1] * 6
    again = config_from_dict(yaml.safe_load(config.to_yaml()), "other")
    assert again.to_dict() == config.to_dict()  # the resolved config is itself a valid config


def test_the_embedded_default_config_is_valid():
    config = load_config("experiments/edgetpu.yaml")
    assert config.run.name == "edgetpu"
    assert config.space.skeleton.name == "efficientnet-edgetpu-S"
    assert config.latency.source == "sim" and config.data.source == "offline"
    assert config.controller == "mnas"


def test_the_bayesian_experiment_is_the_default_search_but_for_its_controller():
    default = load_config("experiments/edgetpu.yaml").to_dict()
    bayesian = load_config("experiments/edgetpu_bayesian.yaml").to_dict()
    assert bayesian["controller"]["name"] == "keras-tuner-bayesian"
    differing = {key for key in default if default[key] != bayesian[key]}
    assert differing <= {"run", "controller", "execution"}, differing
    assert {k: v for k, v in bayesian["run"].items() if k != "name"} == \
        {k: v for k, v in default["run"].items() if k != "name"}


def test_dry_run_shows_space_size_objective_and_samples_without_tensorflow():
    code = ("import sys\n"
            "from nas.cli import main\n"
            "assert main(['search', '--config', 'experiments/edgetpu.yaml', '--dry-run', '--samples', '3']) == 0\n"
            "assert 'tensorflow' not in sys.modules, 'dry run imported TensorFlow'\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "8,916,100,448,256 architectures" in out  # 144 ** 6: (2*2*2*3*3*2*1) per stage
    assert "target 5.139 ms (efficientnet-edgetpu-S)" in out
    assert "acc * (lat / " in out and "w = 0 under the target, -2 over (hard)" in out  # the config's reward
    samples = out.split("random samples")[1].strip().splitlines()[3:]  # after "(seed 0):", header, rule
    assert len(samples) == 3
    for line in samples:  # params, MACs and predicted latency for each
        fields = line.split()
        assert float(fields[1].replace(",", "")) > 1e5 and float(fields[2].replace(",", "")) > 10
        assert float(fields[3]) > 0.5


def test_unreadable_data_stops_the_run_before_its_directory_is_written(tmp_path, capsys):
    images = tmp_path / "images" / "cat"
    images.mkdir(parents=True)
    (images / "0.jpg").write_bytes(b"not a jpeg")
    config = write_config(tmp_path / "tiny.yaml",
                          tiny_config(data={"source": "directory", "path": str(tmp_path / "images"),
                                            "max_train": None, "max_val": None}))
    code, _, err = run_cli(capsys, "search", "--config", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, "data.path: cannot read image", "0.jpg")
    assert not (tmp_path / "runs").exists()
