"""What a run leaves for people: trials.csv, the top-k specs as YAML (best.yaml is the best), the
Pareto plot and a markdown summary, all rebuilt from the journal's trials at any time.

`best.yaml` is a plain ModelSpec file (`nas scale` picks the newest `runs/*/best.yaml` up by
default); the trial's proxy accuracy, latency and reward ride along as YAML comments.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from search_space.spec import ModelSpec

from nas.search.config import SearchConfig
from nas.common.files import write_text
from nas.search.journal import Trial
from nas.common.tables import format_rows

LEARNING_GROUPS = 5  # without a controller batch, the summary compares the run's consecutive fifths


def trial_rows(trials: list[Trial]) -> list[dict]:
    """One row per trial, exact numbers (`macs`, `latency_ms` unrounded); a `proxy epochs` column when some trials trained on a partial budget (Hyperband)."""
    budgeted = any("proxy_epochs" in t.extra for t in trials)
    rows = []
    for t in trials:
        spec = ModelSpec.from_dict(t.spec)
        budget = {"proxy epochs": t.extra.get("proxy_epochs", "all")} if budgeted else {}
        rows.append({
            "trial": t.trial + 1,
            "status": t.status,
            "accuracy": _round(t.accuracy, 4),
            "latency_ms": t.latency_ms,
            "reward": _round(t.reward, 4),
            **budget,
            "params": t.params,
            "macs": t.macs,
            "wall_s": t.wall_s,
            "blocks": " ".join(spec.block_strings),
            "decisions": "".join(map(str, t.decisions)),
            "error": t.error or "",
        })
    return rows


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def ranked(trials: list[Trial], k: int) -> list[Trial]:
    """The k best distinct architectures by reward (a re-sampled architecture counts once)."""
    seen, out = set(), []
    for t in sorted((t for t in trials if t.ok), key=lambda t: (-t.reward, t.trial)):
        key = tuple(t.decisions)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out[:k]


def spec_yaml(trial: Trial, run: str, rank: int) -> str:
    header = (f"# run '{run}', rank {rank}: trial {trial.trial + 1}, reward {trial.reward:.4f}, "
              f"proxy accuracy {trial.accuracy:.4f}, predicted latency {trial.latency_ms:.3f} ms, "
              f"{trial.params:,d} params, {trial.macs / 1e6:,.1f} M MACs\n")
    return header + ModelSpec.from_dict(trial.spec).to_yaml()


def learning_curve(trials: list[Trial], batch: int = 1) -> list[dict]:
    """Mean reward (failed trials count 0), mean accuracy and median latency of consecutive groups.

    Groups are the controller's update batches when it has them (the policy is fixed within one),
    else fifths of the run.
    """
    n = len(trials)
    if batch > 1 and n >= 2 * batch:
        bounds = [(start, min(start + batch, n)) for start in range(0, n, batch)]
    else:
        groups = min(LEARNING_GROUPS, n)
        bounds = [(g * n // groups, (g + 1) * n // groups) for g in range(groups)]
    rows = []
    for start, stop in bounds:
        part = trials[start:stop]
        ok = [t for t in part if t.ok]
        rows.append({"trials": f"{part[0].trial + 1}-{part[-1].trial + 1}",
                     "mean reward": round(statistics.mean(t.reward if t.ok else 0.0 for t in part), 4),
                     "mean accuracy": round(statistics.mean(t.accuracy for t in ok), 4) if ok else None,
                     "median latency (ms)": round(statistics.median(t.latency_ms for t in ok), 2) if ok else None})
    return rows


def summary_text(config: SearchConfig, trials: list[Trial], target_ms: float, top: list[Trial]) -> str:
    failed = sum(not t.ok for t in trials)
    lines = [f"# Search '{config.run.name}'", "",
             f"{len(trials)} of {config.run.trials} trials finished ({failed} failed); controller "
             f"`{config.controller}`, seed {config.run.seed}; latency `{config.latency.source}`, target "
             f"{target_ms:.3f} ms{f' ({config.latency.target_model})' if config.latency.target_model else ''}; "
             f"reward `{config.reward.kind}`; proxy {config.proxy.resolution or config.space.skeleton.resolution} px, "
             f"width x{config.proxy.width:g}, {config.proxy.epochs} epoch(s) on `{config.data.source}` data.", ""]
    if top:
        best = top[0]
        spec = ModelSpec.from_dict(best.spec)
        lines += [f"Best: trial {best.trial + 1}, reward {best.reward:.4f}, proxy accuracy {best.accuracy:.4f}, "
                  f"latency {best.latency_ms:.3f} ms, {best.params:,d} params, {best.macs / 1e6:,.1f} M MACs "
                  f"(`best.yaml`):", "", "```", *spec.block_strings, "```", "", "Top architectures:", "",
                  _markdown([{"rank": i + 1, "trial": t.trial + 1, "reward": round(t.reward, 4),
                              "accuracy": round(t.accuracy, 4), "latency (ms)": round(t.latency_ms, 3),
                              "params": t.params, "MACs (M)": round(t.macs / 1e6, 1)} for i, t in enumerate(top)]),
                  ""]
    else:
        lines += ["No trial finished successfully, so there is no best.yaml.", ""]
    if trials:
        lines += ["Through the run (a failed trial counts as reward 0): the controller learns if the mean reward rises.", "",
                  _markdown(learning_curve(trials, getattr(config.controller_options, "batch_size", 1))), ""]
    lines += ["Files: `config.yaml` (resolved), `journal.jsonl`, `trials.csv`, `best.yaml`, `top/<rank>.yaml`, "
              "`pareto.png`, `controller.json` with `controller.npz` (the controller's state)."]
    return "\n".join(lines) + "\n"


def _markdown(rows: list[dict]) -> str:
    columns = list(rows[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        out.append("| " + " | ".join("" if v is None else f"{v:,d}" if isinstance(v, int) else str(v)
                                     for v in row.values()) + " |")
    return "\n".join(out)


def write_results(root: Path, config: SearchConfig, trials: list[Trial], target_ms: float, plots: bool = True) -> str:
    """Write every output from `trials`; returns the summary (markdown)."""
    root = Path(root)
    trials = sorted(trials, key=lambda t: t.trial)  # with trials in flight (Ray) they finish out of order
    if trials:
        write_text(root / "trials.csv", format_rows(trial_rows(trials), "csv"))
    top = ranked(trials, config.run.top_k)
    for rank, trial in enumerate(top, 1):
        write_text(root / "top" / f"{rank}.yaml", spec_yaml(trial, config.run.name, rank))
    if top:
        write_text(root / "best.yaml", spec_yaml(top[0], config.run.name, 1))
    summary = summary_text(config, trials, target_ms, top)
    if plots:
        from nas.search.plots import pareto_plot

        pareto_plot(root / "pareto.png", trials, target_ms, title=f"search '{config.run.name}'",
                    latency_name=config.latency.source)
        write_text(root / "summary.md", summary)
    return summary
