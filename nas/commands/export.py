"""`nas export`: a registered or searched model to TFLite (full-int8 or float), a SavedModel, the Edge TPU."""

from __future__ import annotations

import argparse
import sys

from search_space import get_spec

from nas.common.errors import UserError
from search_space.spec import FUSED_STRIDE_PLACES

from nas.deploy.checkpoints import Loaded, load_model
from nas.common.bounds import check_resolution
from nas.common.bounds import int_at_least
from nas.common.files import write_bytes


def add_model_arguments(
    parser: argparse.ArgumentParser, ckpt_help: str, fresh_weights: bool = True
) -> argparse._MutuallyExclusiveGroup:
    """--model / --spec, --ckpt and the loading options, shared by `nas export` and `nas eval`.

    Returns the group --ckpt is in, so a command can add alternatives to it.
    """
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", metavar="NAME", help="registered model (see 'nas models')")
    which.add_argument("--spec", metavar="FILE", help="ModelSpec .yaml file (e.g. a search's best.yaml)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--ckpt", metavar="PATH", help=ckpt_help)
    parser.add_argument("--no-ema", dest="ema", action="store_false",
                        help="restore the raw weights, not the checkpoint's moving averages")
    parser.add_argument("--fused-stride-on", choices=FUSED_STRIDE_PLACES,
                        help="where fused blocks put their stride (default: 'project' for a released TF1 "
                             "checkpoint, as the 2019 release did; the spec's own otherwise)")
    if fresh_weights:
        parser.add_argument("--seed", type=int, default=0, help="initialisation seed when no --ckpt is given")
    return weights


def chosen_spec(args: argparse.Namespace):
    name = args.model or args.spec
    return get_spec(name) if name else None


def load_from_args(args: argparse.Namespace, spec=None) -> Loaded:
    return load_model(args.ckpt, spec or chosen_spec(args), fused_stride_on=args.fused_stride_on,
                      use_ema=args.ema, seed=getattr(args, "seed", 0))


def model_record(args: argparse.Namespace, spec):
    """(InputRecord, class names or None, a line for the user) of the model being exported: a trained
    run's own record and labels (in the checkpoint's directory), else the reference's preprocessing."""
    from pathlib import Path

    from nas.deploy.evaluate import read_labels_map
    from nas.deploy.preprocessing import LABELS_FILE, RECORD_FILE, REFERENCE, InputRecord, read_record

    folder = None
    if args.ckpt:
        ckpt = Path(args.ckpt)
        folder = ckpt if ckpt.is_dir() else ckpt.parent
    recorded = read_record(folder / RECORD_FILE) if folder and (folder / RECORD_FILE).is_file() else None
    method = args.preprocessing or (recorded.method if recorded else REFERENCE)
    record = InputRecord.of(spec, method)
    labels = read_labels_map(folder / LABELS_FILE) if folder and (folder / LABELS_FILE).is_file() else None
    origin = ("--preprocessing" if args.preprocessing else f"recorded in '{folder / RECORD_FILE}'" if recorded
              else "no record: the reference's")
    return record, labels, f"input: {record.describe()} ({origin})"


