"""`nas compare`: int8 models side by side on one labelled image directory: accuracy against predicted latency.

The fair comparison the guide ends with (a searched model against EfficientNet-EdgeTPU-S fine-tuned on
the same photos): every model is evaluated on the same images, each prepared as its export recorded
(`<stem>.preprocessing.yaml`, as `nas eval` does), and its
Edge TPU latency is predicted from the file's own ops by the cost model (`nas latency predict FILE`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from nas.common.bounds import int_at_least
from nas.common.errors import UserError
from nas.common.tables import FORMATS, format_rows

EXAMPLES = """\
examples:
  nas compare searched_int8.tflite s_int8.tflite --data-dir parts/val
  nas compare a.tflite b.tflite c.tflite --data-dir parts/val --num-images 200 --format csv
"""


def _recorded(model: Path, labels_map: str | None):
    """(preprocessing record or None, class names or None) for a model: the files `nas export` wrote
    beside it, the labels overridden by --labels-map."""
    from nas.deploy import evaluate
    from nas.deploy.preprocessing import read_record, sidecars

    record_file, labels_file = sidecars(model)
    chosen = labels_map or (labels_file if labels_file.is_file() else None)
    return (read_record(record_file) if record_file.is_file() else None,
            evaluate.read_labels_map(chosen) if chosen else None)


def _check_model(path: Path) -> None:
    if path.stem.endswith("_edgetpu"):
        raise UserError(f"'{path}' is compiled for the Edge TPU: give the int8 file it was compiled from "
                        f"('{path.stem[:-len('_edgetpu')]}.tflite'), which runs on this CPU and the cost model reads")
    if path.suffix.lower() != ".tflite":
        raise UserError(f"'{path}' is not a .tflite file: export one with 'nas export --output-tflite FILE'")
    if not path.is_file():
        raise UserError(f"model file '{path}' does not exist")


def compare_row(path: Path, data_dir: str, labels_map: str | None, num_images: int | None) -> dict:
    """One model's row: its top-1 (and top-5 beyond 5 classes) on the directory, and its predicted latency."""
    from latency.edgetpu_model import predict_tflite
    from nas.commands.eval import DEFAULT_MEAN, DEFAULT_STD
    from nas.deploy import evaluate

    record, labels = _recorded(path, labels_map)
    classifier = evaluate.tflite_classifier(path, DEFAULT_MEAN, DEFAULT_STD, record=record)
    data = evaluate.labelled_directory(data_dir, labels)
    outputs = classifier.num_outputs
    if outputs not in (data.classes, data.classes + 1):
        raise UserError(f"'{path}' has {outputs} outputs but '{data_dir}' has {data.classes} classes: compare "
                        "models trained on these classes")
    offset = outputs - data.classes  # 1: output 0 is a background class
    paths, targets = data.paths, data.targets
    if num_images and num_images < len(paths):
        chosen = np.sort(np.random.default_rng(0).choice(len(paths), num_images, replace=False))
        paths, targets = [paths[i] for i in chosen], targets[chosen]
    accuracy = evaluate.evaluate(classifier, evaluate.image_loader(classifier, paths), targets, offset, log=None)
    prediction = predict_tflite(path)
    row = {"model": str(path), "input": f"{classifier.resolution} px", "images": accuracy.count,
           "top-1 %": round(100 * accuracy.top1, 2)}
    if data.classes > 5:
        row["top-5 %"] = round(100 * accuracy.top5, 2)
    row.update({"Edge TPU ms (predicted)": round(prediction.ms, 3), "size (KB)": round(path.stat().st_size / 1024),
                "host ops": len(prediction.on_host) + len(prediction.unknown)})
    return row


def _run(args: argparse.Namespace) -> int:
    models = [Path(m) for m in args.models]
    for path in models:  # every file checked before any is evaluated
        _check_model(path)
    rows = []
    for path in models:
        rows.append(compare_row(path, args.data_dir, args.labels_map, args.num_images))
        if args.format == "table":
            print(f"evaluated {path}", flush=True)
    print(format_rows(rows, args.format), end="")
    if args.format == "table":
        print("latency: the Edge TPU cost model (sim) from each file's ops; on a Coral, measure with "
              "'nas latency measure FILE --source edgetpu'")
    return 0


def register(commands) -> None:
    parser = commands.add_parser(
        "compare", help="int8 models side by side: accuracy on one image directory and predicted Edge TPU latency",
        description="Evaluate int8 .tflite models on the same labelled images (DIR/<class>/<image>) and print "
                    "their top-1 accuracy beside their Edge TPU latency as the cost model predicts it from each "
                    "file. Folders are matched to classes by the labels exported beside each model "
                    "(<stem>.labels.txt), --labels-map, or else sorted, as training numbers them; images are prepared as "
                    "each model's <stem>.preprocessing.yaml says.",
        epilog=EXAMPLES)
    parser.add_argument("models", nargs="+", metavar="MODEL.tflite", help="full-int8 .tflite files (not *_edgetpu)")
    parser.add_argument("--data-dir", required=True, metavar="DIR", help="labelled images: DIR/<class>/<image>")
    parser.add_argument("--labels-map", metavar="FILE", help="class names by index, for every model")
    parser.add_argument("--num-images", type=int_at_least(1), metavar="N",
                        help="evaluate a fixed random sample of N images")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.set_defaults(run=_run)
