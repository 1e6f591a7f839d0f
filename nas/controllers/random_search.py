"""Random search: every decision uniformly at random; the baseline every controller must beat."""

from __future__ import annotations

from nas.controllers.base import register_controller, Controller


@register_controller("random")
class RandomController(Controller):
    proposes_ahead = True

    def _ask(self) -> list[int]:
        return self.random_decisions()

    def _tell(self, decisions: list[int], reward: float) -> None:
        pass  # random search learns nothing