def _run(args: argparse.Namespace) -> int:
    from nas.deploy import exporter as export

    spec = chosen_spec(args)  # a bad name or spec file fails before TensorFlow loads
    if spec is not None:
        check_resolution(spec.resolution, f"model '{spec.name}' resolution")
    if not args.output_tflite and not args.output_saved_model_dir:
        raise UserError("nothing to write: give --output-tflite FILE and/or --output-saved-model-dir DIR")
    if args.edgetpu:
        if not args.output_tflite:
            raise UserError("--edgetpu compiles the TFLite file: give --output-tflite FILE")
        if not args.quantize:
            raise UserError("the Edge TPU runs only full-int8 models: drop --no-quantize")
        export.find_edgetpu_compiler()
    # Fail on an unwritable output now, not after minutes of calibration.
    if args.output_tflite:
        export.check_writable(args.output_tflite)
    if args.output_saved_model_dir:
        export.check_writable(args.output_saved_model_dir, directory=True)

    from search_space.builder import trainable_params

    loaded = load_from_args(args, spec)
    spec, model = loaded.spec, loaded.model
    params = trainable_params(model)
    print(f"{spec.name}: {spec.resolution}x{spec.resolution} input, {spec.num_classes} classes, "
          f"{params:,d} parameters")
    print(loaded.describe())
    record, labels, line = model_record(args, spec)
    print(line)

    if args.output_tflite:
        from search_space.tflite import op_names

        calibration = None
        if args.quantize:
            # The converter swaps sys.stdout out while it calibrates; progress keeps the user's stdout.
            stdout = sys.stdout
            calibration = export.calibration_images(spec, args.data_dir, args.num_calibration, record=record,
                                                    progress=lambda line: print(line, file=stdout, flush=True))
            print(f"calibrating on {calibration.source}")
        content = export.to_tflite(model, args.quantize, calibration, verbose=args.verbose)
        path = write_bytes(args.output_tflite, content)
        kind = ("full-int8 (uint8 input and output, builtin int8 ops)" if args.quantize else "float32")
        print(f"wrote {path}: {kind}, {len(content):,d} bytes ({len(content) / params:.2f} bytes per parameter)")
        print(f"  ops: {', '.join(sorted(set(op_names(content))))}")
        written = export.write_sidecars(path, record, labels)
        print(f"wrote {', '.join(str(p) for p in written)} (how to prepare its input"
              + (f"; its {len(labels)} class names)" if labels else ")"))
    if args.output_saved_model_dir:
        path = export.save_saved_model(model, args.output_saved_model_dir)
        print(f"wrote SavedModel {path} (serving_default: input = normalised images -> output = probabilities)")
    if args.edgetpu:
        compiled, report = export.compile_edgetpu(args.output_tflite)
        print(report)
        print(f"wrote {compiled}")
    return 0


EXAMPLES = """\
examples:
  nas export --ckpt runs/train-mine --data-dir photos/train --output-tflite mine_int8.tflite
  nas export --ckpt runs/train-mine --data-dir photos/train --output-tflite mine_int8.tflite --edgetpu
  nas export --model efficientnet-edgetpu-S --ckpt efficientnet-edgetpu-S --output-tflite s_int8.tflite
  nas export --spec runs/edgetpu/best.yaml --no-quantize --output-tflite best_float.tflite
"""


def register(commands) -> None:
    from nas.deploy.preprocessing import METHODS

    parser = commands.add_parser(
        "export", help="export a model to TFLite (full-int8 or float), a SavedModel, or the Edge TPU",
        description="Export a registered or searched model, as the reference exporter does: the graph ends "
                    "in a softmax; full-int8 TFLite has uint8 input and output and only builtin int8 ops. "
                    "Beside FILE.tflite go FILE.preprocessing.yaml (how to prepare an image for it: the "
                    "trained run's own preprocessing) and FILE.labels.txt (the run's class names); with "
                    "--edgetpu, edgetpu_compiler writes FILE_edgetpu.tflite.",
        epilog=EXAMPLES,
    )
    add_model_arguments(parser, "checkpoint directory or prefix: one written by this project (spec.yaml beside "
                                "it) or a released TF1 one (model.ckpt*); without it, fresh weights")
    parser.add_argument("--output-tflite", metavar="FILE", help="write the TFLite model here")
    parser.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=True,
                        help="full-int8 with uint8 input/output (default); --no-quantize writes float32")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="representative images (jpg/png, searched recursively) for calibration; "
                             "default: the built-in offline digits")
    parser.add_argument("--num-calibration", type=int_at_least(1), default=2000, metavar="N",
                        help="calibration images (default 2000, as the reference)")
    parser.add_argument("--output-saved-model-dir", metavar="DIR", help="also write a SavedModel here")
    parser.add_argument("--edgetpu", action="store_true",
                        help="compile the full-int8 file with edgetpu_compiler (Coral's package edgetpu-compiler): "
                             "it writes <stem>_edgetpu.tflite beside --output-tflite (m.tflite -> m_edgetpu.tflite), "
                             "which 'nas eval --tflite' runs on an attached Edge TPU")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's converter output too")
    parser.add_argument("--preprocessing", choices=tuple(METHODS),
                        help="how calibration images become inputs, recorded beside the file (default: the "
                             "run's own record, else the reference's padded centre crop)")
    parser.set_defaults(run=_run)
