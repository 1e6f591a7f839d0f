"""A search's configuration: YAML in, checked sections out, and the resolved YAML a run keeps.

```yaml
run:        {name: edgetpu, seed: 0, trials: 40, top_k: 5}
search_space: {skeleton: efficientnet-edgetpu-S, choices: {...}, stages: {...}}   # SearchSpace's format
latency:    {source: sim, target_model: efficientnet-edgetpu-S}   # or target_ms: 5.1
reward:     {kind: soft}                  # soft | hard | absolute, optional alpha / beta
controller: {name: mnas, batch_size: 8}   # any option of the named controller
proxy:      {resolution: 32, width: 0.25, epochs: 2}
data:       {source: offline}
execution:  {backend: local}              # or ray: see nas.execution.config
```

Every mistake (unknown key, wrong type, value out of range, missing data path, unknown
controller or latency source) is a `UserError` naming the field's path, raised while loading,
before any work starts.

Paths in a config file (`data.path`, `latency.source: lut:PATH`, a `search_space.skeleton` spec
file) are resolved relative to the directory of the config file, as YAML-driven tools do, after
`~` is expanded; the resolved config a run keeps holds them absolute. `latency.source: auto` is
resolved while loading too: the attached Edge TPU when one is usable, else `sim`.

The configs that ship with the package live in `nas/experiments/` (the checkout's `experiments/`
links there); `load_config("edgetpu")` finds one by name.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from nas.common.bounds import check_resolution
from nas.common.errors import UserError
from search_space.space import SearchSpace

from nas.controllers import CONTROLLERS
from nas.data import DataConfig, check_data
from nas.execution.config import ExecutionConfig, read_execution
from nas.proxy.task import ProxyConfig
from nas.search.reward import RewardConfig
from nas.common.errors import ConfigError
from nas.common.schema import printable, read_section, section_dict, setting

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"  # the shipped configs
DEFAULT_CONFIG = "edgetpu"  # what `nas search` runs without --config
SECTIONS = ("run", "search_space", "latency", "reward", "controller", "proxy", "data", "execution")
DEFAULT_TARGET_MODEL = "efficientnet-edgetpu-S"
AUTO = "auto"  # latency.source: the attached Edge TPU, else sim
ONESHOT_CONTROLLER = "tunas"  # `controller: {name: tunas}`: the one-shot search, TuNAS's absolute reward by default


@dataclass(frozen=True)
class RunConfig:
    name: str | None = None  # the run directory's name; default: the config file's name
    seed: int = setting(0, min=0)
    trials: int = setting(40, min=1)
    top_k: int = setting(5, min=1)


@dataclass(frozen=True)
class LatencyConfig:
    source: str = "sim"
    target_ms: float | None = setting(None, above=0.0)
    target_model: str | None = None  # the target is this model's latency under `source`

    def __post_init__(self) -> None:
        if self.target_ms is not None and self.target_model is not None:
            raise ConfigError("latency: give target_ms or target_model, not both")


@dataclass(frozen=True)
class SearchConfig:
    """A checked search config (`load_config`), every section parsed; `to_yaml()` is the resolved YAML a run keeps."""

    run: RunConfig
    space: SearchSpace
    latency: LatencyConfig
    reward: RewardConfig
    controller: str
    controller_options: Any
    proxy: ProxyConfig
    data: DataConfig
    execution: ExecutionConfig = ExecutionConfig()
    latency_choice: str | None = None  # why `latency.source: auto` chose the source it holds (None: not auto)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config: every default filled in, the skeleton written out in full."""
        return {
            "run": section_dict(self.run),
            "search_space": self.space.to_dict(),
            "latency": section_dict(self.latency),
            "reward": section_dict(self.reward),
            "controller": {"name": self.controller, **dataclasses.asdict(self.controller_options)},
            "proxy": section_dict(self.proxy),
            "data": section_dict(self.data),
            "execution": self.execution.to_dict(),
        }

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)


