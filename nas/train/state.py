"""The training checkpoint: one TF1-style file that is both the export checkpoint and the resume state.

It is written in the layout `nas.deploy.checkpoints` reads (docs/guides/reproducing.md, "The checkpoint layout"): `spec.yaml` beside
`model.ckpt-<step>.{index,data-*}` and a `checkpoint` state file naming it; the raw weights under the
reference names `<model>/<scope>/<weight>`, their moving averages under `.../ExponentialMovingAverage`
(which `load_model` prefers, so export and eval get the averaged weights, as with a released
checkpoint), the optimiser slots under `.../RMSProp`, `.../RMSProp_1` (or Adam's) and `global_step`,
which the loader ignores. So `nas export --ckpt RUN_DIR` needs nothing else.

Crash safety: the files of step N are written under their own prefix and fsynced, and only then is
the `checkpoint` state file replaced (temp name, fsync, rename); older prefixes are removed after
that. A kill at any moment leaves the state file naming a complete checkpoint.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from nas.deploy.checkpoints import EMA
from nas.common.files import fsync_path, write_bytes
from nas.common.errors import UserError

PREFIX = "model.ckpt"


def _value(variable) -> np.ndarray:
    value = variable.value if hasattr(variable, "value") and not callable(variable.value) else variable
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def _own_files(prefix: str) -> re.Pattern:
    """The complete files of checkpoint `prefix` (its index and data shards; not TensorFlow's temporaries)."""
    return re.compile(re.escape(prefix) + r"\.(index|data-\d{5}-of-\d{5})")


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _write_failed(run_dir: Path, step: int, need: int, exc: Exception) -> UserError:
    """The one line for a checkpoint that could not be written: the directory, the space it needed and
    what is free, never TensorFlow's op and function names."""
    try:
        free = shutil.disk_usage(run_dir).free
    except OSError:
        free = None
    errno_ = getattr(exc, "errno", None)
    text = exc.message if isinstance(exc, tf.errors.OpError) else (exc.strerror or str(exc))
    if errno_ == errno.ENOSPC or "No space left" in text or (free is not None and free < need):
        there = f", {_megabytes(free)} is free there" if free is not None else ""
        return UserError(f"cannot write checkpoint {step} into '{run_dir}': the disk is full (the checkpoint "
                         f"needs about {_megabytes(need)}{there}); free some space and add --resume: the run "
                         "goes on from its last complete checkpoint")
    # TF's message: "{{function_node __wrapped__SaveV2_...}} PATH; REASON [Op:SaveV2]": keep the reason.
    reason = re.sub(r"^\{\{.*?\}\}\s*", "", text.splitlines()[0] if text else "")
    reason = re.sub(r"\s*\[Op:\w+\]$", "", reason).rsplit("; ", 1)[-1]
    return UserError(f"cannot write checkpoint {step} into '{run_dir}': {reason}")


def save(run_dir: Path, step: int, weights: dict, shadows: dict, slots: dict) -> str:
    """Write checkpoint `step`: `weights` {name: var}, `shadows` {name: shadow}, `slots` {slot name: var}.

    A failure (a full disk, an I/O error) removes every file of step `step` written so far, TensorFlow's
    temporaries included, and is one `UserError` naming the directory and the space needed; the
    checkpoint the state file names stays as it was."""
    prefix = run_dir / f"{PREFIX}-{step}"
    tensors = {name: _value(v) for name, v in weights.items()}
    tensors.update({f"{name}/{EMA}": _value(shadows[name]) for name in weights})
    tensors.update({name: _value(v) for name, v in slots.items()})
    tensors["global_step"] = np.asarray(step, np.int64)
    names = sorted(tensors)
    need = sum(a.nbytes for a in tensors.values()) + 64 * len(names)  # the data shard and its index
    try:
        tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=[tensors[n] for n in names])
        for path in run_dir.glob(f"{prefix.name}.*"):
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        fsync_path(run_dir)
        write_bytes(run_dir / "checkpoint", f'model_checkpoint_path: "{prefix.name}"\n'
                                              f'all_model_checkpoint_paths: "{prefix.name}"\n'.encode())
    except (tf.errors.OpError, OSError, UserError) as exc:
        for path in run_dir.glob(f"{prefix.name}.*"):
            path.unlink(missing_ok=True)
        raise _write_failed(run_dir, step, need, exc) from None
    own = _own_files(prefix.name)
    for old in run_dir.glob(f"{PREFIX}-*"):  # only after the state file names the new one
        # Older checkpoints, and whatever a kill in the middle of a write left (TF's .tempstate files).
        if not own.fullmatch(old.name):
            old.unlink(missing_ok=True)
    return str(prefix)


def latest(run_dir: Path) -> str | None:
    state = run_dir / "checkpoint"
    if not state.is_file():
        return None
    path = tf.train.latest_checkpoint(str(run_dir))
    return path if path and Path(path + ".index").is_file() else None


def restore(prefix: str, weights: dict, shadows: dict, slots: dict) -> int:
    """Assign everything `save` wrote; returns the global step. `shadows` may hold numpy arrays
    (the moving average's host copies), which are filled in place."""
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    wanted = {**weights, **{f"{n}/{EMA}": shadows[n] for n in weights}, **slots}
    missing = [n for n in wanted if n not in shapes]
    if missing:
        raise UserError(f"checkpoint '{prefix}' lacks {len(missing)} training variables (e.g. {missing[0]}): "
                        "it was not written by this recipe; start a new --run-dir")
    for name, variable in wanted.items():
        if list(shapes[name]) != list(variable.shape):
            raise UserError(f"checkpoint '{prefix}': {name} is {shapes[name]}, the model's is "
                            f"{list(variable.shape)}: the spec changed since it was written")
        if isinstance(variable, np.ndarray):
            variable[...] = reader.get_tensor(name)
        else:
            variable.assign(reader.get_tensor(name))
    return int(reader.get_tensor("global_step"))
