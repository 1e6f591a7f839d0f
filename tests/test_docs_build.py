"""The documentation site builds with no warning, and its generated pages match the code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import reference_gen  # noqa: E402


def test_mkdocs_build_strict_has_no_warning(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               NO_MKDOCS_2_WARNING="1")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output and "ERROR" not in output, output
    for page in ("index.html", "concepts/index.html", "reference/configuration/index.html",
                 "reference/api/index.html", "benchmarks/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    # mkdocstrings rendered the docstrings (not an empty page)
    assert "Build the Keras model" in (tmp_path / "site/reference/api/index.html").read_text() or \
        "build_model" in (tmp_path / "site/reference/api/index.html").read_text()


def test_generated_reference_pages_are_up_to_date():
    for name, text in reference_gen.render().items():
        committed = reference_gen.PAGES[name].read_text()
        assert committed == text, (f"{reference_gen.PAGES[name].relative_to(ROOT)} is out of date: "
                                   "run python docs/reference_gen.py")


def test_configuration_reference_has_every_field_with_a_meaning():
    import dataclasses

    from nas.proxy.task import ProxyConfig

    page = reference_gen.render()["configuration"]
    for f in dataclasses.fields(ProxyConfig):
        assert f"`proxy.{f.name}`" in page
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert len(rows) > 60 and not [r for r in rows if r.rstrip().endswith("|  |")], "a field without a meaning"
    # a fallback meaning the code's own comment has replaced is dead text: remove it
    unused = set(reference_gen.MEANINGS) - reference_gen.USED
    assert not unused, f"MEANINGS entries no field uses any more: {sorted(unused)}"


def test_a_changed_default_makes_the_committed_page_out_of_date(monkeypatch):
    from nas.search.config import RunConfig

    field = RunConfig.__dataclass_fields__["trials"]
    monkeypatch.setattr(field, "default", 41)
    assert reference_gen.render()["configuration"] != reference_gen.PAGES["configuration"].read_text()


def test_readme_is_a_front_page_and_ci_runs_its_test_command():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    commands = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert commands[0] == ("python3 -m venv .venv && .venv/bin/pip install -e . && "
                           ".venv/bin/nas search --config experiments/edgetpu.yaml")
    install, test = commands[1].split(" && ")[1:]
    ci = (ROOT / ".ci/run").read_text()
    assert install.replace("'", "").replace(".venv/bin/pip install", "") .strip() in ci.replace("'", "")
    assert test.strip() in ci  # `.venv/bin/python -m pytest`
    import re

    for word in ("2-core", "this machine", "virtual machine", "provenance"):
        assert word not in readme, word
    assert not re.search(r"\b[0-9a-f]{7}\b", readme), "a commit hash on the front page"
