"""The run's journal: one JSON line per finished trial, flushed and fsynced before anyone acts on it.

The journal is the run's source of truth. A trial is appended (and on disk) before the controller
hears its reward, so a crash at any moment loses at most the trial in flight, never a finished
one; `--resume` rebuilds everything else (controller state, CSV, plots) from it. A process killed
while writing leaves a partial last line: reading drops it (that trial simply runs again) and
`repair` cuts it off before new lines are appended.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.common.errors import UserError

OK, FAILED = "ok", "failed"


@dataclass(frozen=True)
class Trial:
    trial: int  # 0-based: the order in which the controller proposed it
    decisions: list[int]
    spec: dict[str, Any]  # the full-size candidate, ModelSpec.to_dict()
    status: str  # "ok" or "failed"
    accuracy: float | None  # proxy validation top-1
    latency_ms: float | None  # predicted for the full-size candidate
    reward: float | None
    params: int
    macs: int
    wall_s: float  # the whole trial: latency prediction and proxy training
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # proxy details: train loss, proxy seconds

    @property
    def ok(self) -> bool:
        return self.status == OK


class Journal:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def read(self) -> list[Trial]:
        """Every complete record in the order they finished; a torn last line (a crash mid-write) is
        ignored. Locally that is trial order; with trials in flight (Ray) it need not be."""
        if not self.path.exists():
            return []
        trials = []
        lines = self.path.read_bytes().split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                trials.append(Trial(**json.loads(line)))
            except (ValueError, TypeError) as exc:
                if number == len(lines):  # the last line, not newline-terminated: torn by a crash
                    break
                raise UserError(f"journal '{self.path}' line {number} is damaged ({exc}); "
                                f"remove that line to resume") from None
        seen: set[int] = set()
        for line, trial in enumerate(trials, 1):
            if trial.trial in seen:
                raise UserError(f"journal '{self.path}' line {line} holds trial {trial.trial + 1} a second time")
            seen.add(trial.trial)
        return trials

    def repair(self) -> None:
        """Cut a torn last line so appends start on a fresh line."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            try:  # the crash came just before the newline: the record is whole, keep it
                Trial(**json.loads(data[keep:]))
                keep = len(data)
            except (ValueError, TypeError):
                pass
            with open(self.path, "r+b") as f:
                f.truncate(keep)
                if keep == len(data):
                    f.seek(keep)
                    f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())

    def append(self, trial: Trial) -> None:
        line = json.dumps(asdict(trial), separators=(",", ":"), allow_nan=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise UserError(f"cannot write the journal '{self.path}': {exc.strerror or exc}") from None
