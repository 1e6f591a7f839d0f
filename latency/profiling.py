"""Profiling on a source: single layers for lookup tables, whole models for calibration. Resumable.

A *profiler* times lists of layers or specs on one source: `tflite-cpu` (int8, or `tflite-cpu:float`,
LiteRT on this CPU), `edgetpu` (a Coral device) or `sim` (the Edge TPU cost model, each layer
predicted as a model of its own). `build_table` and `measure_architectures` save after every batch
and, run again on the same file, keep what is there and do only what is missing.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import importlib.metadata
import io
import json
import math
import os
import platform
import random
import time
from pathlib import Path
from typing import Callable, Sequence

from latency.lookup_table import FORMAT, LookupTable, space_fingerprint
from latency.measure import REPEATS, WARMUP, Timing
from search_space.errors import UserError
from search_space.files import write_text
from search_space.registries import Registry
from search_space.space import SearchSpace
from search_space.spec import Layer, ModelSpec

Progress = Callable[[str], None]
PROFILERS = Registry("profiling source")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Profiler:
    batch_layers = 1  # layers per converted file
    quantization = "int8"

    def __init__(self, source: str, threads: int = 1, warmup: int = WARMUP, repeats: int = REPEATS):
        self.source, self.threads, self.warmup, self.repeats = source, threads, warmup, repeats

    def device(self) -> str:
        raise NotImplementedError

    def header(self) -> dict[str, str]:
        return {
            "source": self.source,
            "device": self.device(),
            "quantization": self.quantization,
            "threads": str(self.threads),
            "timing": f"warm-up {self.warmup}, repeats {self.repeats}, interleaved; entry ms = minimum",
            "versions": ", ".join(f"{p} {_version(p)}" for p in ("tensorflow", "ai-edge-litert", "edgetpu-nas")),
        }

    def layers(self, layers: Sequence[Layer], spec: ModelSpec) -> list[Timing]:
        raise NotImplementedError

    def models(self, specs: Sequence[ModelSpec]) -> list[Timing]:
        raise NotImplementedError


@PROFILERS.register("tflite-cpu", "tflite-cpu:int8", "tflite-cpu:float")
class TfliteCpuProfiler(Profiler):
    batch_layers = 40  # one conversion for 40 layers, each its own signature

    def __init__(self, source: str, **kwargs):
        super().__init__(source, **kwargs)
        self.quantize = not source.endswith(":float")
        self.quantization = "int8" if self.quantize else "float32"

    def device(self) -> str:
        return f"{cpu_name()} ({os.cpu_count()} cores), LiteRT with XNNPACK, {self.threads} thread(s)"

    def layers(self, layers, spec):
        from latency.layer_models import layers_to_tflite, signature_invokes
        from latency.measure import time_interleaved

        content = layers_to_tflite(layers, spec, self.quantize)
        return time_interleaved(signature_invokes(content, len(layers), self.threads), self.warmup, self.repeats,
                                self.threads)

    def models(self, specs):
        from latency.measure import spec_to_tflite, time_tflite

        contents = [spec_to_tflite(spec, self.quantize) for spec in specs]
        return time_tflite(contents, self.threads, self.warmup, self.repeats)


@PROFILERS.register("edgetpu")
class EdgeTpuProfiler(Profiler):
    # edgetpu_compiler maps one model per file here; layers are converted one by one.

    def __init__(self, source: str, **kwargs):
        from latency.edgetpu_device import check_edgetpu

        check_edgetpu()
        super().__init__(source, **kwargs)

    def device(self) -> str:
        return "Coral Edge TPU (libedgetpu1-std), host " + cpu_name()

    def layers(self, layers, spec):
        from latency.edgetpu_device import time_on_edgetpu
        from latency.layer_models import layers_to_tflite

        return time_on_edgetpu([layers_to_tflite([layer], spec) for layer in layers], self.warmup, self.repeats)

    def models(self, specs):
        from latency.edgetpu_device import time_on_edgetpu
        from latency.measure import spec_to_tflite

        return time_on_edgetpu([spec_to_tflite(spec) for spec in specs], self.warmup, self.repeats)


@PROFILERS.register("sim")
class SimProfiler(Profiler):
    batch_layers = 1000

    def device(self) -> str:
        from latency.edgetpu_model import load_constants

        return f"Edge TPU cost model ({load_constants().note})"

    def header(self):
        header = super().header()
        header["timing"] = "predicted by the cost model, no timing"
        return header

    def layers(self, layers, spec):
        from latency.edgetpu_model import Work, layer_work, load_constants, predict_work_ms

        out = []
        for layer in layers:
            io_bytes = layer.in_size ** 2 * layer.in_ch + layer.out_size ** 2 * layer.out_ch
            ms = predict_work_ms(layer_work(layer) + Work(io_bytes=io_bytes), load_constants())
            out.append(Timing(ms, ms, ms, 1))
        return out

    def models(self, specs):
        from latency.edgetpu_model import EdgeTpuCostModel

        model = EdgeTpuCostModel()
        return [Timing(*(model.predict_ms(s),) * 3, 1) for s in specs]


def make_profiler(source: str, threads: int = 1, warmup: int = WARMUP, repeats: int = REPEATS) -> Profiler:
    return PROFILERS.get(source)(source, threads=threads, warmup=warmup, repeats=repeats)


class _Eta:
    def __init__(self, total: int, progress: Progress | None, what: str):
        self.total, self.progress, self.what, self.start, self.done = total, progress, what, time.monotonic(), 0

    def step(self, count: int) -> None:
        self.done += count
        if self.progress:
            elapsed = time.monotonic() - self.start
            eta = elapsed / self.done * (self.total - self.done)
            self.progress(f"{self.what} {self.done}/{self.total}, elapsed {elapsed:.0f} s, ETA {eta:.0f} s")


# Lookup tables ----------------------------------------------------------------------------------


def table_header(space: SearchSpace, resolution: int, profiler: Profiler) -> dict[str, str]:
    return {
        "format": FORMAT,
        **profiler.header(),
        "space": space_fingerprint(space, resolution),
        "resolution": str(resolution),
        "skeleton": space.skeleton.name,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "space_json": json.dumps(space.to_dict(), default=str),
    }


def _keep_faster(old: dict | None, new: dict) -> dict:
    """Of two passes, keep the faster: sustained load from others inflates even a pass's minimum."""
    if old is None or new["ms"] <= old["ms"]:
        return new
    return old


