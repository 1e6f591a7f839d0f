"""The Pareto plot of a search: proxy accuracy against predicted latency, with the target."""

from __future__ import annotations

from pathlib import Path

from nas.common.files import atomic_path

from nas.search.journal import Trial


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (latency, accuracy) points no other point beats on both: faster *and* at least as accurate."""
    front, best = [], float("-inf")
    for latency, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if accuracy > best:
            front.append((latency, accuracy))
            best = accuracy
    return front


def pareto_plot(path: Path, trials: list[Trial], target_ms: float, title: str, latency_name: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    ok = [t for t in trials if t.ok]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    try:
        if ok:
            points = ax.scatter([t.latency_ms for t in ok], [t.accuracy for t in ok], c=[t.trial + 1 for t in ok],
                                cmap="viridis", s=22, zorder=3)
            fig.colorbar(points, ax=ax, label="trial")
            front = pareto_front([(t.latency_ms, t.accuracy) for t in ok])
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="0.4", lw=1,
                    label="Pareto front", zorder=2)
            best = max(ok, key=lambda t: t.reward)
            ax.scatter([best.latency_ms], [best.accuracy], marker="*", s=220, facecolor="none",
                       edgecolor="crimson", lw=1.5, label=f"best reward (trial {best.trial + 1})", zorder=4)
        ax.axvline(target_ms, color="crimson", ls="--", lw=1, label=f"target {target_ms:.3g} ms")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 10, not 10^1
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}" if f"{value:g}"[0] in "25" else ""))
        ax.set_xlabel(f"predicted latency, ms ({latency_name}, log scale)")
        ax.set_ylabel("proxy validation accuracy")
        failed = len(trials) - len(ok)
        ax.set_title(f"{title}: {len(ok)} trials" + (f" ({failed} failed, not shown)" if failed else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
