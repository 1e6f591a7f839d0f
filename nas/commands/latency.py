"""`nas latency predict|measure|build-lut|calibrate`: latency of models, lookup tables, their calibration."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from nas.common.bounds import check_model_memory, int_at_least, resolution_arg
from nas.common.errors import UserError

SOURCE_HELP = ("sim (Edge TPU cost model), lut:PATH, tflite-cpu[:int8|float], edgetpu, "
               "auto (edgetpu if usable, else sim)")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load_space(path: str):
    import yaml

    from nas.search.config import config_path
    from search_space.space import SearchSpace

    try:
        data = yaml.safe_load(config_path(path).read_text())  # a file, or a shipped config's name
    except OSError as exc:
        raise UserError(f"cannot read config '{path}': {exc.strerror or exc}") from None
    except yaml.YAMLError:
        raise UserError(f"config '{path}' is not valid YAML") from None
    if data is not None and not isinstance(data, dict):
        raise UserError(f"config '{path}': expected a mapping with a 'search_space:' section")
    return SearchSpace.from_dict((data or {}).get("search_space"))


def _is_tflite(model: str) -> bool:
    return model.lower().endswith(".tflite")


def _is_keras(model: str) -> bool:
    return model.lower().endswith((".keras", ".h5"))


def _check_model_path(model: str) -> None:
    """A directory is never a model: say so, rather than "does not exist" from a lookup by name."""
    if Path(model).is_dir():
        raise UserError(f"'{model}' is a directory; give a registered model name, a spec .yaml, "
                        f"a .keras/.h5 file or a .tflite file")


def _spec(model: str, resolution: int | None):
    from search_space.registry import get_spec

    spec = get_spec(model)
    return dataclasses.replace(spec, resolution=resolution) if resolution else spec


def _predict(args: argparse.Namespace) -> int:
    from latency import make_latency_model

    _check_model_path(args.model)
    model = make_latency_model(args.source)
    if _is_tflite(args.model):
        if args.source != "sim":
            raise UserError(f"only the sim source predicts a .tflite file; time it with "
                            f"'nas latency measure {args.model} --source tflite-cpu|edgetpu'")
        from latency.edgetpu_model import predict_tflite

        prediction = predict_tflite(args.model, model.constants)
        print(f"{args.model}: {prediction.ms:.3f} ms ({model.name})")
        if prediction.describe():  # host fallback and unknown ops: the number alone would hide them
            print(prediction.describe())
        return 0
    ms = model.predict_ms(_spec(args.model, args.resolution))
    print(f"{args.model}: {ms:.3f} ms ({model.name})")
    table = getattr(model, "table", None)
    if table is not None:  # a table's number is only true of the machine it was measured on
        print(table.describe_origin())
    return 0


def _representative(args, spec):
    """(callable or None, description) for full-int8 conversion of `spec`."""
    if args.representative == "digits":
        from nas.data.images import normalize
        from nas.data.offline import load_offline

        images, _ = load_offline(spec.resolution, "train")

        def batches():
            for image in images[:8]:
                yield normalize(image[None], spec.mean, spec.std)

        return batches, "the offline digits data set (8 images)"
    return None, "random normal inputs (2 batches; ranges only matter for timing)"


def _measure(args: argparse.Namespace) -> int:
    from latency.measure import keras_file_to_tflite, spec_to_tflite, time_tflite

    _check_model_path(args.model)
    if args.source not in ("tflite-cpu", "tflite-cpu:int8", "tflite-cpu:float", "edgetpu"):
        raise UserError(f"measure times on tflite-cpu[:int8|float] or edgetpu, not '{args.source}'")
    quantize = not args.source.endswith(":float")
    if args.source == "edgetpu":
        from latency.edgetpu_device import check_edgetpu

        check_edgetpu()
    if _is_tflite(args.model):
        content, what = args.model, "as given"
        if not Path(args.model).is_file():
            raise UserError(f"TFLite file '{args.model}' does not exist")
    elif _is_keras(args.model):
        content = keras_file_to_tflite(args.model, quantize)
        what = "converted " + ("to full-int8 with random normal representative inputs" if quantize else "to float")
    else:
        spec = _spec(args.model, args.resolution)
        check_model_memory(spec, 1, False, "use a smaller spec (width, resolution or filters)")
        representative, described = _representative(args, spec)
        _say(f"building and converting {spec.name} at {spec.resolution}x{spec.resolution} ...")
        content = spec_to_tflite(spec, quantize, representative)
        what = f"converted to full-int8, representative data: {described}" if quantize else "converted to float"
    if args.source == "edgetpu":
        from latency.edgetpu_device import time_on_edgetpu
        from search_space.tflite import _read

        timing = time_on_edgetpu([_read(content)], args.warmup, args.repeats)[0]
    else:
        timing = time_tflite([content], args.threads, args.warmup, args.repeats)[0]
    print(f"{args.model} on {args.source} ({what}): {timing.describe()}, warm-up {args.warmup}")
    return 0


def _build_lut(args: argparse.Namespace) -> int:
    from latency.profiling import build_table, make_profiler

    space = _load_space(args.config)
    resolution = args.resolution or space.skeleton.resolution
    profiler = make_profiler(args.source, args.threads, args.warmup, args.repeats)
    table = build_table(space, resolution, profiler, args.output, progress=_say, refine=args.refine,
                        tolerance=args.probe_tolerance / 100)
    print(f"wrote {args.output}: {len(table.entries)} layer shapes, measurement run {table.header['run']}, "
          f"probe best {table.header['probe_best_ms']} ms; {table.describe_origin()}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from latency.calibration import fit_correction, score, spec_features
    from latency.fingerprint import check_same_machine
    from latency.lookup_table import LookupTable
    from latency.profiling import Run, make_profiler, measure_architectures, split_indices, write_records

    space = _load_space(args.config)
    table = LookupTable.load(args.lut)
    resolution = args.resolution or int(table.header.get("resolution", space.skeleton.resolution))
    table.check_space(space, resolution)
    if args.count < 4:
        raise UserError(f"--count must be at least 4 (2 to fit, 2 to test), got {args.count}")
    source = args.source or table.header["source"]
    profiler = make_profiler(source, args.threads, args.warmup, args.repeats)
    run = Run.from_header(table.header, f"lookup table '{args.lut}'")
    run.tolerance = args.probe_tolerance / 100
    check_same_machine(f"lookup table '{args.lut}'", run.fingerprint, f"this machine's {source}",
                       profiler.fingerprint(), "calibrate on the machine and setup the table was built with")
    records_path = Path(args.measurements or Path(args.lut).with_suffix(".calibration.csv"))
    rows = measure_architectures(space, resolution, args.count, args.seed, profiler, records_path, run, _say,
                                 refine=args.refine)
    sized = dataclasses.replace(space, skeleton=dataclasses.replace(space.skeleton, resolution=resolution))
    specs = [sized.to_spec([int(x) for x in r["decisions"].split("-")]) for r in rows]
    features = np.array([spec_features(s, table.entry_ms) for s in specs])
    measured = np.array([r["ms"] for r in rows])
    train, test = split_indices(len(rows), args.train_fraction, args.seed)
    calibration = fit_correction(features[train], measured[train])
    predicted = calibration.correction.apply_many(features)
    for i, row in enumerate(rows):
        row.update(table_ms=round(features[i, 0], 4), predicted_ms=round(predicted[i], 4),
                   split="train" if i in train else "test")
    write_records(records_path, run, rows, extra=("table_ms", "predicted_ms", "split"))
    table.header.update(run.header())
    table.header["calibration"] = calibration.correction.to_json()
    table.header["calibrated_run"] = run.id
    table.header["calibrated_on"] = f"{len(train)} of {len(rows)} architectures measured on {source}, seed {args.seed}"
    table.save()
    print(f"calibrated '{args.lut}' on {len(train)} architectures of run {run.id}: ms = "
          f"{calibration.correction.describe()}; measurements and predictions in '{records_path}'")
    for line in calibration.describe():
        print(f"  {line}")
    for name, idx in (("uncorrected table sum, held-out", test), ("train", train), ("held-out", test)):
        values = features[idx, 0] if name.startswith("uncorrected") else predicted[idx]
        print(f"  {name:32s} {score(values, measured[idx]).describe()}")
    return 0


EXAMPLES = """\
examples:
  nas latency predict efficientnet-edgetpu-S               # the Edge TPU cost model, no TensorFlow
  nas latency measure efficientnet-edgetpu-S               # time the full-int8 model on this CPU
  nas latency build-lut --config edgetpu -o edgetpu_lut.csv
  nas latency calibrate --config edgetpu --lut edgetpu_lut.csv
