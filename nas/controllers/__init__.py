"""Controllers: propose architectures (as decision vectors) and learn from their rewards.

All share `Controller`'s ask / tell / state / load_state interface and are made by name from the
registry below; later backends (Ray Tune searchers, keras-tuner oracles) register here too.
"""

from __future__ import annotations

from typing import Any, Sequence

from nas.controllers.base import Controller
from nas.controllers.evolution import EvolutionController
from nas.controllers.keras_tuner import KERAS_TUNER_CONTROLLERS
from nas.controllers.mnas import MnasController
from nas.controllers.random_search import RandomController
from nas.controllers.reinforce import ReinforceController

CONTROLLERS: dict[str, type[Controller]] = {}


def register_controller(cls: type[Controller]) -> type[Controller]:
    CONTROLLERS[cls.name] = cls
    return cls


for _cls in (MnasController, ReinforceController, EvolutionController, RandomController, *KERAS_TUNER_CONTROLLERS):
    register_controller(_cls)  # the keras-tuner ones import keras-tuner (and TensorFlow) only when made


def make_controller(name: str, cardinalities: Sequence[int], options: Any = None, seed: int = 0) -> Controller:
    if name not in CONTROLLERS:
        raise KeyError(f"unknown controller '{name}' (known: {', '.join(CONTROLLERS)})")
    return CONTROLLERS[name](cardinalities, options, seed)


__all__ = ["CONTROLLERS", "Controller", "make_controller", "register_controller"]
