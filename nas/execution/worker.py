"""What every process that runs work shares, whichever executor sent it (the local one, a Ray Tune
trial, a Ray task): one cache of the loaded data / proxy per config, and one user-error convention.

A worker's `UserError` (the data is missing on that node, ...) must stop the run, not be retried:
the worker returns `{USER_ERROR: message}` instead of raising, and the driver raises the same
one-line `UserError` from it (`raise_user_error`).
"""

from __future__ import annotations

from typing import Any, Callable

from nas.common.errors import UserError

USER_ERROR = "user_error"

CONFIGS_KEPT = 2  # a worker serves one run at a time; the data of older configs is dropped (it can be big)
_CACHE: dict[str, dict[tuple, Any]] = {}  # per process: config YAML -> what was loaded for it


def cached(config_yaml: str, key: tuple, make: Callable[[], Any]) -> Any:
    """The object `make()` gives for (config, key), made once per process (a Ray worker, or this one)."""
    entries = _CACHE.pop(config_yaml, {})
    _CACHE[config_yaml] = entries  # now the newest
    while len(_CACHE) > CONFIGS_KEPT:
        del _CACHE[next(iter(_CACHE))]
    if key not in entries:
        entries[key] = make()
    return entries[key]


def user_error_result(exc: UserError) -> dict:
    return {USER_ERROR: str(exc)}


def raise_user_error(result: Any) -> None:
    """On the driver: a worker's user error as the same one-line `UserError`."""
    if isinstance(result, dict) and USER_ERROR in result:
        raise UserError(result[USER_ERROR])


def one_line(exc: BaseException) -> str:
    """An exception as the one line a journal or a job's outcome records."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__
