"""Resume integrity: a run records what it was started with, and `--resume` must match it.

At its first start a run writes `config.fingerprint.json` beside `config.yaml`: the resolved config
(every default filled in) and its SHA-256. `config.yaml` stays readable and editable by people, but
an edit is not a way to change a run: `--resume` compares the config it would continue with (the
run's `config.yaml`, or `--config FILE`) with the fingerprint and refuses, naming every changed
field, if they differ. A run whose trials were drawn from one space with one seed must not go on
with another: its best.yaml could lie outside the recorded space and its summary would report a
seed that produced none of the trials.

What may change: `run.trials` may grow (a bigger budget), never drop below the finished trials;
`execution.address` (a restarted Ray cluster gets a new one). Runs from before the fingerprint
existed are checked against their `config.yaml` and get a fingerprint from then on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from nas.common.errors import UserError
from nas.common.files import write_text

FINGERPRINT_FILE = "config.fingerprint.json"
MAY_CHANGE = (("run", "trials"), ("execution", "address"))


def fixed_part(resolved: dict) -> dict:
    """The resolved config without what a resume may change, normalised as YAML would round-trip it."""
    import yaml

    data = yaml.safe_load(yaml.safe_dump(resolved))
    for section, key in MAY_CHANGE:
        if isinstance(data.get(section), dict):
            data[section].pop(key, None)
    return data


def digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_fingerprint(root: Path, resolved: dict) -> None:
    fixed = fixed_part(resolved)
    write_text(root / FINGERPRINT_FILE, json.dumps({"sha256": digest(fixed), "config": fixed}, indent=1) + "\n")


def read_fingerprint(root: Path) -> dict | None:
    """The recorded fixed config, None for a run from before fingerprints; damage is a `UserError`."""
    path = root / FINGERPRINT_FILE
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        config = saved["config"]
        if digest(config) != saved["sha256"]:
            raise ValueError("its checksum does not match its content")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"'{path}' is damaged ({exc}); the run cannot be resumed safely, start a new one") from None
    return config


def differences(recorded: Any, current: Any, path: str = "") -> list[str]:
    """Every field (dotted path) whose value differs, with both values."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        found = []
        for key in list(recorded) + [k for k in current if k not in recorded]:
            found += differences(recorded.get(key), current.get(key), f"{path}.{key}" if path else str(key))
        return found
    return [] if recorded == current else [f"{path} ({_short(recorded)} in the run, {_short(current)} now)"]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_resume(root: Path, recorded: dict, resolved: dict, finished: int, source: str) -> None:
    """Refuse a resume whose config differs from the recorded one or whose budget is below the finished."""
    changed = differences(recorded, fixed_part(resolved))
    if changed:
        raise UserError(f"--resume: {source} differs from what run '{root}' was started with, in "
                        f"{len(changed)} field(s): {'; '.join(changed)}. Only run.trials may grow; resume "
                        f"with the run's own settings or start a new run with --name")
    trials = resolved["run"]["trials"]
    if trials < finished:
        raise UserError(f"--resume: --trials {trials} is below the {finished} trial(s) run '{root}' has "
                        f"finished; give --trials {finished} or more")
