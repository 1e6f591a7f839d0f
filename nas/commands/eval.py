"""`nas eval`: top-5 of images, or top-1 / top-5 over a labelled image directory, from a checkpoint or a .tflite."""

from __future__ import annotations

import argparse

import numpy as np

from nas.common.errors import UserError

from nas.commands.export import add_model_arguments, chosen_spec, load_from_args
from nas.common.bounds import int_at_least

# A .tflite file does not record its input normalisation; without --model/--spec, EdgeTPU's is assumed.
DEFAULT_MEAN, DEFAULT_STD = (127.0,) * 3, (128.0,) * 3


def _classifier(args: argparse.Namespace):
    from nas.deploy import evaluate

    if args.tflite:
        spec = chosen_spec(args)
        mean, std = (spec.mean, spec.std) if spec else (DEFAULT_MEAN, DEFAULT_STD)
        classifier = evaluate.tflite_classifier(args.tflite, mean, std)
        print(f"model: '{args.tflite}', {classifier.resolution}x{classifier.resolution} input, "
              f"{classifier.num_outputs} outputs, input (x - {mean[0]:g}) / {std[0]:g}"
              + ("" if spec else " (EdgeTPU's; give --model or --spec for another)"))
        return classifier
    if args.ckpt is None:
        raise UserError("nothing to evaluate: give --ckpt PATH (a checkpoint) or --tflite FILE")
    loaded = load_from_args(args)
    spec = loaded.spec
    print(f"model: {spec.name}, {spec.resolution}x{spec.resolution} input, {spec.num_classes} outputs")
    print(loaded.describe())
    return evaluate.keras_classifier(loaded.model, spec.mean, spec.std)


def _run(args: argparse.Namespace) -> int:
    from nas.deploy import evaluate
    from nas.data.offline import load_offline
    from nas.deploy.preprocessing import load_image

    if args.image and not args.labels_map:
        raise UserError("--image needs --labels-map FILE (class index -> label)")
    labels = evaluate.read_labels_map(args.labels_map) if args.labels_map else None
    offset = 1 if args.include_background_label else 0
    # Read every image first: a bad one fails before any output (and before a model loads).
    pixels = [load_image(path) for path in args.image or ()]
    classifier = _classifier(args)
    if labels is not None:
        evaluate.check_labels(labels, classifier.num_outputs, offset, args.labels_map)

    if args.image:
        probs = classifier.predict(np.stack([classifier.prepare(image) for image in pixels]))
        for path, row in zip(args.image, probs):
            print("\n".join(evaluate.format_top5(path, row, labels, offset)))
        return 0

    if args.data_dir:
        data = evaluate.labelled_directory(args.data_dir, labels)
        paths, targets = data.paths, data.targets
        if args.num_images and args.num_images < len(paths):
            chosen = np.sort(np.random.default_rng(0).choice(len(paths), args.num_images, replace=False))
            paths, targets = [paths[i] for i in chosen], targets[chosen]
        load = evaluate.image_loader(classifier, paths)
        print(f"evaluating {len(paths)} images of {data.classes} classes from '{args.data_dir}' "
              f"({data.how})")
    else:
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
    parser = commands.add_parser(
        "eval", help="classify images (top 5) or measure top-1 / top-5 on an image directory",
        description="Classify images with a checkpoint or a .tflite file, printing the top 5 as the reference "
                    "does, or measure top-1 / top-5 over a labelled image directory or the built-in digits. "
                    "Images get the reference's evaluation preprocessing: padded centre crop, bilinear "
                    "resize, the model's normalisation.",
        epilog=EXAMPLES,
    )
    weights = add_model_arguments(parser, "checkpoint directory or prefix: one written by this project "
                                          "(spec.yaml beside it) or a released TF1 one (model.ckpt*)",
                                  fresh_weights=False)
    weights.add_argument("--tflite", metavar="FILE", help="a float or full-int8 .tflite file instead of a checkpoint")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", nargs="+", metavar="FILE", help="image(s) to classify (jpg/png)")
    what.add_argument("--data-dir", metavar="DIR",
                      help="labelled images, DIR/<class>/<image>: folders named by class index, by label "
                           "(with --labels-map), or else counted 0, 1, ... in sorted order")
    what.add_argument("--offline", action="store_true",
                      help="the built-in offline digits' validation split (for models trained on them)")
    parser.add_argument("--labels-map", metavar="FILE",
                        help="class labels: the reference's JSON map, or one label per line")
    parser.add_argument("--include-background-label", action="store_true",
                        help="the model's output 0 is a background class: shift indices down by one "
                             "(a 1001-class model with a 1000-entry labels map)")
    parser.add_argument("--num-images", type=int_at_least(1), metavar="N",
                        help="evaluate only N images (a fixed random sample of --data-dir)")
    parser.set_defaults(run=_run)
