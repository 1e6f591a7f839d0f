"""How long the default test command takes: `python -m pytest` (the README's second command after its
install), with a fresh HOME, CI=true and no stdin, as CI runs it.

    .venv/bin/python benchmarks/bench_test_suite.py        # runs the suite here (about 9 min on 2 cores)
    .venv/bin/python benchmarks/bench_test_suite.py --from-log LOG --wall-s SECONDS --where "a fresh clone"
        # records a run made elsewhere (a fresh clone in a new virtual environment): LOG is its output

Writes results/bench_test_suite.md: the wall time, pytest's summary (passed, failed, skipped,
deselected) and, when the run printed them (`--durations`), its slowest tests.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, markdown_table, write_results  # noqa: E402

SLOWEST = 15
MEASURES = ("tests", "nas", "latency", "scaling", "search_space", "experiments", "pyproject.toml",  # all the suite runs
            "benchmarks/freshness.py", "benchmarks/run_all", "benchmarks/bench_edgetpu_model.py")  # the tests import these
SUMMARY = re.compile(r"^=+ (?P<counts>.+?) in (?P<seconds>[\d.]+)s(?: \([\d:]+\))? =+$")
DURATION = re.compile(r"^(?P<seconds>[\d.]+)s (?P<phase>call|setup|teardown)\s+(?P<test>\S+)$")


def run_suite(log: Path) -> float:
    """Runs the default suite as CI does, its output into `log`; returns the wall time in seconds."""
    with tempfile.TemporaryDirectory() as home, log.open("w") as out:
        env = {**os.environ, "HOME": home, "CI": "true"}
        start = time.monotonic()
        # Every phase over a second goes into the log (per-file totals), the slowest into the report.
        subprocess.run([sys.executable, "-m", "pytest", "--durations=0", "--durations-min=1"], cwd=ROOT, env=env,
                       stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        return time.monotonic() - start


def report(text: str, wall_s: float, where: str) -> str:
    lines = text.splitlines()
    summary = next((m for line in reversed(lines) if (m := SUMMARY.match(line.strip()))), None)
    if summary is None:
        raise SystemExit("no pytest summary line in the log: did the run finish?")
    slowest = [m for line in lines if (m := DURATION.match(line.strip()))][:SLOWEST]
    body = [f"`python -m pytest` (the default suite, as pyproject.toml's addopts make it: `-m 'not slow'`, "
            f"two test processes, `-n 2 --dist loadscope`), {where}, HOME a fresh empty folder, "
            "CI=true, no stdin. Produced by `benchmarks/bench_test_suite.py`.", "",
            *markdown_table(["wall (s)", "wall (min)", "pytest's own time (s)", "result"],
                            [[f"{wall_s:.0f}", f"{wall_s / 60:.1f}", summary["seconds"], summary["counts"]]]), ""]
    if slowest:
        body += [f"Slowest {len(slowest)} test phases:", "",
                 *markdown_table(["s", "phase", "test"], [[m["seconds"], m["phase"], f"`{m['test']}`"] for m in slowest])]
    else:
        body += ["Slowest tests: not recorded (the run was made without `--durations`)."]
    return "\n".join(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from-log", type=Path, default=None, help="record this pytest output instead of running")
    parser.add_argument("--wall-s", type=float, default=None, help="with --from-log: the run's measured wall time")
    parser.add_argument("--where", default=None, help="with --from-log: where it ran (default: 'another checkout')")
    args = parser.parse_args()
    if args.from_log:
        if args.wall_s is None:
            parser.error("--from-log needs --wall-s")
        text, wall_s, where = args.from_log.read_text(), args.wall_s, args.where or "another checkout"
    else:
        log = ROOT / "benchmarks" / "out" / "test_suite.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        wall_s = run_suite(log)
        text, where = log.read_text(), "this checkout and its virtual environment"
    print(f"wrote {write_results('bench_test_suite', 'Default test suite: time', report(text, wall_s, where))}")


if __name__ == "__main__":
    main()
