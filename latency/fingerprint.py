"""Where a measurement was taken: the machine fingerprint, the measurement run, and the check that
refuses to combine pieces from different machines or runs.

A layer table, its calibration measurements and any held-out measurements only add up when they were
timed on the same machine with the same software (a table from an AVX-512 server says nothing about
an AVX2 laptop; a LiteRT upgrade changes its kernels) and in the same measurement run (the same
machine is a different machine when its neighbours change). Every file of measurements therefore
carries a `Fingerprint` and a run id, and every place that combines two files compares them first.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import secrets
from dataclasses import dataclass
from pathlib import Path

from search_space.errors import UserError

# The instruction sets LiteRT's int8 and float kernels (XNNPACK, ruy) choose their code paths by.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "amx_int8", "asimd", "asimddp", "i8mm", "sve")


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            info.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return info


def cpu_name() -> str:
    info = _cpuinfo()
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine()


def cpu_isa() -> str:
    """The relevant instruction-set flags this CPU reports (x86 `flags`, Arm `Features`)."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return " ".join(f for f in ISA_FLAGS if f in flags) or platform.machine()


def package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


@dataclass(frozen=True)
class Fingerprint:
    """What a timing depends on besides the model. Two measurements combine only when these are equal."""

    source: str
    device: str  # CPU model, or the accelerator and its host
    isa: str
    cores: int
    litert: str
    tensorflow: str
    threads: int
    quantization: str

    @classmethod
    def of_this_machine(cls, source: str, threads: int, quantization: str, device: str | None = None) -> "Fingerprint":
        return cls(source, device or cpu_name(), cpu_isa(), os.cpu_count() or 0, package_version("ai-edge-litert"),
                   package_version("tensorflow"), threads, quantization)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> "Fingerprint":
        try:
            data = json.loads(text)
            values = {f.name: data[f.name] for f in dataclasses.fields(cls)}
            return cls(**dict(values, cores=int(values["cores"]), threads=int(values["threads"])))
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{where}: the machine fingerprint is not valid; measure it again") from None

    def describe(self) -> str:
        if self.isa == "any":  # the cost model: the same numbers on every machine
            return f"{self.device}, {self.source} {self.quantization} (any machine)"
        return (f"{self.device} ({self.isa}; {self.cores} cores), {self.source} {self.quantization}, "
                f"{self.threads} thread{'s' if self.threads != 1 else ''}, LiteRT {self.litert}, "
                f"TensorFlow {self.tensorflow}")

    def differences(self, other: "Fingerprint") -> list[str]:
        return [f"{f.name} {getattr(self, f.name)!s}, not {getattr(other, f.name)!s}"
                for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)]


def new_run_id() -> str:
    """A measurement run: when it started (UTC) and a random suffix, so two runs never share an id."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


def check_same_machine(what: str, theirs: Fingerprint, other: str, ours: Fingerprint, advice: str) -> None:
    """One line, exit 2: `what` was measured on `theirs`, `other` is (on) `ours`."""
    if theirs != ours:
        raise UserError(f"{what} was measured on another machine or setup than {other} "
                        f"({'; '.join(theirs.differences(ours))}): {advice}")


def check_same_run(what: str, theirs: str, other: str, ours: str, advice: str) -> None:
    if theirs != ours:
        raise UserError(f"{what} belongs to measurement run {theirs}, {other} to run {ours}; "
                        f"measurements of different runs are never combined: {advice}")
