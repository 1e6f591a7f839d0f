"""Reading YAML mappings into frozen dataclasses, with every mistake named by its field path.

A section is a dataclass whose fields carry their type annotation and, in `metadata`, the checks a
value must pass: `min` / `max` (inclusive), `above` (exclusive lower bound) and `choices`. Every
number is bounded even where a field states no maximum: a float must be finite (NaN and infinities
are refused), a whole number at most INT_MAX (sizes, counts and seeds all fit in 32 bits). One
generic reader serves every section (run, latency, reward, proxy, data, each controller's options),
so a user always sees the same kind of line: `proxy.epochs: must be at least 1, got 0`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from nas.common.errors import ConfigError

INT_MAX = 2**31 - 1  # the bound of every whole-number setting that states no `max` of its own


def printable(value) -> str:
    """A user's key on one line, whatever it holds: newlines and other control characters escaped."""
    return str(value).encode("unicode_escape").decode("ascii")


def _type_name(kind: type) -> str:
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(kind, kind.__name__)


def _allowed(annotation: Any) -> tuple[tuple[type, ...], bool]:
    """(the plain types a field accepts, whether null is allowed)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return tuple(a for a in args if a is not type(None)), type(None) in args
    return (annotation,), False


def _coerce(path: str, value: Any, annotation: Any) -> Any:
    kinds, nullable = _allowed(annotation)
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"{path}: expected {' or '.join(map(_type_name, kinds))}, got null")
    for kind in kinds:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # a whole number beyond any float
                number = math.inf
            if not math.isfinite(number):
                _fail(path, f"must be a finite number, got {value!r}")
            return number
        if kind is str and isinstance(value, str):
            return value
    expected = " or ".join(_type_name(k) for k in kinds) + (" or null" if nullable else "")
    return _fail(path, f"expected {expected}, got {value!r}")


def _fail(path: str, problem: str):
    raise ConfigError(f"{path}: {problem}")


def _check_range(path: str, value: Any, meta: typing.Mapping) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        _fail(path, f"{value!r} is not one of {', '.join(map(str, meta['choices']))}")
    if "min" in meta and value < meta["min"]:
        _fail(path, f"must be at least {meta['min']}, got {value!r}")
    if "max" in meta and value > meta["max"]:
        _fail(path, f"must be at most {meta['max']}, got {value!r}")
    if "above" in meta and not value > meta["above"]:
        _fail(path, f"must be above {meta['above']}, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and "max" not in meta and abs(value) > INT_MAX:
        _fail(path, f"must be at most {INT_MAX} in size, got {value!r}")


def read_section(cls: type, data: Any, path: str, skip: tuple[str, ...] = ()):
    """`cls(**data)` after checking keys, types and ranges; `skip` lists keys read elsewhere."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        _fail(path, f"expected a mapping of settings, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields and key not in skip:
            known = ", ".join(sorted(fields)) or "none"
            shown = printable(key)
            _fail(f"{path}.{shown}" if path else shown, f"unknown key (known: {known})")
    values = {}
    for name, field in fields.items():
        if name in data:
            where = f"{path}.{name}" if path else name
            value = _coerce(where, data[name], hints[name])
            _check_range(where, value, field.metadata)
            values[name] = value
    return cls(**values)


def section_dict(section: Any) -> dict[str, Any]:
    """A section back as a plain mapping (what the resolved config.yaml shows)."""
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}


def setting(default: Any, **checks: Any) -> Any:
    """A dataclass field with a default and the checks `read_section` applies."""
    return dataclasses.field(default=default, metadata=checks)
