"""A wheel of this checkout, installed into a fresh virtual environment outside it, runs the default search.

The wheel is built from a copy of the sources (so no stale `build/` of the checkout leaks in) without
network access (`--no-build-isolation`, this interpreter's setuptools). The fresh environment gets the
wheel and nothing else; its dependencies (TensorFlow, NumPy, ...) come from this environment's
site-packages through a `.pth` line, which puts them *after* the fresh environment's own, so the `nas`
that runs is the installed one (checked). The commands run with the working directory outside the
checkout and no PYTHONPATH: the shipped configs must come from the installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "nas", "latency", "scaling", "search_space")


def run(command: list, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, source / name)
    built = run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                 "--no-index", "-w", str(tmp / "dist"), "-q"], cwd=tmp)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("edgetpu_nas-*.whl")

    env = tmp / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", str(env)], cwd=tmp)
    assert made.returncode == 0, made.stderr
    python = env / "bin" / "python"
    installed = run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                     "-q", str(wheel)], cwd=tmp)
    assert installed.returncode == 0, installed.stderr
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                    cwd=tmp).stdout.strip())
    (site / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return env


def test_the_installed_package_is_the_wheels_and_holds_the_shipped_configs(venv, tmp_path):
    code = ("import nas, nas.search.config as c; print(nas.__file__); "
            "print(' '.join(c.shipped_configs())); print(nas.__version__)")
    done = run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    where, shipped, version = done.stdout.split("\n")[:3]
    assert where.startswith(str(venv)) and not where.startswith(str(ROOT)), where
    assert {"edgetpu", "edgetpu_imagenet"} <= set(shipped.split())
    assert version == _project_version()


def test_nas_version_models_and_the_default_dry_run_outside_the_checkout(venv, tmp_path):
    nas = str(venv / "bin" / "nas")
    version = run([nas, "--version"], cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"nas {_project_version()}", version
    models = run([nas, "models"], cwd=tmp_path)
    assert models.returncode == 0, models.stderr
    assert "efficientnet-edgetpu-S" in models.stdout
    dry = run([nas, "search", "--dry-run", "--samples", "2"], cwd=tmp_path)  # no --config: the shipped default
    assert dry.returncode == 0, dry.stderr
    assert "8,916,100,448,256 architectures" in dry.stdout and "target 5.139 ms" in dry.stdout
    by_name = run([nas, "search", "--config", "edgetpu_bayesian", "--dry-run", "--samples", "1"], cwd=tmp_path)
    assert by_name.returncode == 0 and "controller: keras-tuner-bayesian" in by_name.stdout, by_name.stderr
    unknown = run([nas, "search", "--config", "edgetpuu", "--dry-run"], cwd=tmp_path)
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert "shipped: edgetpu, edgetpu_bayesian" in unknown.stderr
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def _project_version() -> str:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
