"""`nas eval`: top-5 of images, or top-1 / top-5 over a labelled image directory, from a checkpoint or a .tflite."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from nas.common.errors import UserError

from nas.commands.export import add_model_arguments, chosen_spec, load_from_args
from nas.common.bounds import int_at_least

# A .tflite file from elsewhere has no preprocessing record; without --model/--spec, EdgeTPU's normalisation.
DEFAULT_MEAN, DEFAULT_STD = (127.0,) * 3, (128.0,) * 3


def _model_files(args: argparse.Namespace):
    """(preprocessing record path, labels path) recorded with the model: beside the .tflite, or in
    the checkpoint's run directory. Cheap: read before any model loads."""
    from pathlib import Path

    from nas.deploy.preprocessing import LABELS_FILE, RECORD_FILE, sidecars

    if args.tflite:
        return sidecars(args.tflite)
    if args.ckpt:
        ckpt = Path(args.ckpt)
        folder = ckpt if ckpt.is_dir() else ckpt.parent
        return folder / RECORD_FILE, folder / LABELS_FILE
    return None, None


def _record(args: argparse.Namespace, record_file, spec):
    """The InputRecord to prepare images with, and a line saying where it comes from."""
    from nas.deploy.preprocessing import METHODS, REFERENCE, InputRecord, read_record

    recorded = read_record(record_file) if record_file is not None and record_file.is_file() else None
    if spec is not None:  # --model / --spec, or the checkpoint's own spec, fixes size and normalisation
        record = InputRecord.of(spec, recorded.method if recorded else REFERENCE)
    elif recorded is not None:
        record = recorded
    else:
        return None, ""
    if args.preprocessing:
        return dataclasses.replace(record, method=args.preprocessing), "(--preprocessing)"
    if recorded is not None:
        return record, f"(recorded in '{record_file}')"
    return record, f"(no record: the reference's; --preprocessing {'|'.join(METHODS)} to choose)"


def _classifier(args: argparse.Namespace, record_file):
    from nas.deploy import evaluate

    if args.tflite:
        from nas.deploy import edgetpu

        from pathlib import Path

        if not Path(args.tflite).is_file():  # before the Edge TPU runtime is looked for
            raise UserError(f"TFLite file '{args.tflite}' does not exist")
        spec = chosen_spec(args)
        record, origin = _record(args, record_file, spec)
        delegate = edgetpu.load_delegate(args.tflite) if edgetpu.is_compiled(args.tflite) else None
        classifier = evaluate.tflite_classifier(args.tflite, DEFAULT_MEAN, DEFAULT_STD, record=record,
                                                delegate=delegate)
        if record is None:
            method = args.preprocessing or classifier.record.method
            classifier = evaluate.Classifier(classifier.predict, classifier.num_outputs,
                                             dataclasses.replace(classifier.record, method=method))
            origin = "(no record beside the file: EdgeTPU's normalisation; give --model or --spec for another)"
        print(f"model: '{args.tflite}', {classifier.resolution}x{classifier.resolution} input, "
              f"{classifier.num_outputs} outputs" + (", on the Edge TPU" if delegate else ""))
        print(f"input: {classifier.record.describe()} {origin}")
        return classifier, bool(spec and spec.include_background)
    if args.ckpt is None:
        raise UserError("nothing to evaluate: give --ckpt PATH (a checkpoint) or --tflite FILE")
    loaded = load_from_args(args)
    spec = loaded.spec
    record, origin = _record(args, record_file, spec)
    print(f"model: {spec.name}, {spec.resolution}x{spec.resolution} input, {spec.num_classes} outputs")
    print(loaded.describe())
    print(f"input: {record.describe()} {origin}")
    return evaluate.keras_classifier(loaded.model, record), spec.include_background


def _check_classes(classes: int, outputs: int, offset: int, where: str, names=()) -> None:
    """The model's outputs must be the data's classes (plus output 0 when it is a background class)."""
    if outputs - offset == classes:
        return
    shown = f" ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})" if names else ""
    hint = ("; if output 0 is a background class, add --include-background-label" if outputs == classes + 1
            else "; evaluate the model trained on these classes, or give --labels-map to match folders by label")
    raise UserError(f"the model has {outputs} outputs but {where} has {classes} classes{shown}: a model for "
                    f"them has {classes} outputs ({classes + 1} with a background class){hint}")


