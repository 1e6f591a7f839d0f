"""The controller's saved state: `controller.json` (a snapshot after a tell) and the replay of the
journal's later trials, so a resumed or continued run's controller ends exactly where it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from nas.common.files import write_text
from nas.controllers import Controller, make_controller
from nas.search.journal import Trial
from nas.search.recorder import told_reward

SNAPSHOT_EVERY = 8  # trials between snapshots (and at the end of the run)


def restore_controller(config: SearchConfig, trials: list[Trial], snapshot: Path | None,
                       say: Callable[[str], None] = print) -> Controller:
    """The controller as it was after the journal's last trial: snapshot, then replay the rest."""
    controller = make_controller(config.controller, config.space.cardinalities, config.controller_options,
                                 seed=config.run.seed)
    start = 0
    if snapshot is not None and snapshot.exists():
        try:
            saved = json.loads(snapshot.read_text())
            if saved["trials"] <= len(trials):
                controller.load_state(saved["state"])
                start = saved["trials"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            say(f"note: controller snapshot unusable ({exc}); replaying the whole journal")
            controller = make_controller(config.controller, config.space.cardinalities,
                                         config.controller_options, seed=config.run.seed)
    for trial in trials[start:]:
        proposed = controller.ask()
        if proposed != trial.decisions:
            say(f"note: on replay the controller proposed other decisions than trial {trial.trial + 1} holds; "
                f"it learns from the journaled one")
        controller.tell(trial.decisions, told_reward(trial))
    return controller


def save_snapshot(path: Path, controller: Controller, trials: int) -> None:
    write_text(path, json.dumps({"trials": trials, "state": controller.state()}))
