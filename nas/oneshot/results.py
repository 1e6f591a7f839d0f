"""What a one-shot run leaves: the multi-trial search's files from its journal (`trials.csv`, `top/`,
`pareto.png`), then `best.yaml` as TuNAS exports (the most likely architecture at the end, not the
best sampled path), `probabilities.png` (each decision's probabilities over the run) and
`summary.md` (the chosen architecture, its final probabilities, then the search's summary)."""

from __future__ import annotations

from pathlib import Path

from nas.common.files import atomic_path, write_text
from nas.search.journal import Trial
from nas.search.results import summary_text, write_results
from search_space.space import DECISIONS


def write_oneshot_results(root: Path, config, trials: list[Trial], target_ms: float, controller, snapshots: list[dict],
                          search) -> None:
    write_results(root, config, trials, target_ms, plots=True)
    best = controller.best()
    latency, params, macs, _ = search.cost(best)
    spec = config.space.to_spec(best, name=f"{config.run.name}-oneshot")
    write_text(root / "best.yaml", f"# run '{config.run.name}': the controller's most likely architecture after "
                                   f"{len(trials)} of {config.run.trials} steps (decisions {''.join(map(str, best))}), "
                                   f"predicted latency {latency:.3f} ms, {params:,d} params, {macs / 1e6:,.1f} M MACs\n"
                                   + spec.to_yaml())
    if snapshots:
        probability_plot(root / "probabilities.png", config.space, snapshots)
    names = config.space.decision_names
    rows = []
    probabilities = controller.probabilities()
    for i, p in sorted(probabilities.items()):
        stage, decision = divmod(i, len(DECISIONS))
        options = config.space.stages[stage].options(DECISIONS[decision])
        rows.append(f"| {names[i]} | " + ", ".join(f"{o}: {q:.2f}" for o, q in zip(options, p)) + " |")
    text = [f"# One-shot search '{config.run.name}'", "",
            f"Chosen (`best.yaml`, each decision's most likely option after {len(trials)} steps): predicted latency "
            f"{latency:.3f} ms against the target {target_ms:.3f} ms, {params:,d} params, {macs / 1e6:,.1f} M MACs.",
            "", "```", *spec.block_strings, "```", "",
            "Each decision's probabilities at the end (their course over the run: `probabilities.png`):", "",
            "| decision | probabilities |", "|---|---|", *rows, "",
            "Below, every sampled path is one trial (`trials.csv`, `top/`: the best sampled paths by reward).", "",
            summary_text(config, trials, target_ms, []).replace("# Search", "## Sampled paths of", 1)]
    write_text(root / "summary.md", "\n".join(text))


def probability_plot(path: Path, space, snapshots: list[dict]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(int(k) for k in snapshots[-1]["probabilities"])
    columns = [d for d in DECISIONS if any(k % len(DECISIONS) == DECISIONS.index(d) for k in keys)]
    rows = len(space.stages)
    fig, axes = plt.subplots(rows, len(columns), figsize=(2.2 * len(columns), 1.6 * rows), dpi=100, squeeze=False,
                             sharex=True, sharey=True)
    steps = [s["step"] for s in snapshots]
    try:
        for ax in axes.flat:
            ax.set_visible(False)
        for k in keys:
            stage, d = divmod(k, len(DECISIONS))
            ax = axes[stage][columns.index(DECISIONS[d])]
            ax.set_visible(True)
            options = space.stages[stage].options(DECISIONS[d])
            for j, option in enumerate(options):
                ax.plot(steps, [s["probabilities"][str(k)][j] for s in snapshots], lw=1, label=str(option))
            ax.set_title(f"stage {stage} {DECISIONS[d]}", fontsize=7)
            ax.legend(fontsize=5, loc="upper left")
            ax.tick_params(labelsize=6)
            ax.set_ylim(0, 1)
        fig.suptitle("controller probabilities per decision over the steps", fontsize=9)
        fig.tight_layout()
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)
