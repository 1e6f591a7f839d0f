"""One owner per run directory: an OS-level lock on `RUN_DIR/.lock` that dies with its process.

    with run_lock(run_dir):          # or: lock = acquire_run_lock(run_dir); ...; lock.release()
        ...                          # only this process writes the run directory

`fcntl.flock` is held by the open file description, so the kernel releases it when the holder
exits however it exits (kill -9 included): there is never a stale lock to clean up by hand. The
holder's pid is written inside only to name it in the second process's error; the pid is not what
locks. A second process does not wait: it raises `UserError` (one line, exit 2) at once, before it
reads or writes anything in the directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from nas.common.errors import UserError

LOCK_NAME = ".lock"


class RunLock:
    """A held lock on one directory; `release()` (or process exit) lets the next owner in."""

    def __init__(self, directory: Path, fd: int):
        self.directory, self._fd = directory, fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            # The file stays: unlinking it would let a third process lock a fresh inode while a
            # second still holds the old one (two owners).
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return f"process {text}" if text.isdigit() else "another process"


def acquire_run_lock(directory: str | os.PathLike, what: str = "run directory") -> RunLock:
    """Lock `directory` (created if missing) for this process, or raise `UserError` naming the holder."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{what} '{directory}' is a file, not a directory; give a directory path")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot use {what} '{directory}': {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise UserError(f"{what} '{directory}' is in use by {holder}; wait for it to finish "
                        f"(or stop it) before starting another there") from None
    except OSError as exc:
        os.close(fd)
        raise UserError(f"cannot lock {what} '{directory}': {exc.strerror or exc}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return RunLock(directory, fd)


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike, what: str = "run directory") -> Iterator[RunLock]:
    lock = acquire_run_lock(directory, what)
    try:
        yield lock
    finally:
        lock.release()
