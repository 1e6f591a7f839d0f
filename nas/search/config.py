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
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.common.bounds import check_resolution
from nas.common.errors import UserError
from search_space.space import SearchSpace

from nas.controllers import CONTROLLERS
from nas.data import DataConfig, check_data
from nas.execution.config import ExecutionConfig, read_execution
from nas.proxy.task import ProxyConfig
from nas.search.reward import RewardConfig
from nas.common.errors import ConfigError
from nas.common.schema import read_section, section_dict, setting

SECTIONS = ("run", "search_space", "latency", "reward", "controller", "proxy", "data", "execution")
DEFAULT_TARGET_MODEL = "efficientnet-edgetpu-S"
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
    run: RunConfig
    space: SearchSpace
    latency: LatencyConfig
    reward: RewardConfig
    controller: str
    controller_options: Any
    proxy: ProxyConfig
    data: DataConfig
    execution: ExecutionConfig = ExecutionConfig()

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


def config_from_dict(data: Any, default_name: str = "search") -> SearchConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("config: expected a mapping of sections")
    for key in data:
        if key not in SECTIONS:
            raise ConfigError(f"{key}: unknown section (known: {', '.join(SECTIONS)})")
    run = read_section(RunConfig, data.get("run"), "run")
    if run.name is None:
        run = dataclasses.replace(run, name=default_name)
    _check_run_name(run.name)
    space = SearchSpace.from_dict(data.get("search_space"), "search_space")
    latency = read_section(LatencyConfig, data.get("latency"), "latency")
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
    config = SearchConfig(run, space, latency, reward, name, options, proxy, data_config, execution)
    _latency_parts(config.latency)  # an unknown source or target model fails here, before any work
    return config


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


def load_config(path: str | Path) -> SearchConfig:
    """Read and check a search config file; the run's default name is the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file '{path}' does not exist")
    return config_from_dict(read_yaml(path, "config file"), default_name=path.stem)


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
