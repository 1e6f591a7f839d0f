"""The names a notebook imports from the package roots: they resolve, stay cheap, and work together.

The example of the Python API page (docs/reference/api.md) is run here step by step on a tiny search.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import latency
import nas
import scaling
import search_space
from tests.search_helpers import tiny_config, write_config

ROOTS = {"nas": nas, "search_space": search_space, "latency": latency, "scaling": scaling}


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_every_exported_name_resolves(root):
    module = ROOTS[root]
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert not missing, f"{root}.__all__ lists names that do not resolve: {missing}"


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
