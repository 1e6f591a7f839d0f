"""`nas scale`: compound-scale a baseline by phi or by a published preset; `nas scale search` finds
alpha, beta, gamma under a cost budget.

The base is `--spec FILE`, `--model NAME`, or by default the newest `<runs-dir>/<run>/best.yaml` a
search wrote, else efficientnet-edgetpu-S. Every scaled model is written as a ModelSpec YAML file.

`nas scale search` lists the grid's triples whose phi = 1 model costs about `--target` times the
base. Without `--config` they are ranked by closeness of the cost ratio to the target. With
`--config FILE` (a search config: its `run.seed`, `proxy`, `data` and `execution` sections are used,
the rest is only checked) each distinct feasible phi = 1 network is trained on the proxy task and the
triples are ranked by its validation accuracy, as the paper picks alpha, beta, gamma:

- only the `--max-scored N` distinct networks whose cost ratio is closest to the target are trained
  (default 10); the rest are listed after them, not scored, and failed trainings last;
- the proxy shrinks width by `proxy.width` (so beta still counts), keeps the depth (alpha), and
  trains each model at `round(proxy.resolution * model resolution / base resolution)` px (at least
  8), so gamma survives the proxy's small images; with `proxy.resolution: null`, at the model's own;
- every model, and the base (phi = 0, trained once as a reference), uses the same seed `run.seed`,
  so the differences come from the coefficients;
- the jobs run in this process one at a time, or as Ray tasks (`execution: {backend: ray}`), with a
  progress line per finished model on stderr.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from search_space import REGISTRY, ModelSpec, count_macs, get_spec, model_cost
from search_space.registry import load_spec_file
from scaling import (
    DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA, DEFAULT_GRID, PRESETS, RESOLUTION_DIVISOR, apply_preset, grid,
    nominal_cost_factor, proxy_resolution, scale_phi, search_coefficients,
)
from scaling.search import DEFAULT_TARGET, DEFAULT_TOLERANCE

from nas.common.errors import UserError
from nas.common.bounds import check_resolution
from nas.common.files import write_text
from nas.common.tables import FORMATS, format_rows
from nas.proxy.scoring import ProxyScorer

DEFAULT_BASE = "efficientnet-edgetpu-S"
DEFAULT_RUNS_DIR = "runs"
DEFAULT_LATENCY = "sim"
DEFAULT_MAX_SCORED = 10


# Parsing: values are read here, not by argparse, so a bad one is a one-line UserError (exit 2).

def _number(option: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{option}: '{text}' is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{option}: '{text}' is not a finite number")
    return value


def _positive(option: str, text: str) -> float:
    value = _number(option, text)
    if value <= 0:
        raise UserError(f"{option} must be a positive number, got {text}")
    return value


def _whole(option: str, text: str) -> int:
    value = _number(option, text)
    if value != int(value) or value < 1:
        raise UserError(f"{option} must be a positive whole number, got {text}")
    return int(value)


def _phis(texts: list[str]) -> list[float]:
    values = []
    for text in (t for item in texts for t in item.split(",") if t.strip()):
        value = _number("--phi", text.strip())
        if value < 0:
            raise UserError(f"--phi must be >= 0, got {text.strip()}")
        values.append(value)
    if not values:
        raise UserError("--phi needs at least one value")
    return values


def _grid(option: str, text: str) -> tuple[float, ...]:
    """'LO:HI:STEP', a comma list '1.1,1.2', or one value."""
    parts = text.split(":")
    if len(parts) == 3:
        low, high, step = (_positive(option, p) for p in parts)
        try:
            return grid(low, high, step)
        except UserError as exc:
            raise UserError(f"{option}: {exc}") from None
    if len(parts) == 1:
        return tuple(_positive(option, p.strip()) for p in text.split(",") if p.strip())
    raise UserError(f"{option}: expected LO:HI:STEP, a comma list or one value, got '{text}'")


# The base model.

def latest_run_spec(runs_dir: Path) -> Path | None:
    """The newest `<runs_dir>/<run>/best.yaml`, or None."""
    found = [p for p in runs_dir.glob("*/best.yaml") if p.is_file()] if runs_dir.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def resolve_base(args: argparse.Namespace) -> tuple[ModelSpec, str]:
    """The base spec and a line saying where it came from."""
    if args.spec and args.model:
        raise UserError("give either --spec FILE or --model NAME, not both")
    if args.spec:
        return load_spec_file(Path(args.spec)), f"spec file {args.spec}"
    if args.model:
        return get_spec(args.model), "registry" if args.model in REGISTRY else f"spec file {args.model}"
    runs_dir = Path(args.runs_dir or DEFAULT_RUNS_DIR)
    if args.runs_dir and not runs_dir.is_dir():
        raise UserError(f"runs directory '{runs_dir}' does not exist")
    best = latest_run_spec(runs_dir)
    if best is not None:
        return load_spec_file(best), f"latest search run, {best}"
    if args.runs_dir:
        raise UserError(f"no search run with a best.yaml under '{runs_dir}'")
    return REGISTRY[DEFAULT_BASE], f"default; no search run under {runs_dir}/"


def _latency_model(source: str | None, required: bool):
    """The latency model, or None when the default source is not available (the column is left out)."""
    if source == "none" and not required:
        return None, "latency column off (--latency none)"
    from latency import make_latency_model

    try:
        return make_latency_model(source or DEFAULT_LATENCY), ""
    except UserError as exc:
        if source is not None or required:
            raise
        return None, f"no latency column: default source '{DEFAULT_LATENCY}' unavailable ({exc})"


def _say(args: argparse.Namespace, line: str) -> None:
    """Context lines go with a table; with CSV / JSON on stdout they go to stderr."""
    print(line, file=sys.stdout if args.format == "table" else sys.stderr)


# nas scale

def _scale(args: argparse.Namespace) -> int:
    if args.preset is not None and args.preset not in PRESETS:
        raise UserError(f"unknown preset '{args.preset}' (known: {', '.join(PRESETS)})")
    if args.preset is not None and (args.phi or args.alpha or args.beta or args.gamma):
        raise UserError("--preset uses the published coefficients; leave out --phi / --alpha / --beta / --gamma")
    alpha = _positive("--alpha", args.alpha) if args.alpha else DEFAULT_ALPHA
    beta = _positive("--beta", args.beta) if args.beta else DEFAULT_BETA
    gamma = _positive("--gamma", args.gamma) if args.gamma else DEFAULT_GAMMA
    divisor = _whole("--resolution-divisor", args.resolution_divisor)
    phis = _phis(args.phi or ["1"])
    base, origin = resolve_base(args)
    latency, note = _latency_model(args.latency, required=False)

    if args.preset:
        scaled = [(None, spec) for spec in apply_preset(base, args.preset)]
        how = f"preset {args.preset}: published coefficients relative to the table's first row"
    else:
        scaled = [(phi, scale_phi(base, phi, alpha, beta, gamma, divisor)) for phi in phis]
        how = (f"alpha {alpha:g} (depth), beta {beta:g} (width), gamma {gamma:g} (resolution, rounded down to a "
               f"multiple of {divisor}); target = (alpha*beta^2*gamma^2)^phi")
    for phi, spec in scaled:  # before any file is written: a huge phi must not leave half the specs
        check_resolution(spec.resolution, f"scaled resolution of '{spec.name}'" + (f" (phi {phi:g})" if phi else ""))
    base_macs = count_macs(base)
    base_ms = latency.predict_ms(base) if latency else None
    out_dir = Path(args.output_dir)
    rows = []
    for phi, spec in scaled:
        cost = model_cost(spec)
        row = {"name": spec.name}
        if phi is not None:
            row["phi"] = phi
        row.update({
            "width": spec.width, "depth": spec.depth, "resolution": spec.resolution, "dropout": spec.dropout,
            "params": cost.params, "MACs (M)": round(cost.macs / 1e6, 1),
            "MACs ratio": round(cost.macs / base_macs, 3),
        })
        if phi is not None:
            row["target ratio"] = round(nominal_cost_factor(alpha, beta, gamma, phi), 3)
        if latency:
            ms = latency.predict_ms(spec)
            row[f"latency ms ({latency.name})"] = round(ms, 3)
            row["latency ratio"] = round(ms / base_ms, 3)
        row["file"] = str(write_text(out_dir / f"{spec.name}.yaml", spec.to_yaml()))
        rows.append(row)
    _say(args, f"base: {base.name} ({origin}): width {base.width:g}, depth {base.depth:g}, "
               f"resolution {base.resolution}, {base_macs / 1e6:,.1f} M MACs")
    _say(args, how)
    if note:
        _say(args, note)
    print(format_rows(rows, args.format), end="")
    _say(args, f"wrote {len(rows)} spec file(s) to {out_dir}/ (ratios are to the base)")
    return 0


# nas scale search

def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _search(args: argparse.Namespace) -> int:
    if args.cost not in ("macs", "latency"):
        raise UserError(f"unknown cost '{args.cost}' (known: macs, latency)")
    target = _positive("--target", args.target)
    tolerance = _number("--tolerance", args.tolerance)
    if tolerance < 0:
        raise UserError(f"--tolerance must be >= 0, got {args.tolerance}")
    divisor = _whole("--resolution-divisor", args.resolution_divisor)
    top = _whole("--top", args.top)
    if args.max_scored is not None and not args.config:
        raise UserError("--max-scored needs --config FILE (without a config nothing is trained)")
    max_scored = _whole("--max-scored", args.max_scored) if args.max_scored is not None else DEFAULT_MAX_SCORED
    common = _grid("--grid", args.grid) if args.grid else DEFAULT_GRID
    alphas = _grid("--alpha-grid", args.alpha_grid) if args.alpha_grid else common
    betas = _grid("--beta-grid", args.beta_grid) if args.beta_grid else common
    gammas = _grid("--gamma-grid", args.gamma_grid) if args.gamma_grid else common
    config = None
    if args.config:
        from nas.search.config import load_config

        config = load_config(args.config)
    base, origin = resolve_base(args)
    if args.cost == "latency":
        latency, _ = _latency_model(args.latency, required=True)
        cost, unit = latency.predict_ms, f"latency ({latency.name})"
    else:
        cost, unit = count_macs, "MACs"
    total = len(alphas) * len(betas) * len(gammas)
    scorer = ProxyScorer(config, base, say=_err) if config is not None else None

    started = last = time.monotonic()

    def progress(done: int, of: int) -> None:  # only for slow (measured) costs: a line every 10 s
        nonlocal last
        now = time.monotonic()
        if now - last >= 10 or (done == of and now - started >= 10):
            last = now
            eta = (now - started) / done * (of - done)
            print(f"costed {done}/{of} triples, about {eta:.0f} s left", file=sys.stderr)

    result = search_coefficients(base, cost, alphas=alphas, betas=betas, gammas=gammas, target=target,
                                 tolerance=tolerance, resolution_divisor=divisor, progress=progress,
                                 score_many=scorer, max_scored=max_scored if scorer else None)
    rows = []
    for i, c in enumerate(result.candidates):
        row = {
            "rank": i + 1, "alpha": c.alpha, "beta": c.beta, "gamma": c.gamma,
            "alpha*beta^2*gamma^2": round(c.nominal, 4), f"{'MACs' if args.cost == 'macs' else 'latency'} ratio":
            round(c.cost_ratio, 4), "width": c.spec.width, "depth": c.spec.depth, "resolution": c.spec.resolution,
        }
        if scorer is not None:
            px, outcome = scorer.outcome(c.spec)
            ok = outcome is not None and not isinstance(outcome, str)
            row.update({"proxy px": px, "accuracy": round(outcome.accuracy, 4) if ok else None,
                        "proxy_s": round(outcome.seconds, 1) if ok else None,
                        "status": "scored" if ok else "failed" if c.scored else "not scored"})
        rows.append(row)
    _say(args, f"base: {base.name} ({origin}), resolution {base.resolution}")
    _say(args, f"{len(rows)} of {total} triples feasible: {unit} of the phi = 1 model within "
               f"{tolerance:.0%} of {target:g}x the base's ({result.costed} distinct networks costed)")
    if scorer is None:
        _say(args, f"ranked by closeness of the {unit} ratio to {target:g}: no accuracy scorer was used "
                   f"(give --config FILE to rank by the proxy-task accuracy of each phi = 1 model)")
    if not rows:
        raise UserError(f"none of the {total} triples gives a {unit} ratio within {tolerance:.0%} of {target:g}; "
                        f"widen --tolerance or the grid")
    if scorer is not None:
        trained = result.scored_networks
        _say(args, f"ranked by proxy accuracy of the phi = 1 model: {trained} of {result.feasible_networks} distinct "
                   f"feasible networks trained (the {unit} ratio closest to {target:g}; --max-scored {max_scored}), "
                   f"{result.failed_networks} failed, in {scorer.wall_s:.0f} s ({scorer.wall_s / (trained + 1):.1f} s "
                   f"per network, the base included); ties go to the ratio closest to {target:g}")
        base_px = scorer.resolution(base)
        if isinstance(scorer.base_outcome, str):
            _say(args, f"base (phi = 0) proxy training failed at {base_px} px: {scorer.base_outcome}")
        else:
            _say(args, f"base (phi = 0) proxy accuracy: {scorer.base_outcome.accuracy:.4f} at {base_px} px "
                       f"({scorer.base_outcome.seconds:.1f} s)")
    if args.output:
        _say(args, f"wrote all feasible triples to {write_text(args.output, format_rows(rows, 'csv'))}")
    print(format_rows(rows[:top], args.format), end="")
    best = result.candidates[0]
    if scorer is not None and best.score is None:
        _err(f"nas: error: none of the {result.scored_networks} proxy trainings succeeded (see the progress lines); "
             f"no triple could be ranked by accuracy")
        return 1
    _say(args, f"scale with: nas scale --phi 1 --alpha {best.alpha:g} --beta {best.beta:g} --gamma {best.gamma:g}"
               + (f" --resolution-divisor {divisor}" if divisor != RESOLUTION_DIVISOR else ""))
    return 0


def _base_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", metavar="FILE", help="base ModelSpec YAML file")
    parser.add_argument("--model", metavar="NAME", help="base registered model (see 'nas models')")
    parser.add_argument("--runs-dir", metavar="DIR", default=None,
                        help=f"without --spec/--model, the base is the newest DIR/<run>/best.yaml "
                             f"(default DIR: {DEFAULT_RUNS_DIR}; none found: {DEFAULT_BASE})")
    parser.add_argument("--resolution-divisor", metavar="N", default=str(RESOLUTION_DIVISOR),
                        help=f"scaled resolution is rounded down to a multiple of N (default {RESOLUTION_DIVISOR})")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")


EXAMPLES = """\
examples:
  nas scale --phi 1 2 3                            # the newest search's best.yaml scaled, specs into scaled/
  nas scale --spec runs/photos/best.yaml --preset edgetpu -o scaled/photos   # S/M/L's published coefficients
  nas scale --model efficientnet-edgetpu-S --phi 1 --alpha 1.2 --beta 1.1 --gamma 1.15
