"""edgetpu-nas: hardware-aware architecture search (MNAS) that reproduces EfficientNet-EdgeTPU.

The names a notebook needs, importable from `nas` directly; `import nas` stays cheap (no TensorFlow,
no Ray): everything but the error types is imported on first use.

    import nas
    config = nas.load_config("edgetpu")  # a shipped config by name, or a YAML file's path
    trials = nas.Search(config, "runs/edgetpu").run()
    loaded = nas.load_model("path/to/ckpt")  # .model, .spec

Layout: `nas.search` (the loop, journal, results, reward), `nas.controllers`, `nas.data` (proxy data
sources), `nas.proxy` (the proxy task, proxy jobs), `nas.execution` (local and Ray executors),
`nas.deploy` (checkpoints, export, eval), `nas.commands` (the CLI), `nas.common` (errors, files,
schemas, tables). Anything not listed in `__all__` is internal. `nas.__version__` is the installed
distribution's version (`nas --version` prints it).
"""

from __future__ import annotations

import importlib

from nas.common.errors import ConfigError, UserError

_LAZY = {
    "Search": "nas.search.loop",
    "SearchConfig": "nas.search.config",
    "load_config": "nas.search.config",
    "CONTROLLERS": "nas.controllers",
    "make_controller": "nas.controllers",
    "DATA_SOURCES": "nas.data",
    "load_dataset": "nas.data",
    "save_checkpoint": "nas.deploy.checkpoints",
    "load_model": "nas.deploy.checkpoints",
    "to_tflite": "nas.deploy.exporter",
}

DISTRIBUTION = "edgetpu-nas"

__all__ = ["ConfigError", "UserError", "__version__", *_LAZY]


def _version() -> str:
    """The installed distribution's version (pyproject.toml's, the one source); read on first use."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    if name not in _LAZY:
        raise AttributeError(f"module 'nas' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