def build_table(space: SearchSpace, resolution: int, profiler: Profiler, path: str | os.PathLike,
                progress: Progress | None = None, refine: bool = False) -> LookupTable:
    """Profile every layer `space` can produce at `resolution`; resumes from an existing `path`.

    `refine`: profile every layer again and keep, per layer, the faster of the two passes.
    """
    path = Path(path)
    layers = space.possible_layers(resolution)
    spec = dataclasses.replace(space.skeleton, resolution=resolution)
    if path.exists():
        table = LookupTable.load(path)
        table.check_space(space, resolution)
        for name in ("source", "quantization", "threads"):
            if table.header.get(name) != profiler.header()[name]:
                raise UserError(f"'{path}' was built with {name} {table.header.get(name)}, not "
                                f"{profiler.header()[name]}; give another output file to build a new table")
    else:
        table = LookupTable(table_header(space, resolution, profiler), {}, path)
    wanted = {layer.key for layer in layers}
    table.entries = {k: v for k, v in table.entries.items() if k in wanted}
    missing = [layer for layer in layers if refine or layer.key not in table.entries]
    if progress:
        progress(f"{len(layers)} layer shapes in the space at {resolution}x{resolution}; "
                 f"{len(table.entries)} already in '{path}', {len(missing)} to profile on {profiler.source}"
                 + (" (refining: the faster of two passes is kept)" if refine else ""))
    eta = _Eta(len(missing), progress, "profiled layers")
    for start in range(0, len(missing), profiler.batch_layers):
        batch = missing[start:start + profiler.batch_layers]
        for layer, timing in zip(batch, profiler.layers(batch, spec)):
            new = {"ms": timing.ms, "min_ms": timing.min_ms, "median_ms": timing.median_ms,
                   "max_ms": timing.max_ms, "repeats": timing.repeats}
            table.entries[layer.key] = _keep_faster(table.entries.get(layer.key), new)
        table.save(path)  # after every batch: an interrupted build keeps what it measured
        eta.step(len(batch))
    table.entries = {layer.key: table.entries[layer.key] for layer in layers}
    table.header["layers"] = str(len(layers))
    table.save(path)
    return table


