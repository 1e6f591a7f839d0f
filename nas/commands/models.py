"""`nas models`: the released specs, one of them in detail, or one written out as YAML."""

from __future__ import annotations

import argparse

from latency import make_latency_model
from search_space import REGISTRY, get_spec, layer_cost, model_cost

from nas.common.files import write_text
from nas.common.tables import FORMATS, format_rows


def summary_row(spec, latency=None, fmt: str = "table") -> dict:
    """One model's row: exact numbers with units in the names for csv / json (`macs`, `latency_ms`,
    plus `latency_source`), rounded for people in the table (`MACs (M)`, `latency ms (SOURCE)`)."""
    cost = model_cost(spec)
    exact = fmt != "table"
    row = {
        "name": spec.name,
        "resolution": spec.resolution,
        "width": spec.width,
        "depth": spec.depth,
        "params": cost.params,
        **({"macs": cost.macs} if exact else {"MACs (M)": round(cost.macs / 1e6, 1)}),
        "classes": spec.num_classes,
    }
    if latency is not None:
        ms = float(latency.predict_ms(spec))
        row.update({"latency_ms": ms, "latency_source": latency.name} if exact
                   else {f"latency ms ({latency.name})": round(ms, 2)})
    return row


def layer_rows(spec, fmt: str = "table") -> list[dict]:
    exact = fmt != "table"
    rows = []
    for i, layer in enumerate(spec.layers()):
        cost = layer_cost(layer)
        rows.append({
            "#": i,
            "kind": layer.kind,
            "stage": "" if layer.stage < 0 else layer.stage,
            "input": f"{layer.in_size}x{layer.in_size}x{layer.in_ch}",
            "expanded": layer.expanded_ch,
            "out": layer.out_ch,
            "kernel": layer.kernel,
            "stride": layer.stride,
            "se": layer.se_ch,
            "residual": "yes" if layer.residual else "",
            "params": cost.params,
            **({"macs": cost.macs} if exact else {"MACs (M)": round(cost.macs / 1e6, 2)}),
        })
    return rows


def _list(args: argparse.Namespace) -> int:
    latency = None if args.latency == "none" else make_latency_model(args.latency)
    print(format_rows((summary_row(spec, latency, args.format) for spec in REGISTRY.values()), args.format), end="")
    return 0


def _show(args: argparse.Namespace) -> int:
    spec = get_spec(args.model)
    if args.format != "table":
        print(format_rows(layer_rows(spec, args.format), args.format), end="")
        return 0
    cost = model_cost(spec)
    print(f"{spec.name}: width {spec.width}, depth {spec.depth}, resolution {spec.resolution}, "
          f"dropout {spec.dropout}, {spec.activation}, {spec.num_classes} classes"
          f"{' (class 0 = background)' if spec.include_background else ''}")
    print(f"params {cost.params:,d}, MACs {cost.macs / 1e6:,.1f} M, "
          f"input (x - {spec.mean[0]:g}) / {spec.std[0]:g}")
    print("blocks:")
    for block in spec.block_strings:
        print(f"  {block}")
    print()
    print(format_rows(layer_rows(spec), "table"), end="")
    return 0


def _export_spec(args: argparse.Namespace) -> int:
    spec = get_spec(args.model)
    path = write_text(args.output, spec.to_yaml())
    print(f"wrote {path}")
    return 0


EXAMPLES = """\
examples:
  nas models                                         # every released spec: params, MACs, predicted latency
  nas models --format csv --latency none
  nas models show efficientnet-edgetpu-S             # block strings and the per-layer table
  nas models export-spec efficientnet-edgetpu-S -o s.yaml
"""
SHOW_EXAMPLES = """\
examples:
  nas models show efficientnet-edgetpu-M
  nas models show runs/edgetpu/best.yaml --format csv
"""
EXPORT_SPEC_EXAMPLES = """\
examples:
  nas models export-spec efficientnet-edgetpu-S -o s.yaml    # a starting point for your own skeleton
"""


def register(commands) -> None:
    parser = commands.add_parser("models", help="list the released specs, show one, or export one as YAML",
                                 description="List the registered models (default), show one, or export its spec.",
                                 epilog=EXAMPLES)
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--latency", default="sim", metavar="SOURCE",
                        help="latency column: sim (Edge TPU cost model, default), lut:PATH, tflite-cpu, edgetpu, "
                             "auto (edgetpu if usable, else sim), none")
    parser.set_defaults(run=_list)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    show = actions.add_parser("show", help="block strings and the per-layer table of a model or spec file",
                              epilog=SHOW_EXAMPLES)
    show.add_argument("model", help="registered name or ModelSpec .yaml file")
    show.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    show.set_defaults(run=_show)
    export = actions.add_parser("export-spec", help="write a model's ModelSpec as YAML",
                                epilog=EXPORT_SPEC_EXAMPLES)
    export.add_argument("model", help="registered name or ModelSpec .yaml file")
    export.add_argument("-o", "--output", required=True, help="where to write the YAML")
    export.set_defaults(run=_export_spec)
