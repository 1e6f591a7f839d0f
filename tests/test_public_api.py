"""The names a notebook imports from the package roots: they resolve, stay cheap, and work together.

The example of the Python API page (docs/reference/api.md) is run here step by step on a tiny search.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

import latency
import nas
import scaling
import search_space
from tests.search_helpers import tiny_config, write_config

ROOTS = {"nas": nas, "search_space": search_space, "latency": latency, "scaling": scaling}
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_every_exported_name_resolves(root):
    module = ROOTS[root]
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert not missing, f"{root}.__all__ lists names that do not resolve: {missing}"


@lru_cache(maxsize=None)
def _attribute_docstrings() -> dict[str, str]:
    """{name: docstring} of every module-level constant with a docstring (the string right after its
    assignment, the convention API reference tools read) in the four packages."""
    found = {}
    for root in ROOTS:
        for path in (REPO / root).rglob("*.py"):
            body = ast.parse(path.read_text()).body
            for node, after in zip(body, body[1:]):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                    if isinstance(node, ast.AnnAssign) else []
                if (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                        and isinstance(after.value.value, str)):
                    found.update({t.id: after.value.value for t in targets if isinstance(t, ast.Name)})
    return found


def _docstring(module, name: str) -> str | None:
    value = getattr(module, name)
    if name.startswith("__"):  # __version__: the package's docstring says what it is
        return name if name in (module.__doc__ or "") else None
    if inspect.isclass(value) or inspect.isfunction(value) or inspect.ismodule(value):
        doc = vars(value).get("__doc__") if inspect.isclass(value) else value.__doc__
        generated = inspect.isclass(value) and dataclasses.is_dataclass(value) and \
            (doc or "").startswith(f"{value.__name__}(")  # dataclass's signature stand-in
        return None if generated else doc
    return _attribute_docstrings().get(name)


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_every_exported_name_is_documented(root):
    module = ROOTS[root]
    undocumented = [name for name in module.__all__ if not (_docstring(module, name) or "").strip()]
    assert not undocumented, f"{root}.__all__ names without a docstring: {undocumented}"


def test_importing_the_roots_does_not_import_tensorflow_or_ray():
    code = ("import sys, nas, search_space, latency, scaling; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_readme_example(tmp_path):
    spec = search_space.get_spec("efficientnet-edgetpu-S")
    assert (search_space.count_params(spec), search_space.count_macs(spec)) == (5_439_673, 1_788_732_288)
    ms = latency.make_latency_model("sim").predict_ms(spec)
    assert ms == latency.EdgeTpuCostModel().predict_ms(spec)
    m = scaling.scale_phi(spec, phi=1)
    assert m.resolution > spec.resolution and search_space.count_macs(m) > search_space.count_macs(spec)
    keras_model = search_space.build_model(search_space.ModelSpec.from_yaml(m.to_yaml()))
    assert keras_model.count_params() >= search_space.count_params(m)  # + batch-norm moving statistics

    config = nas.load_config(write_config(tmp_path / "tiny.yaml", tiny_config(run={"trials": 2})))
    trials = nas.Search(config, tmp_path / "runs" / "tiny", say=lambda line: None).run()
    assert [t.trial for t in trials] == [0, 1] and all(t.status == "ok" for t in trials)
    assert (tmp_path / "runs" / "tiny" / "best.yaml").is_file()
