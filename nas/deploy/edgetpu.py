"""Running a compiled `<stem>_edgetpu.tflite` on a Coral Edge TPU through its TFLite delegate.

`edgetpu_compiler` replaces the ops it maps by one custom op, `edgetpu-custom-op`, that only the Edge
TPU runtime (`libedgetpu.so.1`, Coral's package `libedgetpu1-std`) can execute: the plain interpreter
refuses such a file. The runtime is a TFLite external delegate, loaded with LiteRT's `load_delegate`;
creating the delegate opens the first Edge TPU it finds (or the one named by `device`, e.g. `usb:0`,
`pci:0`) and fails when there is none. The two failures get different lines: no runtime installed,
or a runtime that found no device.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from nas.common.errors import UserError

EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_OP = b"edgetpu-custom-op"
RUNTIME_INSTALL = ("install Coral's Edge TPU runtime, package libedgetpu1-std "
                   "(https://coral.ai/docs/accelerator/get-started/)")


def is_compiled(path: str | os.PathLike, content: bytes | None = None) -> bool:
    """True for a file `edgetpu_compiler` wrote: it holds the Edge TPU's custom op (or is named so)."""
    path = Path(path)
    if path.name.endswith("_edgetpu.tflite"):
        return True
    if content is None:
        try:
            content = path.read_bytes()
        except OSError:
            return False
    return EDGETPU_OP in content


def load_delegate(model: str | os.PathLike, library: str = EDGETPU_LIBRARY, device: str | None = None):
    """The Edge TPU delegate for running `model`; no runtime or no device is one `UserError` line."""
    try:
        ctypes.CDLL(library)
    except OSError:
        raise UserError(f"cannot run '{model}' on the Edge TPU: its runtime {library} is not installed; "
                        f"{RUNTIME_INSTALL}") from None
    try:
        from ai_edge_litert.interpreter import load_delegate as litert_load_delegate
    except ImportError:
        from tflite_runtime.interpreter import load_delegate as litert_load_delegate  # type: ignore[no-redef]
    try:
        return litert_load_delegate(library, {"device": device} if device else {})
    except (ValueError, AttributeError) as exc:
        # LiteRT's message is "Failed to load delegate from LIB\n<what the library reported>".
        detail = " ".join(str(exc).split("\n", 1)[-1].split())
        where = f" '{device}'" if device else ""
        raise UserError(f"cannot run '{model}' on the Edge TPU: no Edge TPU device{where} found ({library} "
                        f"loaded but opened none{': ' + detail if detail.strip() else ''}); plug in the "
                        "Coral accelerator (USB) or load its driver (PCIe), or evaluate the file "
                        "edgetpu_compiler read instead") from None
