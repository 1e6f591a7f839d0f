"""Shared by the benchmark scripts: where results go and how the machine is described."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """The lines of a markdown table; None cells are left empty."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows)]


def write_results(name: str, title: str, body: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    stamp = datetime.date.today().isoformat()
    path.write_text(f"# {title}\n\nMachine: {machine()}. Date: {stamp}.\n\n{body.rstrip()}\n")
    return path
