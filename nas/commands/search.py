"""`nas search`: run (or resume, or preview) an MNAS-style architecture search from a YAML config."""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
from pathlib import Path

from search_space.counting import model_cost
from nas.common.bounds import int_at_least
from nas.common.errors import UserError
from search_space.space import DECISIONS

from nas.search.config import DEFAULT_CONFIG, ONESHOT_CONTROLLER, SearchConfig, load_config, make_latency, shipped_configs
from nas.common.tables import format_rows

DEFAULT_RUNS_DIR = "runs"


def _say(line: str) -> None:
    print(line, flush=True)


def _option_text(decision: str, value) -> str:
    if decision == "skip":
        return "identity" if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return f"{value:+d}" if isinstance(value, int) and value < 0 else str(value)


def describe(config: SearchConfig, samples: int) -> str:
    """The space stage by stage, its size, the objective, and a few samples with their costs."""
    space = config.space
    latency_model, target_ms = make_latency(config)
    free = sum(n > 1 for n in space.cardinalities)
    lines = [f"search space over '{space.skeleton.name}': {len(space.stages)} stages, "
             f"{len(space.cardinalities)} decisions ({free} with a choice), {space.size:,d} architectures "
             f"({_short_count(space.size)})", ""]
    stage_rows = []
    for i, (base, stage) in enumerate(zip(space.skeleton.blocks, space.stages)):
        row = {"stage": i, "skeleton block": str(base)}
        for d in DECISIONS:
            row[d] = " | ".join(_option_text(d, v) for v in stage.options(d))
        stage_rows.append(row)
    lines.append(format_rows(stage_rows, "table").rstrip())
    target = f"{target_ms:.3f} ms" + (f" ({config.latency.target_model})" if config.latency.target_model else "")
    resolution = config.proxy.resolution or space.skeleton.resolution
    options = ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(config.controller_options).items())
    chosen = f" (source auto: {config.latency_choice})" if config.latency_choice else ""
    lines += ["", f"latency: {latency_model.name}, target {target}{chosen}",
              f"reward: {config.reward.describe(target_ms)}",
              f"controller: {config.controller}" + (f" ({options})" if options else ""),
              f"budget: {config.run.trials} trials, seed {config.run.seed}; proxy: {resolution} px, width "
              f"x{config.proxy.width:g}, {config.proxy.epochs} epoch(s), data '{config.data.source}'",
              f"execution: {_execution_text(config)}", *_proxy_warnings(config), "",
              f"{samples} random samples (seed {config.run.seed}):"]
    rng = random.Random(config.run.seed)
    rows = []
    for i in range(samples):
        decisions = space.sample(rng)
        spec = space.to_spec(decisions)
        cost = model_cost(spec)
        rows.append({"#": i + 1, "params": cost.params, "MACs (M)": round(cost.macs / 1e6, 1),
                     "latency (ms)": round(latency_model.predict_ms(spec), 3), "blocks": " ".join(spec.block_strings)})
    lines.append(format_rows(rows, "table").rstrip())
    return "\n".join(lines) + "\n"


def _short_count(n: int) -> str:
    """8916100448256 -> '8.9e12': the leading digits and the power of ten, never rounded into the next power."""
    digits = str(n)
    return digits if len(digits) <= 4 else f"{digits[0]}.{digits[1]}e{len(digits) - 1}"


# The proxy resolution below this fraction of the data's image side throws away most of what the images
# show (a 16 px proxy on 400 px photos keeps 1/625 of the pixels): the dry run says so.
PROXY_FRACTION_WARNED = 1 / 8


