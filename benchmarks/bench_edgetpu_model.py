"""Fit the Edge TPU cost model to Coral's published latencies; report LOO, leave-one-family-out and Spearman.

Rebuilds every row of shared/reference/edgetpu_latency_published.csv offline: keras.applications
(MobileNet, MobileNetV2, ResNet50, ResNet50V2, VGG16, weights=None), the registry's EfficientNet-EdgeTPU
S and L, and benchmarks/edgetpu_zoo.py (Inception v1/v4, SqueezeNet, MobileNet SSD v1/v2, U-Net, DeepLab
v3). Converts each to a full-int8 .tflite once (cached under benchmarks/out/edgetpu_rows/: conversion is
the slow part; a file's name carries a hash of the code and versions that build it, so a change to the
builder, the zoo, the converter or TensorFlow converts it again), reads the ops of each file with the
cost model's reader, chooses the MAC array width and prior width by worst leave-one-family-out error,
fits the constants (least squares on log-latency) and writes:

- latency/data/edgetpu_constants.json  (with --write-constants: the constants `sim` ships with)
- benchmarks/results/bench_edgetpu_model.md

Usage: PYTHONPATH=. .venv/bin/python benchmarks/bench_edgetpu_model.py [--prepare-only] [--cached-only]
       [--write-constants]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import functools
import hashlib
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out" / "edgetpu_rows"
PUBLISHED = ROOT.parent / "shared" / "reference" / "edgetpu_latency_published.csv"
from benchmarks.common import write_stamped  # noqa: E402
RESULTS = ROOT / "benchmarks" / "results" / "bench_edgetpu_model.md"

# published row name -> (builder kind, name); the rows this project can rebuild offline.
REBUILDABLE = {
    "mobilenet_v1": ("keras", "MobileNet"),
    "mobilenet_v2": ("keras", "MobileNetV2"),
    "resnet50_v1": ("keras", "ResNet50"),
    "resnet50_v2": ("keras", "ResNet50V2"),
    "vgg16": ("keras", "VGG16"),
    "efficientnet-edgetpu-S": ("registry", "efficientnet-edgetpu-S"),
    "efficientnet-edgetpu-L": ("registry", "efficientnet-edgetpu-L"),
    **{name: ("zoo", name) for name in ("inception_v1", "inception_v4", "squeezenet", "mobilenet_v1_ssd",
                                         "mobilenet_v2_ssd", "unet_mobilenet_v2", "deeplab_v3")},
}


def published_rows() -> list[dict]:
    with open(PUBLISHED) as f:
        lines = [line for line in f if not line.startswith("#")]
    return [row for row in csv.DictReader(lines) if row["model"] in REBUILDABLE]


# What each kind of row is built from, beside the converter (search_space/tflite.py) and the installed
# TensorFlow and Keras: a cached file is named by a hash of them, so it is converted again after they change.
BUILT_FROM = {"keras": (), "registry": ("search_space",), "zoo": ("benchmarks/edgetpu_zoo.py",)}


@functools.lru_cache(maxsize=None)
def build_fingerprint(kind: str) -> str:
    from importlib.metadata import version

    digest = hashlib.sha256(f"tensorflow {version('tensorflow')} keras {version('keras')}".encode())
    for source in ("search_space/tflite.py", *BUILT_FROM[kind]):
        path = ROOT / source
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(ROOT).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:10]


def tflite_path(model: str, size: int) -> Path:
    return OUT / f"{model}_{size}_int8_{build_fingerprint(REBUILDABLE[model][0])}.tflite"


def build_int8(model: str, size: int) -> Path:
    """Convert (once) and cache the full-int8 file of one published row."""
    path = tflite_path(model, size)
    if path.exists():
        return path
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from search_space.registry import get_spec
    from search_space.tflite import convert, random_representative

    kind, name = REBUILDABLE[model]
    if kind == "zoo":
        from benchmarks.edgetpu_zoo import BUILDERS

        net = BUILDERS[name](size)
    elif kind == "keras":
        inputs = keras.Input((size, size, 3), batch_size=1)
        net = getattr(keras.applications, name)(weights=None, input_tensor=inputs)
    else:
        import dataclasses

        from search_space.builder import build_model

        net = build_model(dataclasses.replace(get_spec(name), resolution=size), seed=0, batch_size=1)
    start = time.perf_counter()
    content = convert(net, quantize=True, representative=random_representative(size, count=2))
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)
    print(f"converted {model} at {size}: {len(content) / 1e6:.1f} MB in {time.perf_counter() - start:.0f} s",
          flush=True)
    keras.backend.clear_session()
    return path


FAMILIES = {
    "mobilenet_v1": "MobileNets", "mobilenet_v2": "MobileNets", "resnet50_v1": "ResNets", "resnet50_v2": "ResNets",
    "vgg16": "VGG", "inception_v1": "Inceptions+SqueezeNet", "inception_v4": "Inceptions+SqueezeNet",
    "squeezenet": "Inceptions+SqueezeNet", "efficientnet-edgetpu-S": "EfficientNet-EdgeTPU",
    "efficientnet-edgetpu-L": "EfficientNet-EdgeTPU", "mobilenet_v1_ssd": "detection+segmentation",
    "mobilenet_v2_ssd": "detection+segmentation", "unet_mobilenet_v2": "detection+segmentation",
    "deeplab_v3": "detection+segmentation",
}
TILES = (16, 32, 64)  # MAC array widths tried ...
PRIOR_SIGMAS = (3.0, 10.0)  # ... prior widths (factor each constant may stray from its nominal value) ...
OVERLAPS = (0.0, 0.25, 0.5, 0.75, 1.0)  # ... and shares of parameter streaming hidden behind MAC work: the
# triple with the smallest worst leave-one-family-out error ships (a choice made on the same 14 rows), at
# the shipped reduction vector and drain, which are then checked the same way at that triple:
REDUCE_TILES = (1, 8, 16, 32, 64)  # per-tap input-channel vectors tried (latency.work.REDUCE_TILE ships one)
DRAINS = (0, 32, 64)  # per-output-vector drain cycles tried (latency.work.DRAIN_CYCLES ships one of them)
# Coral's detection models are 300x300 (TF-OD's ssd_mobilenet_v1/v2_coco); the CSV says 224. The fit uses
# the CSV's size; these 300 builds are predicted beside it as a check, not fitted.
SIDE_CHECKS = (("mobilenet_v1_ssd", 300), ("mobilenet_v2_ssd", 300))
# Rows predicted but not fitted on: their published time includes host work the rebuilt graph cannot have.
NOT_FITTED = {
    "mobilenet_v1_ssd": "the published time includes TFLite_Detection_PostProcess (box decoding and NMS on the "
                        "host CPU: a custom op that cannot be built offline, its host time unknown)",
    "mobilenet_v2_ssd": "as mobilenet_v1_ssd",
}


def _pct(p: float, m: float) -> str:
    return f"{100 * (p / m - 1):+.0f}%"


def _time_predict(model, spec, repeats: int = 7, number: int = 300) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            model.predict_ms(spec)
        best = min(best, (time.perf_counter() - start) / number)
    return best


def report(rows: list[dict], paths: dict[str, Path], write_constants: bool) -> int:
    import dataclasses
    import json

    from scipy.stats import spearmanr

    from benchmarks.common import markdown_table
    from benchmarks.edgetpu_zoo import DEVIATIONS
    from latency.edgetpu_fit import fit_constants, leave_group_out_ms, leave_one_out_ms
    from latency.edgetpu_model import CONSTANTS_PATH, MEANINGS, EdgeTpuCostModel, predict_work_ms
    from latency.tflite_ops import tflite_work
    from search_space.registry import get_spec

    measured = [float(row["usb_ms"]) for row in rows]
    families = [FAMILIES[row["model"]] for row in rows]
    fitted = [row["model"] not in NOT_FITTED for row in rows]

    def worst_of(pred, only_fitted=True):
        return max(abs(p / m - 1) for p, m, f in zip(pred, measured, fitted) if f or not only_fitted)

    from latency.edgetpu_fit import NOMINAL

    def fit_kw(sigma, overlap):  # the overlap is chosen, not fitted: it rides on the prior's constants
        return {"prior_sigma": math.log(sigma), "prior": dataclasses.replace(NOMINAL, stream_overlap=overlap)}

    tried = {}
    for tile in TILES:
        works = [tflite_work(paths[row["model"]], tile) for row in rows]
        for sigma in PRIOR_SIGMAS:
            for overlap in OVERLAPS:
                lofo = leave_group_out_ms(works, measured, families, fitted, **fit_kw(sigma, overlap))
                tried[tile, sigma, overlap] = (worst_of(lofo), works, lofo)
    tile, sigma, overlap = min(tried, key=lambda t: tried[t][0])
    _, works, lofo = tried[tile, sigma, overlap]
    import latency.work as work_module  # the work constants the shipped ones were chosen among, same triple

    def worst_lofo_with(**values):
        saved = {k: getattr(work_module, k) for k in values}
        try:
            for k, v in values.items():
                setattr(work_module, k, v)
            work_module.layer_work.cache_clear()
            vworks = [tflite_work(paths[row["model"]], tile) for row in rows]
            return worst_of(leave_group_out_ms(vworks, measured, families, fitted, **fit_kw(sigma, overlap)))
        finally:
            for k, v in saved.items():
                setattr(work_module, k, v)
            work_module.layer_work.cache_clear()

    drains = {drain: worst_lofo_with(DRAIN_CYCLES=drain) for drain in DRAINS}
    reduces = {r: worst_lofo_with(REDUCE_TILE=r) for r in REDUCE_TILES}
    unfolded = worst_lofo_with(FOLD_MAX_CIN=0)
    date = datetime.date.today().isoformat()
    fit_rows = [i for i, f in enumerate(fitted) if f]
    constants = fit_constants([works[i] for i in fit_rows], [measured[i] for i in fit_rows],
                              **fit_kw(sigma, overlap))
    constants = dataclasses.replace(constants, mac_tile=tile, stream_overlap=overlap, note=(
        f"fitted {date} by benchmarks/bench_edgetpu_model.py to Coral USB Accelerator latencies of "
        + ", ".join(rows[i]["model"] for i in fit_rows)))
    constants = dataclasses.replace(constants, **{k: type(getattr(constants, k))(v) for k, v in
                                                  dataclasses.asdict(constants).items() if k != "note"})
    loo = leave_one_out_ms(works, measured, fitted, **fit_kw(sigma, overlap))
    fit = [predict_work_ms(w, constants) for w in works]
    if write_constants:
        data = {**constants.to_dict(), "meanings": MEANINGS}
        CONSTANTS_PATH.write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {CONSTANTS_PATH.relative_to(ROOT)}")
    model = EdgeTpuCostModel(constants)
    missing = [m for m in REBUILDABLE if m not in paths]
    lines = [
        "# Edge TPU cost model: fit to Coral's published latencies", "",
        "No Edge TPU here: the targets are Coral's published USB Accelerator figures, "
        "`shared/reference/edgetpu_latency_published.csv`. Produced by `benchmarks/bench_edgetpu_model.py`.", "",
        f"{len(rows)} of 14 published rows rebuilt offline (keras.applications or `benchmarks/edgetpu_zoo.py` with "
        "random weights, or the registry spec), converted to full-int8 TFLite and read op by op"
        + (f"; not converted: {', '.join(missing)}" if missing else "") + f". {len(fit_rows)} rows are fitted on "
        "(USB column); rows marked * are predicted but not fitted on: "
        + "; ".join(f"{k}: {v}" for k, v in NOT_FITTED.items()) + ". *Fit*: constants fitted on all fitted rows. "
        "*LOO*: each row from constants fitted without it. *LOFO*: each row from constants fitted without its "
        "whole family.", "",
    ]
    table = []
    for row, fam, w, m, f, lo, lf in zip(rows, families, works, measured, fit, loo, lofo):
        table.append([row["model"] + ("" if row["model"] not in NOT_FITTED else " *"), fam, row["input_size"], f"{w.total_macs / 1e9:.2f}",
                      f"{sum(w.padded_macs) / max(1, w.total_macs):.2f}", f"{w.param_bytes / 1e6:.1f}",
                      f"{w.moved_bytes / 1e6:.1f}", f"{w.spill_bytes / 1e6:.1f}", w.ops, w.host_ops, f"{m:g}",
                      f"{f:.1f}", _pct(f, m), f"{lo:.1f}", _pct(lo, m), f"{lf:.1f}", _pct(lf, m)])
    lines += markdown_table(["model", "family", "input", "GMACs", "padded/MACs", "params MB", "moved MB",
                             "spill MB", "TPU ops", "host ops", "published ms", "fit ms", "fit err", "LOO ms",
                             "LOO err", "LOFO ms", "LOFO err"], table)
    preds = (("fit", fit), ("LOO", loo), ("LOFO", lofo))

    def rho_of(pred, only_fitted):
        pairs = [(p, m) for p, m, f in zip(pred, measured, fitted) if f or not only_fitted]
        return spearmanr([p for p, _ in pairs], [m for _, m in pairs]).statistic

    misses = [r["model"] for r, p, m in zip(rows, lofo, measured) if abs(p / m - 1) > 0.2]
    lines += ["", "| | fit | LOO | LOFO |", "|---|---|---|---|"]
    for label, only in ((f"fitted rows ({len(fit_rows)})", True), (f"all rows ({len(rows)})", False)):
        lines += [f"| worst error, {label} | " + " | ".join(f"{100 * worst_of(v, only):.0f}%" for _, v in preds) + " |",
                  f"| Spearman, {label} | " + " | ".join(f"{rho_of(v, only):.3f}" for _, v in preds) + " |"]
    # the alternative: fit the SSD rows too (same tile and prior), to show what leaving them out changes
    everything = fit_constants(works, measured, **fit_kw(sigma, overlap))
    lofo_all = leave_group_out_ms(works, measured, families, **fit_kw(sigma, overlap))
    sl = {r["model"]: _pct(predict_work_ms(w, everything), m) for r, w, m in zip(rows, works, measured)}
    lines += ["", f"Fitting the {len(rows) - len(fit_rows)} rows marked * too (same tile, prior and overlap): worst LOFO error "
              f"{100 * worst_of(lofo_all, False):.0f}%, Spearman LOFO {spearmanr(lofo_all, measured).statistic:.3f}; "
              "fit error " + ", ".join(f"{k} {v}" for k, v in sl.items()) + "."]
    lines += ["",
              f"Goal: every row within ±20% LOFO, Spearman ≥ 0.95. Rows beyond ±20% LOFO: "
              f"{', '.join(misses) if misses else 'none'}.", "",
              "MAC array lanes (output channels padded to it), prior width (factor) and streaming overlap (share of "
              "the shorter of parameter streaming and MAC time hidden) tried, at the shipped reduction vector and "
              "drain, worst LOFO error: " + ", ".join(
                  f"{t}/{s:g}/{o:g}: {100 * tried[t, s, o][0]:.1f}%" for t, s, o in tried)
              + f"; shipped: {tile}/{sigma:g}/{overlap:g}.", "",
              "Reduction vector (each kernel tap's input channels padded to it; 1: unpadded) tried at that "
              "lanes, prior and overlap, worst LOFO error: " + ", ".join(
                  f"{r}: {100 * e:.1f}%" for r, e in reduces.items())
              + f"; shipped: {work_module.REDUCE_TILE} (`latency.work.REDUCE_TILE`). The first conv (at most "
              f"{work_module.FOLD_MAX_CIN} input channels: the image) has its taps folded into its reduction, "
              f"padded whole; padded per tap like the others instead, worst LOFO error {100 * unfolded:.0f}%.", "",
              "Drain cycles per output vector (MACs charged (cycles + drain) / reduce times) tried at that lanes, "
              "prior and overlap, worst LOFO error: " + ", ".join(f"{d}: {100 * e:.1f}%" for d, e in drains.items())
              + f"; shipped: {work_module.DRAIN_CYCLES} (`latency.work.DRAIN_CYCLES`).", "",
              "Constants (shipped in `latency/data/edgetpu_constants.json` with these meanings):", ""]
    lines += markdown_table(["constant", "value", "meaning"],
                            [[k, f"{v:.4g}" if isinstance(v, float) else v, MEANINGS[k]]
                             for k, v in constants.to_dict().items() if k != "note"])
    published = {row["model"]: float(row["usb_ms"]) for row in rows}
    sml = []
    for x in "SML":
        name = f"efficientnet-edgetpu-{x}"
        ms = model.predict_ms(get_spec(name))
        sml.append([name, f"{ms:.2f}", published.get(name, "none"),
                    _pct(ms, published[name]) if name in published else "-"])
    lines += ["", "EfficientNet-EdgeTPU from the registry specs (`sim`, `ModelSpec.layers()` path, fitted "
              "constants; M has no published latency in the reference files):", ""]
    lines += markdown_table(["model", "predicted ms", "published ms", "error"], sml)
    sl_err = {x: model.predict_ms(get_spec(f"efficientnet-edgetpu-{x}")) / published[f"efficientnet-edgetpu-{x}"] - 1
              for x in "SL"}
    lines += ["", "Goal: S and L within ±10% of published: " + ", ".join(
        f"{x} {100 * e:+.0f}%" for x, e in sl_err.items())
        + ("; met." if all(abs(e) <= 0.1 for e in sl_err.values()) else "; NOT met.")]
    checks = []
    for name, size in SIDE_CHECKS:
        if tflite_path(name, size).exists():
            ms = predict_work_ms(tflite_work(tflite_path(name, size), tile), constants)
            checks.append([name, size, f"{ms:.1f}", published[name], _pct(ms, published[name])])
    if checks:
        lines += ["", "Side check, not fitted: the detection rows built at 300x300, the size of Coral's SSD models "
                  "(the CSV says 224):", ""]
        lines += markdown_table(["model", "input", "predicted ms", "published ms", "error"], checks)
    spec_s = get_spec("efficientnet-edgetpu-S")
    lines += ["", f"`predict_ms` on S: {1e6 * _time_predict(model, spec_s):.0f} µs per call (minimum over 7 "
              "repeats of 300 calls, this shared machine).", "", "Where the time goes (ms, fitted constants):", ""]
    parts = [model.breakdown_ms(w) for w in works]
    lines += markdown_table(["term", *(r["model"] for r in rows)],
                            [[t, *(f"{p[t]:.2f}" for p in parts)] for t in parts[0]])
    lines += ["", "Why rows miss (qualitative; the figures are in the tables above):", "",
              "- inception_v1: over-predicted: a small graph of many narrow ops (57 convolutions, "
              "13 pools) whose per-op overhead is mostly hidden behind the convolutions' own work (a MAC op costs the "
              "larger of the two, a MAC-free op only its bytes); it still runs faster per MAC on the device than "
              "the other rows say.",
              "- efficientnet-edgetpu-S and -L: S runs slower per MAC on the device than Inception v1 (similar "
              "MACs, 5.1 vs 3.4 ms published). Its heaviest convolutions are fused 3x3 ones on 24-48 input channels at "
              "112x112 and 56x56: with each tap's input channels padded to the 64-wide reduction vector they take "
              "2-2.7 times their MACs in array cycles (the padded/MACs column), Inception v1's (64-192 channels) "
              "hardly more; without that padding S was under-predicted by 17%. L's fused convs have 32-56 input "
              "channels and it is the row whose parameters only just overflow the on-chip memory, so it is the one "
              "most sensitive to the streaming overlap; it stays over-predicted, more so with its family left out of "
              "the fit.",
              "- deeplab_v3: under-predicted, and its fit leans on our graph's last op: a QUANTIZE of the "
              "513x513x21 logits (int8 to uint8), whose 11 MB working set is the row's whole spill. Coral's graph "
              "ends instead with an ArgMax over those logits, which the Edge TPU does not map (it runs on the host, "
              "the logits crossing USB); rebuilt that way (tried, not shipped) the QUANTIZE and its spill go, the "
              "host ArgMax at the nominal host constants adds far less, and the row falls much further below its "
              "published time. The published time is 52 ms on USB and 241 ms on the Dev Board, whose host CPU is far "
              "slower: host work (the ArgMax, perhaps the 33-to-513 resize, which Coral's op table says may not "
              "map depending on sizes) is probably a large part of it, and no fitted row pins the host constants.",
              "- mobilenet_v1_ssd, mobilenet_v2_ssd (not fitted): the host post-processing is in the published "
              "time and not in our graph; at 300x300 (Coral's SSD input) the gap narrows (side check above).",
              ""]
    lines += ["Deviations of the rebuilt graphs from the benchmarked ones:", ""]
    lines += [f"- {name}: {text}" for name, text in DEVIATIONS.items()]
    lines += ["- mobilenet_v2: keras.applications' graph (one MEAN op instead of AVERAGE_POOL, a dense classifier).",
              "- all: random weights, quantisation ranges from 2 random-normal images (latency does not depend "
              "on them); the Edge TPU compiler is not run (not installable here), so which ops it maps is "
              "predicted from Coral's documented op support.", ""]
    write_stamped(RESULTS, "\n".join(lines))
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare-only", action="store_true", help="only convert and cache the .tflite files")
    parser.add_argument("--write-constants", action="store_true",
                        help="write the fitted constants to latency/data/edgetpu_constants.json")
    parser.add_argument("--cached-only", action="store_true", help="report on the rows already converted")
    args = parser.parse_args(argv)
    rows = published_rows()
    if args.cached_only:  # report on the rows converted so far (conversion is the slow part)
        rows = [row for row in rows if tflite_path(row["model"], int(row["input_size"])).exists()]
    paths = {row["model"]: build_int8(row["model"], int(row["input_size"])) for row in rows}
    if not args.cached_only:
        for name, size in SIDE_CHECKS:
            build_int8(name, size)
    if args.prepare_only:
        return 0
    return report(rows, paths, args.write_constants)


if __name__ == "__main__":
    sys.exit(main())
