"""Search throughput: trials per minute of the default experiment, locally and on a local Ray cluster
with 1 and 2 trials in flight.

Each setting runs `nas search` (a fresh process, as a user runs it) over experiments/edgetpu.yaml
with `run.trials` = TRIALS and only `execution` changed. Two rates are reported: over the whole
command (Python and TensorFlow start, Ray cluster start, data loading: what a short run pays), and
in steady state (between the first and the last trial to finish, timed by the progress lines the
search prints as trials finish), which is what a long search runs at.

    .venv/bin/python benchmarks/bench_ray_throughput.py [--trials N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import markdown_table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "local (one process)": {"backend": "local", "max_concurrent": None},
    "local, 2 worker processes": {"backend": "local", "max_concurrent": 2},
    "Ray, 1 in flight (1 CPU each)": {"backend": "ray", "max_concurrent": 1, "resources_per_trial": {"cpu": 1}},
    "Ray, 1 in flight (2 CPU)": {"backend": "ray", "max_concurrent": 1, "resources_per_trial": {"cpu": 2}},
    "Ray, 2 in flight (1 CPU each)": {"backend": "ray", "max_concurrent": 2, "resources_per_trial": {"cpu": 1}},
}


def run(name: str, execution: dict, trials: int, work: Path) -> dict:
    data = yaml.safe_load((ROOT / "experiments" / "edgetpu.yaml").read_text())
    data["run"].update(trials=trials, name="bench")
    data["execution"] = execution
    config = work / f"{len(list(work.iterdir()))}.yaml"
    config.write_text(yaml.safe_dump(data))
    runs = work / f"runs-{config.stem}"
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "nas", "search", "--config", str(config), "--runs-dir", str(runs)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output, finish = [], []  # the search prints "trial k/N ..." as each trial finishes
    for line in child.stdout:
        output.append(line)
        if line.startswith("trial "):
            finish.append(time.perf_counter() - start)
    wall = time.perf_counter() - start
    if child.wait() != 0:
        raise SystemExit(f"{name}: nas search failed:\n{''.join(output)[-3000:]}")
    records = [json.loads(line) for line in (runs / "bench" / "journal.jsonl").read_text().splitlines()]
    proxy_s = [r["extra"]["proxy_s"] for r in records]
    # Steady state: between the first and the last trial to finish (the first carries the start-up).
    steady = (len(finish) - 1) / (finish[-1] - finish[0]) * 60 if len(finish) > 1 else None
    print(f"{name}: {wall:.0f} s, {trials / wall * 60:.2f} trials/min overall", flush=True)
    return {"setting": name, "wall (s)": round(wall, 1), "trials/min overall": round(trials / wall * 60, 2),
            "trials/min steady": None if steady is None else round(steady, 2),
            "median proxy (s)": round(sorted(proxy_s)[len(proxy_s) // 2], 1),
            "best reward": round(max(r["reward"] for r in records if r["status"] == "ok"), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, execution in SETTINGS.items():
            rows.append(run(name, execution, args.trials, Path(tmp)))
    columns = list(rows[0])
    table = markdown_table(columns, [[row[c] for c in columns] for row in rows])
    body = (f"`nas search` over experiments/edgetpu.yaml with {args.trials} trials, only `execution` changed "
            f"(`benchmarks/bench_ray_throughput.py`).\n\n" + "\n".join(table) + "\n")
    print(write_results("bench_ray_throughput", "Search throughput: local and Ray backends", body))


if __name__ == "__main__":
    main()