def _proxy_warnings(config: SearchConfig) -> list[str]:
    from nas.data.base import data_source

    resolution = config.proxy.resolution or config.space.skeleton.resolution
    size = data_source(config.data).image_size(config.data)
    if size is None or resolution >= size * PROXY_FRACTION_WARNED:
        return []
    suggested = min(max(32, 1 << (size // 4).bit_length() - 1), config.space.skeleton.resolution)
    return [f"warning: the proxy trains at {resolution} px on images of about {size} px (data '{config.data.source}'): "
            f"it sees little of what they hold; raise proxy.resolution in the config (to {suggested} or more)"]


def _execution_text(config: SearchConfig) -> str:
    e = config.execution
    if not e.ray:
        if e.local_workers == 1:
            return "local, one trial at a time"
        from nas.search.parallel import worker_threads

        return (f"local, {e.local_workers} trials at once in worker processes, "
                f"{worker_threads(e.local_workers)} TensorFlow thread(s) each")
    flight = f"{e.max_concurrent} trial(s)" if e.max_concurrent else "as many trials as fit"
    return (f"Ray at {e.address}, {flight} in flight, {e.resources_per_trial.cpu:g} CPU and "
            f"{e.resources_per_trial.gpu:g} GPU each, {e.max_failures} retries")


def _config(args: argparse.Namespace) -> tuple[SearchConfig, Path]:
    from nas.search.loop import load_run_config

    if args.config is None and args.resume and args.run_dir:  # continue a run with its own config
        if args.set:
            raise UserError("--set changes a config: give it with --config (the run's own config.yaml is kept as is)")
        run_dir = Path(args.run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise UserError(f"run directory '{run_dir}' is a file, not a directory; give the run's directory")
        if not (run_dir / "config.yaml").is_file():
            raise UserError(f"nothing to resume in '{run_dir}' (no config.yaml)")
        config = load_run_config(run_dir)
    else:
        config = load_config(DEFAULT_CONFIG if args.config is None else args.config, args.set)
    run = config.run
    if args.name is not None:
        run = dataclasses.replace(run, name=args.name)
    if args.trials is not None:
        run = dataclasses.replace(run, trials=args.trials)
    if args.seed is not None:
        run = dataclasses.replace(run, seed=args.seed)
    config = dataclasses.replace(config, run=run)
    run_dir = Path(args.run_dir) if args.run_dir else Path(args.runs_dir) / config.run.name
    return config, run_dir


def _run(args: argparse.Namespace) -> int:
    config, run_dir = _config(args)
    oneshot = config.controller == ONESHOT_CONTROLLER
    if args.dry_run:
        text = describe(config, args.samples)
        if oneshot:
            from nas.oneshot.search import describe_supernet

            text += describe_supernet(config)
        print(text, end="")
        return 0
    if config.latency_choice:  # the run's config.yaml records the source; say why here
        _say(f"latency.source auto: {config.latency.source}, {config.latency_choice}")
    own_config = args.config is None and args.resume and args.run_dir
    if oneshot:
        from nas.oneshot.search import OneShotSearch

        OneShotSearch(config, run_dir, say=_say).run(resume=args.resume, config_given=not own_config)
        return 0
    from nas.search.loop import Search

    trials = Search(config, run_dir, say=_say).run(resume=args.resume, config_given=not own_config)
    if trials and not any(t.ok for t in trials):  # results are written; the run produced nothing usable
        print(f"nas: error: every one of the {len(trials)} trials failed (first error: {trials[0].error}); "
              f"see {run_dir / 'journal.jsonl'}", file=sys.stderr)
        return 1
    return 0


EXAMPLES = """\
examples:
  nas search --dry-run                           # the default search (shipped config 'edgetpu'): space, target, samples
  nas search                                     # run it into runs/edgetpu/ (about 10 minutes on a laptop)
  nas search --config experiments/photos.yaml    # your own config file (or a shipped config's name)
  nas search --config photos --name bolts --trials 32
  nas search --run-dir runs/edgetpu --resume     # continue after Ctrl-C: nothing finished runs again
"""


def register(commands) -> None:
    parser = commands.add_parser(
        "search", help="search an architecture: controller, proxy training, latency-aware reward",
        description="Run an MNAS-style search from a YAML config into runs/<name>/ (resolved config, journal, "
                    "trials.csv, best.yaml, top/, pareto.png, summary.md). Ctrl-C is safe: continue with --resume.",
        epilog=EXAMPLES)
    parser.add_argument("--config", metavar="FILE|NAME",
                        help=f"search config: a YAML file, or the name of a shipped one "
                             f"({', '.join(shipped_configs())}; default: {DEFAULT_CONFIG})")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one setting of the config (repeatable; VALUE in YAML, paths relative to "
                             "the working directory), e.g. --set data.path=parts --set proxy.epochs=5")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in the run directory: nothing finished is run again")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the space, its size, the objective and a few samples; train nothing")
    parser.add_argument("--samples", type=int_at_least(1), default=5, help="samples shown by --dry-run (default 5)")
    parser.add_argument("--name", help="run name (default: run.name, else the config file's name)")
    parser.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR, metavar="DIR",
                        help=f"where run directories go (default: {DEFAULT_RUNS_DIR})")
    parser.add_argument("--run-dir", metavar="DIR", help="the run directory itself (default: RUNS_DIR/NAME)")
    parser.add_argument("--trials", type=int_at_least(1), help="override run.trials (may grow on --resume)")
    parser.add_argument("--seed", type=int_at_least(0), help="override run.seed")
    parser.set_defaults(run=_run)
