"""Writing results atomically: a failure or a kill never leaves a partial file under the final name.

Every output (YAML, CSV, JSON, PNG, TFLite, checkpoints, SavedModels) is written under a unique
temporary name beside its final one (same directory, so the rename cannot cross file systems),
flushed to disk with fsync, then renamed over the final name; the directory is fsynced so the
rename itself survives a power cut. The temporary name is unique per write (`mkstemp`), so two
writers never share one. Any failure removes the temporary file and becomes a one-line
`UserError` (bad path, no permission, disk full); a kill -9 can leave only a hidden
`.NAME.*.tmp` file, never a partial NAME.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from search_space.errors import UserError


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_bytes(path: str | os.PathLike, content: bytes) -> Path:
    """Write `content` to `path` atomically (unique temp file, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
    return Path(path)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a rename is durable once its directory is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_file():
                fsync_path(child)
    fsync_path(path)


def _fail(path: Path, exc: OSError) -> UserError:
    return UserError(f"cannot write '{path}': {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """A temporary path for a writer that needs a file name (savefig, TensorFlow savers); on a clean
    exit the result is fsynced and renamed to `path`, on any error it is removed.

    `directory=True`: the writer makes a directory there (a SavedModel); an existing `path`
    directory is replaced only once the new one is complete.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if directory:
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            os.rmdir(tmp)  # the writer creates it (TensorFlow's savers want to make the directory)
        else:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as exc:
        raise _fail(path, exc) from None
    try:
        yield tmp
        _fsync_tree(tmp)
        if directory and path.is_dir():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        fsync_path(path.parent)
    except OSError as exc:
        _remove(tmp)
        raise _fail(path, exc) from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: Path) -> None:
    if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            tmp.unlink()
