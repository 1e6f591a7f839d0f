"""Writing results: every failure a user can cause (bad path, no permission) is a `UserError`."""

from __future__ import annotations

import os
from pathlib import Path

from nas.common.errors import UserError


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_bytes(path: str | os.PathLike, content: bytes) -> Path:
    """Write atomically (temp file + rename) so an interrupted run never leaves half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(content)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write '{path}': {exc.strerror or exc}") from None
    return path