"""
SEARCH_EXAMPLES = """\
examples:
  nas scale search --model efficientnet-edgetpu-S --target 2             # by MACs, ranked by closeness
  nas scale search --spec runs/photos/best.yaml --cost latency --target 1.5
  nas scale search --model efficientnet-edgetpu-S --config edgetpu --max-scored 5   # by proxy accuracy
"""


def register(commands) -> None:
    parser = commands.add_parser(
        "scale", help="compound-scale a baseline by phi or a published preset; 'search' finds alpha/beta/gamma",
        description="Scale a base model by phi (depth alpha**phi, width beta**phi, resolution gamma**phi) or by "
                    "a published preset, print params / MACs / latency and write one spec YAML per model.",
        epilog=EXAMPLES)
    _base_options(parser)
    parser.add_argument("--phi", nargs="+", metavar="PHI", help="one or more phi values >= 0 (default: 1)")
    parser.add_argument("--alpha", help=f"depth coefficient (default {DEFAULT_ALPHA})")
    parser.add_argument("--beta", help=f"width coefficient (default {DEFAULT_BETA})")
    parser.add_argument("--gamma", help=f"resolution coefficient (default {DEFAULT_GAMMA})")
    parser.add_argument("--preset", metavar="|".join(PRESETS),
                        help="the published coefficients: edgetpu = S/M/L, efficientnet = B0..B7")
    parser.add_argument("--latency", metavar="SOURCE",
                        help=f"latency model for the latency column (default {DEFAULT_LATENCY}, left out when "
                             f"unavailable; 'none' turns it off)")
    parser.add_argument("-o", "--output-dir", metavar="DIR", default="scaled",
                        help="where the spec YAML files go (default: scaled)")
    parser.set_defaults(run=_scale)

    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    search = actions.add_parser(
        "search", help="grid-search alpha, beta, gamma so the phi = 1 model costs about target x the base",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SEARCH_EXAMPLES,
        description="EfficientNet's step one: list the (alpha, beta, gamma) on a grid whose phi = 1 model costs\n"
                    "about --target times the base (MACs or latency), ranked.\n\n"
                    "Without --config: ranked by closeness of the cost ratio to the target.\n"
                    "With --config FILE (a search config; its run.seed, proxy, data and execution sections are\n"
                    "used): ranked by the proxy-task validation accuracy of each phi = 1 model.\n"
                    "  - the --max-scored N distinct feasible networks whose cost ratio is closest to the target\n"
                    f"    are trained (default {DEFAULT_MAX_SCORED}); the rest follow unscored, failed trainings last\n"
                    "  - the proxy keeps depth (alpha), multiplies width (beta) by proxy.width and trains each\n"
                    "    model at round(proxy.resolution * resolution / base resolution) px (at least 8), so\n"
                    "    gamma counts; proxy.resolution null: the model's own resolution\n"
                    "  - the same seed (run.seed) for every model; the base (phi = 0) is trained once as a\n"
                    "    reference and its accuracy printed\n"
                    "  - locally one at a time, or as Ray tasks (execution: {backend: ray, max_concurrent: N});\n"
                    "    a progress line per finished model on stderr\n"
                    "  - columns gain proxy px, accuracy, proxy_s and status (scored | not scored | failed)")
    _base_options(search)
    search.add_argument("--cost", default="macs", metavar="macs|latency", help="cost measure (default: macs)")
    search.add_argument("--latency", metavar="SOURCE", help=f"latency model for --cost latency (default "
                                                            f"{DEFAULT_LATENCY})")
    search.add_argument("--target", default=str(DEFAULT_TARGET), help="cost ratio of phi = 1 to the base (default 2)")
    search.add_argument("--tolerance", default=str(DEFAULT_TOLERANCE),
                        help=f"relative tolerance on the ratio (default {DEFAULT_TOLERANCE})")
    search.add_argument("--grid", metavar="LO:HI:STEP", help="grid for all three (default 1.0:1.5:0.05)")
    search.add_argument("--alpha-grid", metavar="GRID", help="grid for alpha (LO:HI:STEP, a,b,c or one value)")
    search.add_argument("--beta-grid", metavar="GRID", help="grid for beta")
    search.add_argument("--gamma-grid", metavar="GRID", help="grid for gamma")
    search.add_argument("--config", metavar="FILE",
                        help="search config (a file, or a shipped config's name such as edgetpu): rank by the "
                             "proxy accuracy of each phi = 1 model, trained per its proxy, data and execution sections")
    search.add_argument("--max-scored", metavar="N", default=None,
                        help=f"with --config: train only the N distinct feasible networks closest to the target "
                             f"cost (default {DEFAULT_MAX_SCORED}); the rest are listed unscored")
    search.add_argument("--top", default="20", help="rows to print (default 20)")
    search.add_argument("-o", "--output", metavar="FILE.csv",
                        help="write every feasible triple as CSV (with --config: with its accuracy)")
    search.set_defaults(run=_search)
