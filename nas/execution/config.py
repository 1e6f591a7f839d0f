"""Where trials run: `execution:` in a search config.

```yaml
execution:
  backend: ray               # local (default): trials on this machine; ray: on a Ray cluster
  address: local             # local: start a Ray cluster in this process; auto: join the cluster
                             # `ray start --head` made on this node; HOST:PORT: a head node's GCS
  max_concurrent: 2          # trials in flight at once. ray: null is as many as the resources allow;
                             # local: null or 1 runs them one at a time in this process, N > 1 in N
                             # worker processes (nas.search.parallel)
  resources_per_trial: {cpu: 1, gpu: 0}
  storage: null              # Ray Tune's experiment storage (path or URI); null: <run dir>/ray
  max_failures: 2            # retries of a crashed trial before it is journaled as failed
```

Only the checks that need no cluster are made here; whether the address answers and whether a
node can hold `resources_per_trial` is checked when the Ray backend connects (`nas.execution.ray_tune`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from nas.common.errors import ConfigError
from nas.common.schema import read_section, section_dict, setting

BACKENDS = ("local", "ray")
LOCAL_ADDRESS, AUTO_ADDRESS = "local", "auto"


@dataclass(frozen=True)
class Resources:
    cpu: float = setting(1.0, min=0.0)
    gpu: float = setting(0.0, min=0.0)


@dataclass(frozen=True)
class ExecutionConfig:
    backend: str = setting("local", choices=BACKENDS)
    address: str = LOCAL_ADDRESS
    max_concurrent: int | None = setting(None, min=1)
    resources_per_trial: Resources = field(default_factory=Resources)
    storage: str | None = None
    max_failures: int = setting(2, min=0)

    @property
    def ray(self) -> bool:
        return self.backend == "ray"

    @property
    def local_workers(self) -> int:
        """Worker processes of the local backend; 1: trials run one at a time in the search's process."""
        return 1 if self.ray else (self.max_concurrent or 1)

    def to_dict(self) -> dict[str, Any]:
        out = section_dict(self)
        out["resources_per_trial"] = section_dict(self.resources_per_trial)
        return out


def read_execution(data: Any) -> ExecutionConfig:
    plain = {k: v for k, v in data.items() if k != "resources_per_trial"} if isinstance(data, dict) else data
    config = read_section(ExecutionConfig, plain, "execution")
    resources = read_section(Resources, (data or {}).get("resources_per_trial"), "execution.resources_per_trial")
    if resources.cpu == 0 and resources.gpu == 0:
        raise ConfigError("execution.resources_per_trial: a trial needs some cpu or gpu")
    config = dataclasses.replace(config, resources_per_trial=resources)
    if config.ray:
        parse_address(config.address)
        if config.storage is not None and not config.storage.strip():
            raise ConfigError("execution.storage: give a path or URI, or null for <run dir>/ray")
    else:
        if config.storage is not None:
            raise ConfigError("execution.storage: only the 'ray' backend uses it (the local backend keeps "
                              "everything in the run directory)")
        if config.address != LOCAL_ADDRESS:
            raise ConfigError("execution.address: only the 'ray' backend uses it")
    return config


def parse_address(address: str) -> tuple[str, int] | None:
    """None for `local` / `auto`, else (host, port) of `HOST:PORT` or `ray://HOST:PORT`."""
    if address in (LOCAL_ADDRESS, AUTO_ADDRESS):
        return None
    rest = address.removeprefix("ray://")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"execution.address: {address!r} is not 'local', 'auto' or HOST:PORT "
                          f"(e.g. 10.0.0.5:6379)")
    return host.strip("[]"), int(port)
