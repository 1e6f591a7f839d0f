"""Controllers: propose architectures (as decision vectors) and learn from their rewards.

All share `Controller`'s ask / tell / state / load_state interface and are made by name from the
`CONTROLLERS` registry. A new controller: a module here whose class is decorated
`@register_controller("name")` (see `base.py`), imported below; the order of the imports is the order
`known:` lists them in.
"""

from __future__ import annotations

from typing import Any, Sequence

from nas.controllers.base import CONTROLLERS, Controller, register_controller
from nas.controllers import mnas, reinforce, evolution, random_search, keras_tuner  # noqa: F401,E402  (register)


def make_controller(name: str, cardinalities: Sequence[int], options: Any = None, seed: int = 0) -> Controller:
    """A new controller by registered name; an unknown name is a `UserError` listing the known ones."""
    return CONTROLLERS.get(name)(cardinalities, options, seed)


__all__ = ["CONTROLLERS", "Controller", "make_controller", "register_controller"]