# Whole-model measurements for calibration --------------------------------------------------------

RECORD_FIELDS = ("index", "decisions", "ms", "min_ms", "median_ms", "max_ms", "repeats")


def sample_architectures(space: SearchSpace, count: int, seed: int) -> list[list[int]]:
    """The same seed gives the same sequence: a larger count extends a smaller one."""
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(count)]


def encode_decisions(decisions: Sequence[int]) -> str:
    return "-".join(map(str, decisions))


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        return [{"index": int(r["index"]), "decisions": r["decisions"],
                 **{k: float(r[k]) for k in RECORD_FIELDS[2:]}} for r in rows]
    except (OSError, KeyError, ValueError, TypeError):
        raise UserError(f"calibration measurements '{path}' are not readable; delete the file to measure again") from None


def write_records(path: Path, rows: list[dict], extra: Sequence[str] = ()) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, [*RECORD_FIELDS, *extra], lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, out.getvalue())


def measure_architectures(space: SearchSpace, resolution: int, count: int, seed: int, profiler: Profiler,
                          path: Path, progress: Progress | None = None, per_batch: int = 2,
                          refine: bool = False) -> list[dict]:
    """Measure `count` random architectures end to end; rows already in `path` are kept.

    `refine`: measure every architecture again and keep, per architecture, the faster pass.
    """
    sized = dataclasses.replace(space, skeleton=dataclasses.replace(space.skeleton, resolution=resolution))
    wanted = [encode_decisions(d) for d in sample_architectures(space, count, seed)]
    rows = {r["index"]: r for r in read_records(path)}
    for index, row in rows.items():
        if index < count and row["decisions"] != wanted[index]:
            raise UserError(f"'{path}' holds measurements of other architectures (another space or seed); "
                            "delete it or give the seed it was measured with")
    todo = [i for i in range(count) if refine or i not in rows]
    if progress:
        progress(f"{count} architectures at {resolution}x{resolution}: {len(rows)} already measured in "
                 f"'{path}', {len(todo)} to measure on {profiler.source}" + (" (refining)" if refine else ""))
    eta = _Eta(len(todo), progress, "measured architectures")
    for start in range(0, len(todo), per_batch):
        batch = todo[start:start + per_batch]
        specs = [sized.to_spec([int(x) for x in wanted[i].split("-")]) for i in batch]
        for i, timing in zip(batch, profiler.models(specs)):
            new = {"index": i, "decisions": wanted[i], "ms": timing.ms, "min_ms": timing.min_ms,
                   "median_ms": timing.median_ms, "max_ms": timing.max_ms, "repeats": timing.repeats}
            rows[i] = _keep_faster(rows.get(i), new)
        write_records(path, [rows[i] for i in sorted(rows)])
        eta.step(len(batch))
    return [rows[i] for i in range(count)]


def split_indices(count: int, train_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = list(range(count))
    random.Random(seed + 1).shuffle(order)
    n_train = max(1, min(count - 1, math.ceil(count * train_fraction)))
    return sorted(order[:n_train]), sorted(order[n_train:])
