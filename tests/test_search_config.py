"""`nas search` config mistakes: one line naming the field's path, exit status 2, before any work."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tests.cli_helpers import assert_one_line_error, run_cli
from nas.search.config import EXPERIMENTS as SHIPPED, config_from_dict, load_config
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


def test_cli_arguments_are_checked(tmp_path, capsys):
    code, _, err = run_cli(capsys, "search", "--config", "x.yaml", "--trials", "0")
    assert_one_line_error(code, err, "--trials", "must be at least 1")
    code, _, err = run_cli(capsys, "search", "--resume", "--runs-dir", tmp_path)  # the default config's run
    assert_one_line_error(code, err, f"nothing to resume in '{tmp_path / 'edgetpu'}'")
    assert list(tmp_path.iterdir()) == []


def test_a_shipped_config_is_found_by_name_and_an_unknown_name_lists_them(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no experiments/ here: the names come from the package
    by_name, by_path = load_config("edgetpu_bayesian"), load_config(SHIPPED / "edgetpu_bayesian.yaml")
    assert by_name.to_dict() == by_path.to_dict() and by_name.run.name == "edgetpu_bayesian"
    assert load_config().to_dict() == load_config(SHIPPED / "edgetpu.yaml").to_dict()  # the default
    code, out, err = run_cli(capsys, "search", "--config", "edgetpu", "--dry-run", "--samples", "1")
    assert code == 0 and "8,916,100,448,256 architectures" in out, err
    code, _, err = run_cli(capsys, "search", "--config", "edgetpu_imagenett", "--dry-run")
    assert_one_line_error(code, err, "unknown config 'edgetpu_imagenett'",
                          "(shipped: edgetpu, edgetpu_bayesian, edgetpu_imagenet")
    (tmp_path / "edgetpu.yaml").write_text(yaml.safe_dump(tiny_config(run={"name": "mine"})))
    assert load_config("edgetpu.yaml").run.name == "mine"  # a file of that name wins over the shipped one


def test_relative_paths_in_a_config_are_relative_to_its_file_and_tilde_expands(tmp_path, monkeypatch):
    project = tmp_path / "project"
    for label in ("bolt", "nut"):
        (project / "imgs" / label).mkdir(parents=True)
        Image.new("RGB", (40, 30), (9, 9, 9)).save(project / "imgs" / label / "a.png")
    (project / "table.json").write_text("{}")
    spec = project / "specs" / "skeleton.yaml"
    spec.parent.mkdir()
    spec.write_text(yaml.safe_dump(TINY["search_space"]["skeleton"]))
    config = write_config(project / "search.yaml", tiny_config(
        data={"source": "directory", "path": "imgs"}, search_space={"skeleton": "specs/skeleton.yaml"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(Path("..") / "project" / "search.yaml")
    assert Path(loaded.data.path) == (project / "imgs").absolute()  # not ./imgs of the working directory
    assert loaded.space.skeleton.name == "tiny-skeleton"
    resolved = loaded.to_dict()
    assert Path(resolved["data"]["path"]).is_absolute()  # the run's config.yaml works from anywhere
    assert config_from_dict(yaml.safe_load(loaded.to_yaml()), "again").to_dict() == resolved

    monkeypatch.setenv("HOME", str(project))
    home = write_config(elsewhere / "home.yaml", tiny_config(data={"source": "directory", "path": "~/imgs"}))
    assert Path(load_config(home).data.path) == project / "imgs"
    lut = {"source": "lut:table.json", "target_ms": 1.0}
    assert _resolved_latency(lut, project) == f"lut:{project / 'table.json'}"
    assert _resolved_latency({**lut, "source": "lut:~/t.json"}, None) == f"lut:{project / 't.json'}"
    assert config_from_dict(tiny_config(data={"source": "directory", "path": "../project/imgs"})).data.path == \
        "../project/imgs"  # a config given as data (no file) keeps the working directory's paths


def test_set_overrides_a_setting_and_its_paths_are_relative_to_the_working_directory(tmp_path, capsys,
                                                                                     monkeypatch):
    project = tmp_path / "project"
    for label in ("bolt", "nut"):
        (tmp_path / "mine" / label).mkdir(parents=True)
        Image.new("RGB", (40, 30)).save(tmp_path / "mine" / label / "a.png")
    project.mkdir()
    config = write_config(project / "search.yaml", tiny_config(data={"source": "directory", "path": "nowhere"}))
    monkeypatch.chdir(tmp_path)
    loaded = load_config(config, ["data.path=mine", "proxy.epochs=3", "run.name=other"])
    assert Path(loaded.data.path) == tmp_path / "mine"  # the command line's: the working directory's
    assert loaded.proxy.epochs == 3 and loaded.run.name == "other"
    assert load_config(config, ["data.path=mine"]).proxy.epochs == TINY["proxy"]["epochs"]  # nothing else changes
    code, out, err = run_cli(capsys, "search", "--config", config, "--set", "data.path=mine", "--set",
                             "proxy.resolution=24", "--dry-run", "--samples", "1")
    assert code == 0 and "proxy: 24 px" in out, err
    for bad, fragment in [("proxy.epochs", "expected SECTION.KEY=VALUE"), ("proxy.epochs=[", "not valid YAML"),
                          ("proxy.epochs=0", "proxy.epochs: must be at least 1"),
                          ("proxy.epoch=2", "proxy.epoch: unknown key"),
                          ("data.path=elsewhere", "data.path: directory"), ("run.seed.x=1", "run.seed is not a section")]:
        code, _, err = run_cli(capsys, "search", "--config", config, "--set", "data.path=mine", "--set", bad,
                               "--dry-run")
        assert_one_line_error(code, err, fragment)


def _resolved_latency(latency: dict, base) -> str:
    from nas.search.config import _resolve_paths

    return _resolve_paths({"latency": latency}, base)["latency"]["source"]


def test_latency_source_auto_without_an_edge_tpu_is_sim_and_says_why(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "auto.yaml", tiny_config(latency={"source": "auto"}))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no edgetpu_compiler
    loaded = load_config(config)
    assert loaded.latency.source == "sim" and loaded.to_dict()["latency"]["source"] == "sim"
    assert "no usable Edge TPU (edgetpu_compiler is not on PATH" in loaded.latency_choice
    code, out, err = run_cli(capsys, "search", "--config", config, "--dry-run", "--samples", "1")
    assert code == 0, err
    assert "latency: sim, target 1.000 ms (source auto: no usable Edge TPU (edgetpu_compiler is not on PATH" in out

    compiler = tmp_path / "bin" / "edgetpu_compiler"  # a compiler, but no runtime library and no device
    compiler.parent.mkdir()
    compiler.write_text("#!/bin/sh\nexit 1\n")
    compiler.chmod(0o755)
    loaded = load_config(config)
    assert loaded.latency.source == "sim"
    assert "no usable Edge TPU (the Edge TPU runtime libedgetpu.so.1 is not installed)" in loaded.latency_choice
    assert config_from_dict(TINY).latency_choice is None  # not auto: nothing chosen


def test_dry_run_warns_when_the_proxy_resolution_is_far_below_the_images(tmp_path, capsys):
    for label in ("bolt", "nut"):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (600, 400 + i), (i, 0, 0)).save(tmp_path / "photos" / label / f"{i}.jpg")
    photos = {"source": "directory", "path": "photos"}
    config = write_config(tmp_path / "small.yaml", tiny_config(data=photos, proxy={"resolution": 16}))
    code, out, err = run_cli(capsys, "search", "--config", config, "--dry-run", "--samples", "1")
    assert code == 0, err
    assert ("warning: the proxy trains at 16 px on images of about 401 px (data 'directory'): it sees little "
            "of what they hold; raise proxy.resolution in the config (to 32 or more)") in out
    config = write_config(tmp_path / "enough.yaml", tiny_config(data=photos, proxy={"resolution": 64}))
    code, out, err = run_cli(capsys, "search", "--config", config, "--dry-run", "--samples", "1")
    assert code == 0 and "warning" not in out, err
    code, out, _ = run_cli(capsys, "search", "--config", SHIPPED / "edgetpu.yaml", "--dry-run", "--samples", "1")
    assert "warning" not in out  # 16 px on the 8 px digits


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
    assert "8,916,100,448,256 architectures (8.9e12)" in out  # 144 ** 6: (2*2*2*3*3*2*1) per stage
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