def config_from_dict(data: Any, default_name: str = "search", base: Path | None = None) -> SearchConfig:
    """A checked config from its YAML mapping; relative paths in it are relative to `base` (None: to the
    working directory), and `~` is expanded either way."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("config: expected a mapping of sections")
    for key in data:
        if key not in SECTIONS:
            raise ConfigError(f"{printable(key)}: unknown section (known: {', '.join(SECTIONS)})")
    data = _resolve_paths(data, base)
    run = read_section(RunConfig, data.get("run"), "run")
    if run.name is None:
        run = dataclasses.replace(run, name=default_name)
    _check_run_name(run.name)
    space = SearchSpace.from_dict(data.get("search_space"), "search_space")
    latency = read_section(LatencyConfig, data.get("latency"), "latency")
    latency_choice = None
    if latency.source == AUTO:
        from latency.sources import choose_auto

        source, latency_choice = choose_auto()
        latency = dataclasses.replace(latency, source=source)
    if latency.target_ms is None and latency.target_model is None:
        latency = dataclasses.replace(latency, target_model=DEFAULT_TARGET_MODEL)
    name, options = _read_controller(data.get("controller"))
    reward_data = data.get("reward")
    if name == ONESHOT_CONTROLLER and (reward_data is None or isinstance(reward_data, dict) and "kind" not in reward_data):
        reward_data = {**(reward_data or {}), "kind": "absolute"}
    reward = read_section(RewardConfig, reward_data, "reward")
    proxy = read_section(ProxyConfig, data.get("proxy"), "proxy")
    if proxy.resolution is not None:  # the schema's minimum is the proxy's; the maximum is everyone's
        check_resolution(proxy.resolution, "proxy.resolution", minimum=8)
    else:
        check_resolution(space.skeleton.resolution, "search_space.skeleton.resolution (proxy.resolution is null)")
    data_config = read_section(DataConfig, data.get("data"), "data")
    check_data(data_config)
    execution = read_execution(data.get("execution"))
    config = SearchConfig(run, space, latency, reward, name, options, proxy, data_config, execution,
                          latency_choice)
    _latency_parts(config.latency)  # an unknown source or target model fails here, before any work
    return config


def _resolve_paths(data: Any, base: Path | None) -> Any:
    """`data` with `~` expanded and relative paths made absolute against `base` (a copy where changed)."""
    if not isinstance(data, dict):
        return data  # config_from_dict says what is wrong with it

    def resolve(path: str) -> str:
        resolved = Path(path).expanduser()
        return os.path.normpath(base / resolved) if base is not None and not resolved.is_absolute() else str(resolved)

    data = dict(data)
    section = data.get("data")
    if isinstance(section, dict) and isinstance(section.get("path"), str):
        data["data"] = {**section, "path": resolve(section["path"])}
    section = data.get("latency")
    if isinstance(section, dict) and isinstance(section.get("source"), str) and section["source"].startswith("lut:"):
        data["latency"] = {**section, "source": "lut:" + resolve(section["source"][len("lut:"):])}
    section = data.get("search_space")
    if isinstance(section, dict) and isinstance(section.get("skeleton"), str):
        from search_space.registry import REGISTRY

        skeleton = section["skeleton"]
        if skeleton not in REGISTRY and (Path(skeleton).suffix.lower() in (".yaml", ".yml") or "/" in skeleton
                                         or skeleton.startswith("~")):  # a spec file, not a model's name
            data["search_space"] = {**section, "skeleton": resolve(skeleton)}
    return data


def _check_run_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ConfigError(f"run.name: {name!r} is not usable as a directory name")


def _read_controller(data: Any) -> tuple[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"controller: expected a mapping with a name, got {data!r}")
    name = data.get("name", "mnas")
    if name == ONESHOT_CONTROLLER:  # the one-shot search (nas.oneshot) is not an ask/tell controller
        from nas.oneshot.controller import OneShotOptions

        return name, read_section(OneShotOptions, data, "controller", skip=("name",))
    try:
        controller = CONTROLLERS.get(name)
    except UserError as exc:
        raise ConfigError(f"controller.name: {exc}") from None
    return name, read_section(controller.Options, data, "controller", skip=("name",))


def shipped_configs() -> dict[str, Path]:
    """The configs that ship with the package, by name (`edgetpu`, `edgetpu_imagenet`, ...)."""
    return {p.stem: p for p in sorted(EXPERIMENTS.glob("*.yaml"))}


def config_path(name_or_path: str | Path) -> Path:
    """A config file: the path if it exists, else the shipped config of that name (`edgetpu` or `edgetpu.yaml`)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = shipped_configs()
    if path.parent == Path(".") and path.suffix in ("", ".yaml") and path.stem in shipped:
        return shipped[path.stem]
    if path.exists():
        raise UserError(f"config file '{path}' is not a file")
    if path.parent == Path(".") and not path.suffix:
        raise UserError(f"unknown config '{name_or_path}': no such file, and no shipped config of that name "
                        f"(shipped: {', '.join(shipped)})")
    raise UserError(f"config file '{path}' does not exist (shipped configs, by name: {', '.join(shipped)})")


