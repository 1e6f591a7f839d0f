"""Shared by the benchmark scripts: where results go and how the run is described.

Every results file starts with its title line and then one header line from `header()`:
the date, the commit (`git rev-parse --short HEAD`, "-dirty" when the tree has changes) and the
machine (CPU model, cores, memory). `benchmarks/run_all` fixes the commit once for the whole run
(`BENCH_COMMIT`), so that results written by earlier scripts do not make later ones "dirty".
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections import Counter
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "memory unknown"


def machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores, {memory_gib()} RAM, Python {platform.python_version()}"


def commit() -> str:
    """`git rev-parse --short HEAD`, plus "-dirty" if tracked or untracked files differ from it, outside
    benchmarks/results/ (results written, or being written, say nothing of the code that measured them)."""
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", ".",
                                ":(exclude)benchmarks/results"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def commits_line(commits: list) -> str:
    """Where a results file accumulates measurements over runs (a JSON store), the commits they were made at:
    the header's commit is only when the file was last written."""
    counts = Counter(c or "unknown" for c in commits)
    return ("Measurements per commit they were made at: " + ", ".join(f"{c}: {n}" for c, n in counts.items())
            + " (the header's commit is when this file was last written).")


def load() -> str:
    """The 1-minute load average when the results were written: timings on a shared machine carry it."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "unknown"


def header() -> str:
    """The line every results file carries under its title."""
    return (f"Date: {datetime.date.today().isoformat()}. Commit: {commit()}. "
            f"Machine: {machine()}; load average {load()} when written.")


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """The lines of a markdown table; None cells are left empty."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows)]


def write_stamped(path: Path, text: str) -> Path:
    """Writes `text` (a markdown document whose first line is its title) with `header()` under the title."""
    title, _, rest = text.partition("\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{title}\n\n{header()}\n\n{rest.lstrip(chr(10)).rstrip()}\n")
    return path


def write_results(name: str, title: str, body: str) -> Path:
    return write_stamped(RESULTS / f"{name}.md", f"# {title}\n\n{body}")
