"""The controller's saved state: `controller.json` (a snapshot after a tell) and the replay of the
journal's later trials, so a resumed or continued run's controller ends exactly where it was.

A snapshot is a small JSON (`controller.json`: trial count, the state's scalars and structure) beside
a binary `controller.npz` holding the state's float arrays (policy weights, Adam moments) at full
float64 precision: as JSON text those were megabytes. Both are written atomically (temporary name,
fsync, rename), the arrays first; the JSON holds the arrays' SHA-256, so a kill between the two
writes leaves a JSON whose arrays do not match, which is treated as no snapshot (the whole journal
is replayed). A snapshot written before this format (`controller.json` with the arrays as lists)
still loads.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nas.common.files import write_bytes, write_text
from nas.controllers import Controller, make_controller
from nas.search.journal import Trial
from nas.search.recorder import told_reward

SNAPSHOT_EVERY = 8  # trials between snapshots (and at the end of the run)
FORMAT = 2  # 1 (no "format" key): the whole state as JSON
MIN_ARRAY = 16  # float lists shorter than this stay in the JSON, readable
ARRAY_REF = "$array"


def restore_controller(config: SearchConfig, trials: list[Trial], snapshot: Path | None,
                       say: Callable[[str], None] = print) -> Controller:
    """The controller as it was after the journal's last trial: snapshot, then replay the rest."""
    controller = make_controller(config.controller, config.space.cardinalities, config.controller_options,
                                 seed=config.run.seed)
    start = 0
    if snapshot is not None and snapshot.exists():
        try:
            saved_trials, state = load_snapshot(snapshot)
            if saved_trials <= len(trials):
                controller.load_state(state)
                start = saved_trials
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


def arrays_path(path: Path) -> Path:
    return path.with_suffix(".npz")


def save_snapshot(path: Path, controller: Controller, trials: int) -> None:
    arrays: dict[str, np.ndarray] = {}
    state = _extract(controller.state(), arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    content = buffer.getvalue()
    write_bytes(arrays_path(path), content)
    write_text(path, json.dumps({"format": FORMAT, "trials": trials, "state": state,
                                 "arrays_sha256": _digest(arrays)}))


def load_snapshot(path: Path) -> tuple[int, dict[str, Any]]:
    """(trials, controller state) of a snapshot in either format; ValueError when its arrays are missing or
    are not the ones it was written with."""
    saved = json.loads(path.read_text())
    if saved.get("format", 1) == 1:
        return saved["trials"], saved["state"]
    with np.load(arrays_path(path), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    if _digest(arrays) != saved["arrays_sha256"]:
        raise ValueError(f"{arrays_path(path).name} is not the one {path.name} was written with")
    return saved["trials"], _insert(saved["state"], arrays)


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the arrays' names, shapes and float64 bytes (not of the .npz file, whose zip entries carry
    the time they were written)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name], dtype=np.float64)
        h.update(f"{name}{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def _float_array(value: Any) -> np.ndarray | None:
    """`value` as a float64 array when it is a rectangular (nested) list of floats and nothing else."""
    def floats_only(v: Any) -> bool:
        return all(floats_only(x) for x in v) if isinstance(v, list) else type(v) is float

    if not isinstance(value, list) or not floats_only(value):
        return None
    try:
        array = np.array(value, dtype=np.float64)
    except ValueError:  # ragged
        return None
    return array if array.size >= MIN_ARRAY and array.tolist() == value else None


def _extract(state: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The state with each float array replaced by a reference into `arrays`."""
    if isinstance(state, dict):
        return {k: _extract(v, arrays) for k, v in state.items()}
    array = _float_array(state)
    if array is not None:
        name = f"a{len(arrays)}"
        arrays[name] = array
        return {ARRAY_REF: name}
    if isinstance(state, list):
        return [_extract(v, arrays) for v in state]
    return state


def _insert(state: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(state, dict):
        if set(state) == {ARRAY_REF}:
            return arrays[state[ARRAY_REF]].tolist()
        return {k: _insert(v, arrays) for k, v in state.items()}
    if isinstance(state, list):
        return [_insert(v, arrays) for v in state]
    return state
