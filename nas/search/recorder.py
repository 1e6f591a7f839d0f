"""The one path a finished trial takes, whichever executor ran it: journal (fsync) -> tell the
controller -> results files -> one progress line. The local loop and the Ray searcher both call
`TrialRecorder.record`, so the sequence is written once."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from nas.search.journal import Journal, Trial
from nas.common.tables import format_duration
from nas.search.results import write_results

FAILED_REWARD = 0.0  # what a controller hears for a failed trial: no better than a model that learns nothing


def told_reward(trial: Trial) -> float:
    """What the controller hears of a journaled trial."""
    return trial.reward if trial.ok else FAILED_REWARD


class TrialRecorder:
    """Records the run's finished trials; `trials` is the run's list and grows as they finish."""

    def __init__(self, root: Path, config, journal: Journal, trials: list[Trial], target_ms: float,
                 say: Callable[[str], None] = print):
        self.root, self.config, self.journal, self.trials = Path(root), config, journal, trials
        self.target_ms, self.say = target_ms, say
        self.timings: list[float] = []

    def record(self, trial: Trial, controller, concurrency: int = 1) -> None:
        self.journal.append(trial)  # on disk before the controller hears of it
        controller.tell(trial.decisions, told_reward(trial))
        self.trials.append(trial)
        self.timings.append(trial.wall_s)
        write_results(self.root, self.config, self.trials, self.target_ms, plots=False)
        self.progress(trial, concurrency)

    def progress(self, trial: Trial, concurrency: int = 1) -> None:
        """One line per finished trial: its result, the best so far, the time left at this pace."""
        trials, total = self.trials, self.config.run.trials
        done = [t for t in trials if t.ok]
        best = max(done, key=lambda t: t.reward, default=None)
        eta = (total - len(trials)) * sum(self.timings) / len(self.timings) / concurrency
        head = f"trial {len(trials)}/{total}"
        if trial.ok:
            body = f"acc {trial.accuracy:.3f}  lat {trial.latency_ms:.2f} ms  reward {trial.reward:.4f}"
        else:
            body = f"FAILED ({trial.error[:80]})"
        best_text = f"best {best.reward:.4f} (#{best.trial + 1})" if best else "best -"
        self.say(f"{head}  {body}  {best_text}  {trial.wall_s:.1f} s  ETA {format_duration(eta)}")
