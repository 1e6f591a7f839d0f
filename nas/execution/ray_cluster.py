"""Joining a Ray cluster, and what every Ray executor shares: Ray's environment, thread limits for a
worker, and the one-line error of work that failed on every attempt Ray gave it."""

from __future__ import annotations

import logging
import os
import re
import socket
from pathlib import Path
from typing import Any

RAY_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage reports from a search
    "TUNE_GLOBAL_CHECKPOINT_S": "1",  # checkpoint the experiment every second (each loop step: 5% of a core)
    "RAY_AIR_NEW_OUTPUT": "0",
}
for _key, _value in RAY_ENVIRONMENT.items():  # read when Ray is imported, or when Tune starts
    os.environ.setdefault(_key, _value)

from nas.common.errors import UserError  # noqa: E402
from nas.execution.config import AUTO_ADDRESS, LOCAL_ADDRESS, ExecutionConfig, parse_address  # noqa: E402

CONNECT_TIMEOUT_S = 5.0


# Connecting -----------------------------------------------------------------------------------------

def connect(execution: ExecutionConfig, say=print) -> None:
    """Join (or start) the configured cluster and check a node can hold one trial; one line on failure."""
    import ray

    if ray.is_initialized():  # a caller (a notebook, a test) already connected: use that cluster
        _check_resources(execution)
        return
    endpoint = parse_address(execution.address)
    if endpoint is not None:
        _check_reachable(*endpoint, execution.address)
    options: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                                   configure_logging=True)
    try:
        if execution.address == LOCAL_ADDRESS:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            # address="local": a cluster of our own, even when `ray start` left one running here
            ray.init(address="local", num_cpus=os.cpu_count(), **options)
        else:
            ray.init(address=execution.address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if "AuthToken" in _causes(exc):
            raise UserError(f"execution.address: the Ray cluster at {execution.address} wants its token: set "
                            f"RAY_AUTH_MODE=token and give the token (~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or "
                            f"RAY_AUTH_TOKEN)") from None
        if execution.address == AUTO_ADDRESS:
            raise UserError("execution.address: 'auto' found no running Ray cluster on this node; start one "
                            "with `ray start --head`, or use address: local") from None
        raise UserError(f"execution.address: cannot join the Ray cluster at {execution.address}: "
                        f"{' '.join(str(exc).split())[:200]}") from None
    _check_resources(execution)
    resources = ray.cluster_resources()
    say(f"Ray cluster: {len(_alive_nodes())} node(s), {resources.get('CPU', 0):g} CPU, "
        f"{resources.get('GPU', 0):g} GPU")


def _causes(exc: BaseException) -> str:
    """The messages of an exception and of everything it was raised from."""
    texts = []
    while exc is not None and len(texts) < 10:
        texts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return " ".join(texts)


def _check_reachable(host: str, port: int, address: str) -> None:
    """Fail at once on an address nothing answers at (ray.init would wait for minutes)."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise UserError(f"execution.address: nothing answers at {address} ({exc.strerror or exc}); start the "
                        f"head node with `ray start --head --port={port}` there, or check the address") from None


def _alive_nodes() -> list[dict]:
    import ray

    return [node for node in ray.nodes() if node.get("Alive")]


def _check_resources(execution: ExecutionConfig) -> None:
    need = {"CPU": execution.resources_per_trial.cpu, "GPU": execution.resources_per_trial.gpu}
    nodes = [node.get("Resources", {}) for node in _alive_nodes()]
    if not any(all(node.get(k, 0.0) >= v for k, v in need.items() if v) for node in nodes):
        largest = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)), default={})
        raise UserError(f"execution.resources_per_trial: no node of the cluster has {need['CPU']:g} CPU and "
                        f"{need['GPU']:g} GPU for one trial (the largest has {largest.get('CPU', 0):g} CPU, "
                        f"{largest.get('GPU', 0):g} GPU)")


def limit_threads(cpus: float) -> None:
    """One trial per `cpus` cores: TensorFlow must not spread over the whole node."""
    threads = max(1, int(cpus))
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError:
        pass  # this worker already ran TensorFlow: its pools are fixed


def failed_on_ray(attempts: int, message: str) -> str:
    """The error recorded for work that failed on every attempt Ray gave it."""
    return f"failed on the Ray cluster after {attempts} attempt(s): {message}"


def last_error(error_file: str | None) -> str:
    """The exception line of the last failure in Ray's error.txt for a trial (its first line if none)."""
    try:
        text = Path(error_file).read_text()
    except (OSError, TypeError):
        return "the worker died"
    lines = [line.strip() for line in text.split("Failure #")[-1].splitlines()[1:] if line.strip()]
    raised = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Exit|Interrupt)\b", line)]
    return (raised or lines or ["the worker died"])[-1 if raised else 0][:300]