def _run(args: argparse.Namespace) -> int:
    from nas.deploy import evaluate
    from nas.data.offline import OFFLINE_CLASSES, load_offline
    from nas.deploy.preprocessing import load_image

    # Read every image first: a bad one fails before any output (and before a model loads).
    pixels = [load_image(path) for path in args.image or ()]
    record_file, labels_file = _model_files(args)
    labels_from = args.labels_map or (labels_file if labels_file is not None and labels_file.is_file() else None)
    if args.image and labels_from is None:
        raise UserError("--image needs class names: --labels-map FILE (class index -> label); none is "
                        "recorded with the model")
    labels = evaluate.read_labels_map(labels_from) if labels_from else None
    classifier, background = _classifier(args, record_file)
    # Output 0 is a background class when the user says so, or when the spec says so or the outputs
    # are one more than the labels (a labels map that names the background itself has one per output).
    offset = 1 if args.include_background_label or (
        (labels is None or len(labels) != classifier.num_outputs)
        and (background or (labels is not None and classifier.num_outputs == len(labels) + 1))) else 0
    if labels is not None:
        evaluate.check_labels(labels, classifier.num_outputs, offset, labels_from)
        if not args.labels_map:
            print(f"labels: {len(labels)} class names from '{labels_from}'")

    if args.image:
        probs = classifier.predict(np.stack([classifier.prepare(image) for image in pixels]))
        for path, row in zip(args.image, probs):
            print("\n".join(evaluate.format_top5(path, row, labels, offset)))
        return 0

    if args.data_dir:
        data = evaluate.labelled_directory(args.data_dir, labels)
        if data.how.startswith("sorted"):  # classes by position: their count must be the model's
            names = sorted({p.parent.name for p in data.paths})
            _check_classes(data.classes, classifier.num_outputs, offset, f"'{args.data_dir}'", names)
        paths, targets = data.paths, data.targets
        if args.num_images and args.num_images < len(paths):
            chosen = np.sort(np.random.default_rng(0).choice(len(paths), args.num_images, replace=False))
            paths, targets = [paths[i] for i in chosen], targets[chosen]
        load = evaluate.image_loader(classifier, paths)
        print(f"evaluating {len(paths)} images of {data.classes} classes from '{args.data_dir}' "
              f"({data.how})")
    else:
        _check_classes(OFFLINE_CLASSES, classifier.num_outputs, offset, "the built-in digits")
        images, targets = load_offline(classifier.resolution, "val")
        if args.num_images:
            images, targets = images[:args.num_images], targets[:args.num_images]
        load = lambda i: classifier.prepare(images[i], crop=False)  # noqa: E731
        print(f"evaluating {len(targets)} images of the built-in offline digits (validation split, "
              "no crop: as proxy training sees them)")
    beyond = int(targets.max()) - (classifier.num_outputs - offset - 1)
    if beyond > 0:
        raise UserError(f"class index {int(targets.max())} is beyond the model's "
                        f"{classifier.num_outputs - offset} classes")
    evaluate.evaluate(classifier, load, targets, offset)
    return 0


EXAMPLES = """\
examples:
  nas eval --ckpt runs/train-mine --data-dir photos/val          # top-1 / top-5 of a trained run
  nas eval --tflite mine_int8.tflite --data-dir photos/val --num-images 500
  nas eval --model efficientnet-edgetpu-S --ckpt efficientnet-edgetpu-S \\
      --image bolt.jpg --labels-map labels_map.json --include-background-label
  nas eval --ckpt runs/train-digits --offline                     # a model trained on the built-in digits
"""


def register(commands) -> None:
    from nas.deploy.preprocessing import METHODS

    parser = commands.add_parser(
        "eval", help="classify images (top 5) or measure top-1 / top-5 on an image directory",
        description="Classify images with a checkpoint or a .tflite file, printing the top 5 as the reference "
                    "does, or measure top-1 / top-5 over a labelled image directory or the built-in digits. "
                    "Images are prepared as the model records (a run's preprocessing.yaml, or "
                    "<stem>.preprocessing.yaml beside a .tflite), so a trained model scores here what "
                    "training reported; without a record, the reference's padded centre crop and TF1 "
                    "bilinear resize. Class names come from --labels-map or the model's labels file. "
                    "A compiled <stem>_edgetpu.tflite runs on an attached Edge TPU (libedgetpu.so.1).",
        epilog=EXAMPLES,
    )
    weights = add_model_arguments(parser, "checkpoint directory or prefix: one written by this project "
                                          "(spec.yaml beside it) or a released TF1 one (model.ckpt*)",
                                  fresh_weights=False)
    weights.add_argument("--tflite", metavar="FILE",
                         help="a float or full-int8 .tflite file instead of a checkpoint; a compiled "
                              "<stem>_edgetpu.tflite runs through the Edge TPU delegate")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", nargs="+", metavar="FILE", help="image(s) to classify (jpg/png)")
    what.add_argument("--data-dir", metavar="DIR",
                      help="labelled images, DIR/<class>/<image>: folders named by class index, by label "
                           "(with --labels-map), or else counted 0, 1, ... in sorted order")
    what.add_argument("--offline", action="store_true",
                      help="the built-in offline digits' validation split (for models trained on them)")
    parser.add_argument("--labels-map", metavar="FILE",
                        help="class labels: the reference's JSON map, or one label per line (default: the "
                             "model's labels file, labels.txt in a run or <stem>.labels.txt beside a .tflite)")
    parser.add_argument("--preprocessing", choices=tuple(METHODS),
                        help="how images become inputs, instead of the model's record: reference (padded "
                             "centre crop, TF1 resize; released models), square-pil or square-tf (the "
                             "centre square as the data sources load it)")
    parser.add_argument("--include-background-label", action="store_true",
                        help="the model's output 0 is a background class: shift indices down by one "
                             "(a 1001-class model with a 1000-entry labels map)")
    parser.add_argument("--num-images", type=int_at_least(1), metavar="N",
                        help="evaluate only N images (a fixed random sample of --data-dir)")
    parser.set_defaults(run=_run)