def load_config(path: str | Path = DEFAULT_CONFIG, overrides: Sequence[str] = ()) -> SearchConfig:
    """Read and check a search config: a YAML file, or the name of a shipped one (default: `edgetpu`).
    The run's default name is the file's stem; relative paths in it are relative to the file.
    `overrides` are `SECTION.KEY=VALUE` settings (VALUE in YAML) applied on top, as `nas search --set`
    gives them: their relative paths are relative to the working directory."""
    path = config_path(path)
    data = _resolve_paths(read_yaml(path, "config file"), Path(os.path.abspath(path)).parent)
    for override in overrides:
        data = _override(data, override)
    return config_from_dict(data, default_name=path.stem, base=Path.cwd())


def _override(data: Any, override: str) -> dict:
    """`data` with one `SECTION.KEY=VALUE` (or `SECTION.KEY.SUBKEY=VALUE`) setting replaced."""
    import yaml

    key, equals, text = override.partition("=")
    parts = key.strip().split(".")
    if not equals or len(parts) < 2 or not all(parts):
        raise UserError(f"--set '{override}': expected SECTION.KEY=VALUE, e.g. proxy.epochs=5")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        raise UserError(f"--set '{override}': the value is not valid YAML") from None
    data = dict(data) if isinstance(data, dict) else {}
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is not None and not isinstance(child, dict):
            raise UserError(f"--set '{override}': {'.'.join(parts[:i + 1])} is not a section")
        node[part] = node = dict(child or {})
    node[parts[-1]] = value
    return data


def read_yaml(path: Path, what: str) -> Any:
    """A YAML file's content; a syntax error is one line naming the file and the line to fix."""
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        raise UserError(f"{path}: not valid YAML{where}{f' ({problem})' if problem else ''}; "
                        f"fix {what} there") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what} '{path}': {getattr(exc, 'strerror', None) or exc}") from None
    except (ValueError, RecursionError) as exc:  # YAML that parses but holds a bad date or tag value
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                        f"fix {what} there") from None


def _latency_parts(config: LatencyConfig):
    """(the latency model, the target model's spec or None); errors name the field."""
    from latency import make_latency_model
    from search_space.registry import get_spec

    try:
        model = make_latency_model(config.source)
    except UserError as exc:
        raise ConfigError(f"latency.source: {exc}") from None
    if config.target_model is None:
        return model, None
    try:
        return model, get_spec(config.target_model)
    except UserError as exc:
        raise ConfigError(f"latency.target_model: {exc}") from None


def make_latency(config: SearchConfig):
    """(the latency model, the reward's target in ms): target_ms, or the target model's latency."""
    model, reference = _latency_parts(config.latency)
    target = config.latency.target_ms if reference is None else float(model.predict_ms(reference))
    return model, target