"""
PREDICT_EXAMPLES = """\
examples:
  nas latency predict efficientnet-edgetpu-M
  nas latency predict runs/edgetpu/best.yaml --source lut:edgetpu_lut.csv
  nas latency predict mine_int8.tflite                      # from the .tflite's ops (sim)
"""
MEASURE_EXAMPLES = """\
examples:
  nas latency measure efficientnet-edgetpu-S --threads 4
  nas latency measure mine_int8.tflite --source edgetpu      # on an attached Coral
"""
BUILD_LUT_EXAMPLES = """\
examples:
  nas latency build-lut --config edgetpu -o edgetpu_lut.csv                   # every layer shape, on this CPU
  nas latency build-lut --config experiments/photos.yaml --source edgetpu -o coral_lut.csv
"""
CALIBRATE_EXAMPLES = """\
examples:
  nas latency calibrate --config edgetpu --lut edgetpu_lut.csv --count 60
"""


def register(commands) -> None:
    parser = commands.add_parser("latency", help="predict or measure latency; build and calibrate lookup tables",
                                 description="Latency of models: predict, measure, build-lut, calibrate.",
                                 epilog=EXAMPLES)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True

    def probe_option(p):
        p.add_argument("--probe-tolerance", type=float, default=4.0, metavar="PCT",
                       help="re-time a batch whose probe model is more than PCT%% over the run's best; stop with "
                            "'machine too noisy' when it will not settle (default 4)")

    def timing_options(p, repeats_default=30):
        p.add_argument("--threads", type=int_at_least(1), default=1, help="interpreter threads (default 1: stable timings)")
        p.add_argument("--warmup", type=int_at_least(0), default=5, help="untimed invokes first (default 5)")
        p.add_argument("--repeats", type=int_at_least(1), default=repeats_default,
                       help=f"timed invokes (default {repeats_default})")

    predict = actions.add_parser("predict", help="predicted latency of a model name, spec .yaml or int8 .tflite",
                                 epilog=PREDICT_EXAMPLES)
    predict.add_argument("model", help="registered name, ModelSpec .yaml, or .tflite (sim source only)")
    predict.add_argument("--source", default="sim", help=f"{SOURCE_HELP} (default: sim)")
    predict.add_argument("--resolution", type=resolution_arg, help="override the spec's input resolution")
    predict.set_defaults(run=_predict)

    measure = actions.add_parser("measure", help="time a model name, spec .yaml, Keras file or .tflite",
                                 epilog=MEASURE_EXAMPLES)
    measure.add_argument("model", help="registered name, ModelSpec .yaml, .keras/.h5 file, or .tflite")
    measure.add_argument("--source", default="tflite-cpu", help="tflite-cpu[:int8|float] or edgetpu "
                         "(default: tflite-cpu, full-int8)")
    measure.add_argument("--resolution", type=resolution_arg, help="override the spec's input resolution")
    measure.add_argument("--representative", choices=("random", "digits"), default="random",
                         help="representative data for int8 conversion of a spec (default: random inputs)")
    timing_options(measure, 50)
    measure.set_defaults(run=_measure)

    build = actions.add_parser("build-lut", help="profile every layer shape of a search space into a table",
                               epilog=BUILD_LUT_EXAMPLES)
    build.add_argument("--config", required=True,
                       help="config (a YAML file or a shipped config's name) whose 'search_space:' section is used")
    build.add_argument("--source", default="tflite-cpu", help="tflite-cpu[:int8|float], edgetpu or sim")
    build.add_argument("-o", "--output", required=True, help="table file (CSV); an existing one is resumed")
    build.add_argument("--resolution", type=resolution_arg, help="input resolution (default: the skeleton's)")
    timing_options(build)
    probe_option(build)
    build.add_argument("--refine", action="store_true",
                       help="profile every layer again in the table's measurement run, keep the faster pass")
    build.set_defaults(run=_build_lut)

    calibrate = actions.add_parser("calibrate", help="fit a table's correction to whole-model measurements",
                                   epilog=CALIBRATE_EXAMPLES)
    calibrate.add_argument("--config", required=True,
                           help="config (a YAML file or a shipped config's name) whose 'search_space:' section is used")
    calibrate.add_argument("--lut", required=True, help="the table to calibrate (the correction is saved in it)")
    calibrate.add_argument("--count", type=int, default=60, help="random architectures to measure (default 60)")
    calibrate.add_argument("--train-fraction", type=float, default=0.5, help="share used to fit (default 0.5)")
    calibrate.add_argument("--seed", type=int, default=0, help="sampling and split seed (default 0)")
    calibrate.add_argument("--source", help="where to measure (default: the table's source)")
    calibrate.add_argument("--resolution", type=resolution_arg, help="input resolution (default: the table's)")
    calibrate.add_argument("--measurements", help="CSV of measurements, resumed (default: <lut>.calibration.csv)")
    timing_options(calibrate)
    probe_option(calibrate)
    calibrate.add_argument("--refine", action="store_true",
                           help="measure every architecture again in the table's run, keep the faster pass, refit")
    calibrate.set_defaults(run=_calibrate)
