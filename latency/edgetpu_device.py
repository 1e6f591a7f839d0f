"""Timing on a Coral Edge TPU: `edgetpu_compiler` for the file, the `libedgetpu.so.1` delegate to run it.

Both come from Coral's apt repository (https://coral.ai/software/#debian-packages), not from PyPI:
`sudo apt-get install edgetpu-compiler libedgetpu1-std`. When either is missing, or no device is
attached, this module stops with one line saying which and how to install it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from search_space.errors import UserError

COMPILER = "edgetpu_compiler"
RUNTIME = "libedgetpu.so.1"
APT_HINT = "from Coral's apt repository (https://coral.ai/software/#debian-packages)"


def compiler_path() -> str:
    path = shutil.which(COMPILER)
    if path is None:
        raise UserError(f"{COMPILER} is not on PATH: install the 'edgetpu-compiler' package {APT_HINT}")
    return path


def load_edgetpu_delegate():
    """The Edge TPU delegate; needs the runtime library and an attached device."""
    try:
        from ai_edge_litert.interpreter import load_delegate
    except ImportError:
        try:
            from tflite_runtime.interpreter import load_delegate  # type: ignore[no-redef]
        except ImportError:
            raise UserError("no TFLite interpreter to load the Edge TPU delegate: pip install ai-edge-litert") from None
    try:
        return load_delegate(RUNTIME)
    except (ValueError, OSError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot load the Edge TPU runtime {RUNTIME} ({reason}): install 'libedgetpu1-std' "
                        f"{APT_HINT} and attach a Coral device") from None


def check_edgetpu() -> None:
    """Fail fast, before any conversion, when the compiler or the runtime/device is missing."""
    compiler_path()
    load_edgetpu_delegate()


def compile_for_edgetpu(content: bytes) -> bytes:
    """Run edgetpu_compiler on a full-int8 .tflite; returns the compiled file's bytes."""
    compiler = compiler_path()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "model.tflite"
        source.write_bytes(content)
        result = subprocess.run([compiler, "--out_dir", tmp, "--show_operations", str(source)],
                                capture_output=True, text=True)
        compiled = Path(tmp) / "model_edgetpu.tflite"
        if result.returncode != 0 or not compiled.exists():
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            raise UserError(f"{COMPILER} failed (exit {result.returncode}): {lines[-1]}")
        return compiled.read_bytes()


def edgetpu_invokes(contents: Sequence[bytes]) -> list:
    """Compile each int8 model and load it with the Edge TPU delegate: one bare-invoke callable each."""
    from latency.measure import interpreter_invoke
    from search_space.tflite import load_interpreter

    delegate = load_edgetpu_delegate()
    return [interpreter_invoke(load_interpreter(compile_for_edgetpu(c), delegates=[delegate])) for c in contents]


def time_on_edgetpu(contents: Sequence[bytes], warmup: int, repeats: int):
    """Compile each int8 model, run it through the Edge TPU delegate, time it (`time_warm`)."""
    from latency.measure import time_warm

    return time_warm(edgetpu_invokes(contents), warmup, repeats)
