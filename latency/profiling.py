"""Profiling on a source: single layers for lookup tables, whole models for calibration. Resumable.

A *profiler* times lists of layers or specs on one source: `tflite-cpu` (int8, or `tflite-cpu:float`,
LiteRT on this CPU), `edgetpu` (a Coral device) or `sim` (the Edge TPU cost model, each layer
predicted as a model of its own). `build_table` and `measure_models` save after every batch and, run
again on the same file, keep what is there and do only what is missing.

Every batch is measured inside a `Run`: the machine's fingerprint, the measurement run's id, and a
fixed *probe* model timed before and after the batch. A batch whose probe is more than `tolerance`
over the run's best probe was measured while the machine was slow, and is measured again; a run
whose probe does not settle within `tries` stops with "machine too noisy". Each row keeps its batch's
probe, so a table can be rescaled by it later. Files from another machine or run are refused
(`latency.fingerprint`).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import functools
import io
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from latency.fingerprint import (Fingerprint, check_same_machine, check_same_run, cpu_name, new_run_id,
                                 package_version)
from latency.lookup_table import FORMAT, LookupTable, space_fingerprint
from latency.measure import REPEATS, ROUNDS, WARMUP, Timing

ROUNDS_TEXT = f"{ROUNDS} rounds"
from search_space.errors import UserError
from search_space.files import write_text
from search_space.extensions import Registry
from search_space.space import SearchSpace
from search_space.spec import Layer, ModelSpec

Progress = Callable[[str], None]
PROFILERS = Registry("profiling source")
PROBE_MODEL, PROBE_RESOLUTION = "efficientnet-edgetpu-S", 96  # fixed: probes of every run compare
PROBE_TOLERANCE = 0.04  # a batch whose probe is more than this over the run's best is measured again
PROBE_TRIES = 4


@functools.lru_cache(maxsize=2)
def probe_tflite(quantize: bool = True) -> bytes:
    """The probe: a fixed model (weights from seed 0), converted once per process."""
    from latency.measure import spec_to_tflite
    from search_space.registry import REGISTRY

    return spec_to_tflite(dataclasses.replace(REGISTRY[PROBE_MODEL], resolution=PROBE_RESOLUTION), quantize)


class NoisyMachine(UserError):
    """The probe did not settle: the machine's speed moved during the measurement."""


class Profiler:
    batch_layers = 1  # layers per converted file
    quantization = "int8"

    def __init__(self, source: str, threads: int = 1, warmup: int = WARMUP, repeats: int = REPEATS):
        self.source, self.threads, self.warmup, self.repeats = source, threads, warmup, repeats

    def device(self) -> str:
        raise NotImplementedError

    def fingerprint(self) -> Fingerprint:
        return Fingerprint.of_this_machine(self.source, self.threads, self.quantization)

    def header(self) -> dict[str, str]:
        return {
            "source": self.source,
            "device": self.device(),
            "quantization": self.quantization,
            "threads": str(self.threads),
            "timing": f"bare invoke, pinned to one core, {ROUNDS_TEXT}: warm-up {self.warmup} right before each "
                      f"block, {self.repeats} timed in all; entry ms = minimum",
            "versions": ", ".join(f"{p} {package_version(p)}" for p in ("tensorflow", "ai-edge-litert", "edgetpu-nas")),
        }

    def probe_ms(self) -> float | None:
        """The fixed probe model's time now (minimum of a short block), or None where nothing is timed."""
        return None

    # Building what is timed (conversion: slow) is kept apart from timing it, so that a batch timed
    # while the machine was slow is timed again without converting again.

    def prepare_layers(self, layers: Sequence[Layer], spec: ModelSpec) -> list:
        raise NotImplementedError

    def prepare_models(self, specs: Sequence[ModelSpec]) -> list:
        raise NotImplementedError

    def time(self, prepared: list) -> list[Timing]:
        from latency.measure import time_warm

        return time_warm(prepared, self.warmup, self.repeats, self.threads)

    def layers(self, layers: Sequence[Layer], spec: ModelSpec) -> list[Timing]:
        return self.time(self.prepare_layers(layers, spec))

    def models(self, specs: Sequence[ModelSpec]) -> list[Timing]:
        return self.time(self.prepare_models(specs))


@PROFILERS.register("tflite-cpu", "tflite-cpu:int8", "tflite-cpu:float")
class TfliteCpuProfiler(Profiler):
    batch_layers = 40  # one conversion for 40 layers, each its own signature

    def __init__(self, source: str, **kwargs):
        super().__init__(source, **kwargs)
        self.quantize = not source.endswith(":float")
        self.quantization = "int8" if self.quantize else "float32"

    def device(self) -> str:
        return f"{cpu_name()} ({os.cpu_count()} cores), LiteRT with XNNPACK, {self.threads} thread(s)"

    def prepare_layers(self, layers, spec):
        from latency.layer_models import layers_to_tflite, signature_invokes

        return signature_invokes(layers_to_tflite(layers, spec, self.quantize), len(layers), self.threads)

    def prepare_models(self, specs):
        from latency.measure import interpreter_invoke, spec_to_tflite
        from search_space.tflite import load_interpreter

        converted = self.__dict__.setdefault("_converted", {})  # a model timed again is not converted again
        for spec in specs:
            if spec not in converted:
                converted[spec] = spec_to_tflite(spec, self.quantize)
        return [interpreter_invoke(load_interpreter(converted[spec], num_threads=self.threads)) for spec in specs]

    def probe_ms(self):
        from latency.measure import interpreter_invoke, time_warm
        from search_space.tflite import load_interpreter

        if not hasattr(self, "_probe"):
            self._probe = interpreter_invoke(load_interpreter(probe_tflite(self.quantize), num_threads=self.threads))
        return time_warm([self._probe], warmup=3, repeats=12, threads=self.threads, rounds=1)[0].ms



@PROFILERS.register("edgetpu")
class EdgeTpuProfiler(Profiler):
    # edgetpu_compiler maps one model per file here; layers are converted one by one.

    def __init__(self, source: str, **kwargs):
        from latency.edgetpu_device import check_edgetpu

        check_edgetpu()
        super().__init__(source, **kwargs)

    def device(self) -> str:
        return "Coral Edge TPU (libedgetpu1-std), host " + cpu_name()

    def fingerprint(self) -> Fingerprint:
        return Fingerprint.of_this_machine(self.source, self.threads, self.quantization, device=self.device())

    def probe_ms(self):
        from latency.edgetpu_device import edgetpu_invokes
        from latency.measure import time_warm

        if not hasattr(self, "_probe"):
            self._probe = edgetpu_invokes([probe_tflite(True)])[0]
        return time_warm([self._probe], warmup=3, repeats=12, rounds=1)[0].ms

    def prepare_layers(self, layers, spec):
        from latency.edgetpu_device import edgetpu_invokes
        from latency.layer_models import layers_to_tflite

        return edgetpu_invokes([layers_to_tflite([layer], spec) for layer in layers])

    def prepare_models(self, specs):
        from latency.edgetpu_device import edgetpu_invokes
        from latency.measure import spec_to_tflite

        return edgetpu_invokes([spec_to_tflite(spec) for spec in specs])


@PROFILERS.register("sim")
class SimProfiler(Profiler):
    batch_layers = 1000

    def device(self) -> str:
        from latency.edgetpu_model import load_constants

        return f"Edge TPU cost model ({load_constants().note})"

    def fingerprint(self) -> Fingerprint:
        # the cost model gives the same numbers on any machine: only it and the settings count
        return Fingerprint(self.source, self.device(), "any", 0, "n/a", "n/a", self.threads, self.quantization)

    def header(self):
        header = super().header()
        header["timing"] = "predicted by the cost model, no timing"
        return header

    def time(self, prepared):
        return prepared  # predicted, not timed: nothing to repeat

    def prepare_layers(self, layers, spec):
        from latency.edgetpu_model import Work, layer_work, load_constants, predict_work_ms

        out = []
        for layer in layers:
            io_bytes = layer.in_size ** 2 * layer.in_ch + layer.out_size ** 2 * layer.out_ch
            ms = predict_work_ms(layer_work(layer) + Work(io_bytes=io_bytes), load_constants())
            out.append(Timing(ms, ms, ms, 1))
        return out

    def prepare_models(self, specs):
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


# Measurement runs and the probe ------------------------------------------------------------------


@dataclass
class Run:
    """One measurement run: where (fingerprint), which (id), and the best probe seen in it so far."""

    fingerprint: Fingerprint
    id: str
    probe_best_ms: float | None = None
    tolerance: float = PROBE_TOLERANCE
    tries: int = PROBE_TRIES

    @classmethod
    def start(cls, profiler: Profiler) -> "Run":
        return cls(profiler.fingerprint(), new_run_id())

    @classmethod
    def from_header(cls, header: dict[str, str], where: str) -> "Run":
        if "fingerprint" not in header or "run" not in header:
            raise UserError(f"{where} has no machine fingerprint or measurement run (made by an older version): "
                            "its pieces cannot be checked against each other; measure it again")
        best = header.get("probe_best_ms")
        return cls(Fingerprint.from_json(header["fingerprint"], where), header["run"],
                   float(best) if best not in (None, "", "none") else None)

    def header(self) -> dict[str, str]:
        return {"fingerprint": self.fingerprint.to_json(), "run": self.id,
                "probe_best_ms": "none" if self.probe_best_ms is None else f"{self.probe_best_ms:.6g}"}

    def check(self, what: str, other: "Run", other_what: str, advice: str) -> None:
        """Refuse (one line) to combine `what` (this run) with `other_what` (another)."""
        check_same_machine(what, self.fingerprint, other_what, other.fingerprint, advice)
        check_same_run(what, self.id, other_what, other.id, advice)

    def measure(self, profiler: Profiler, prepared: list) -> tuple[list[Timing], float | None]:
        """Time `prepared` between two probes; again while the probe is over the run's best."""
        check_same_machine("this run", self.fingerprint, f"this machine's {profiler.source}",
                           profiler.fingerprint(), "start a new file for this machine")
        spreads = []
        for _ in range(self.tries):
            before = profiler.probe_ms()
            results = profiler.time(prepared)
            if before is None:
                return results, None
            after = profiler.probe_ms()
            probe = max(before, after)  # the batch was as slow as the slower of its two probes
            self.probe_best_ms = min(self.probe_best_ms or math.inf, before, after)
            spread = probe / self.probe_best_ms - 1
            if spread <= self.tolerance:
                return results, probe
            spreads.append(spread)
        raise NoisyMachine(f"machine too noisy: probe spread {100 * min(spreads):.0f}% over the run's best "
                           f"{self.probe_best_ms:.3f} ms in {self.tries} tries (tolerance "
                           f"{100 * self.tolerance:.0f}%); what was measured is saved, run the same command "
                           "again when the machine is quiet")


def _keep_faster(old: dict | None, new: dict) -> dict:
    """Of two passes of one run, keep the faster: load from others only adds time."""
    if old is None or new["ms"] <= old["ms"]:
        return new
    return old


# Lookup tables ----------------------------------------------------------------------------------


def table_header(space: SearchSpace, resolution: int, profiler: Profiler, run: Run) -> dict[str, str]:
    return {
        "format": FORMAT,
        **profiler.header(),
        **run.header(),
        "space": space_fingerprint(space, resolution),
        "resolution": str(resolution),
        "skeleton": space.skeleton.name,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "space_json": json.dumps(space.to_dict(), default=str),
    }


def build_table(space: SearchSpace, resolution: int, profiler: Profiler, path: str | Path,
                progress: Progress | None = None, refine: bool = False,
                tolerance: float = PROBE_TOLERANCE) -> LookupTable:
    """Profile every layer `space` can produce at `resolution`; resumes an existing `path` in its own run.

    `refine`: profile every layer again, in the table's run, and keep per layer the faster of the two.
    A table from another machine or setup is refused, never merged.
    """
    path = Path(path)
    layers = space.possible_layers(resolution)
    spec = dataclasses.replace(space.skeleton, resolution=resolution)
    if path.exists():
        table = LookupTable.load(path)
        table.check_space(space, resolution)
        run = Run.from_header(table.header, f"lookup table '{path}'")
        check_same_machine(f"lookup table '{path}'", run.fingerprint, f"this machine's {profiler.source}",
                           profiler.fingerprint(), "give another output file to build a table here")
    else:
        run = Run.start(profiler)
        table = LookupTable(table_header(space, resolution, profiler, run), {}, path)
    run.tolerance = tolerance
    wanted = {layer.key for layer in layers}
    table.entries = {k: v for k, v in table.entries.items() if k in wanted}
    missing = [layer for layer in layers if refine or layer.key not in table.entries]
    if missing and table.header.pop("calibration", None):
        table.header.pop("calibrated_on", None)
        if progress:
            progress("the table's entries change: its calibration is removed, run 'nas latency calibrate' again")
    if progress:
        progress(f"{len(layers)} layer shapes in the space at {resolution}x{resolution}; "
                 f"{len(table.entries)} already in '{path}', {len(missing)} to profile on {profiler.source} "
                 f"in run {run.id}" + (" (refining: the faster of two passes of this run is kept)" if refine else ""))
    eta = _Eta(len(missing), progress, "profiled layers")
    for start in range(0, len(missing), profiler.batch_layers):
        batch = missing[start:start + profiler.batch_layers]
        timings, probe = run.measure(profiler, profiler.prepare_layers(batch, spec))
        for layer, timing in zip(batch, timings):
            new = {"ms": timing.ms, "min_ms": timing.min_ms, "median_ms": timing.median_ms,
                   "max_ms": timing.max_ms, "repeats": timing.repeats, "probe_ms": probe or 0.0}
            table.entries[layer.key] = _keep_faster(table.entries.get(layer.key), new)
        table.header.update(run.header())
        table.save(path)  # after every batch: an interrupted build keeps what it measured
        eta.step(len(batch))
    table.entries = {layer.key: table.entries[layer.key] for layer in layers}
    table.header["layers"] = str(len(layers))
    table.save(path)
    return table


# Whole-model measurements (calibration, held-out) ------------------------------------------------

RECORDS_FORMAT = "edgetpu-nas latency measurements v2"
RECORD_FIELDS = ("model", "decisions", "ms", "min_ms", "median_ms", "max_ms", "repeats", "probe_ms")
_FLOAT_FIELDS = RECORD_FIELDS[2:]


def sample_architectures(space: SearchSpace, count: int, seed: int) -> list[list[int]]:
    """The same seed gives the same sequence: a larger count extends a smaller one."""
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(count)]


def encode_decisions(decisions: Sequence[int]) -> str:
    return "-".join(map(str, decisions))


def read_records(path: Path) -> tuple[Run | None, list[dict]]:
    """(the run the file was measured in, its rows); (None, []) for no file."""
    if not path.exists():
        return None, []
    try:
        text = path.read_text()
        header = {}
        for line in text.splitlines():
            if line.startswith("#"):
                name, _, value = line[1:].partition(":")
                header[name.strip()] = value.strip()
        body = [line for line in text.splitlines() if not line.startswith("#")]
        rows = [{**r, **{k: float(r[k]) for k in _FLOAT_FIELDS}} for r in csv.DictReader(body)]
    except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError):
        raise UserError(f"measurements '{path}' are not readable; delete the file to measure again") from None
    if header.get("format") != RECORDS_FORMAT:
        raise UserError(f"measurements '{path}' have no machine fingerprint (made by an older version): they cannot "
                        "be checked against a table; delete the file to measure again")
    return Run.from_header(header, f"measurements '{path}'"), rows


def write_records(path: Path, run: Run, rows: Sequence[dict], extra: Sequence[str] = ()) -> None:
    out = io.StringIO()
    out.write(f"# format: {RECORDS_FORMAT}\n")
    for name, value in run.header().items():
        out.write(f"# {name}: {value}\n")
    writer = csv.DictWriter(out, [*RECORD_FIELDS, *extra], lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, out.getvalue())


def measure_models(wanted: dict[str, tuple[str, ModelSpec]], profiler: Profiler, path: Path, run: Run,
                   progress: Progress | None = None, per_batch: int = 2, refine: bool = False) -> dict[str, dict]:
    """Measure whole models end to end in `run`, saved to `path` after every batch.

    `wanted`: name -> (what it is: encoded decisions or a registered name, its spec). Rows already in
    `path` are kept; the file must belong to `run` (same machine, same run id). `refine`: measure every
    model again and keep, per model, the faster of the two passes of the run.
    """
    old_run, old_rows = read_records(path)
    if old_run is not None:
        old_run.check(f"measurements '{path}'", run, "the lookup table",
                      "delete the measurements (or give --measurements a new file) to measure again in the table's run")
        run.probe_best_ms = min(x for x in (run.probe_best_ms, old_run.probe_best_ms, math.inf) if x is not None)
    rows = {r["model"]: r for r in old_rows}
    for name, row in rows.items():
        if name in wanted and row["decisions"] != wanted[name][0]:
            raise UserError(f"'{path}' holds measurements of other architectures (another space or seed); "
                            "delete it or give the seed it was measured with")
    todo = [name for name in wanted if refine or name not in rows]
    if progress:
        progress(f"{len(wanted)} models: {len(wanted) - len(todo)} already measured in '{path}', {len(todo)} to "
                 f"measure on {profiler.source} in run {run.id}" + (" (refining)" if refine else ""))
    eta = _Eta(len(todo), progress, "measured models")
    for start in range(0, len(todo), per_batch):
        batch = todo[start:start + per_batch]
        timings, probe = run.measure(profiler, profiler.prepare_models([wanted[name][1] for name in batch]))
        for name, timing in zip(batch, timings):
            new = {"model": name, "decisions": wanted[name][0], "ms": timing.ms, "min_ms": timing.min_ms,
                   "median_ms": timing.median_ms, "max_ms": timing.max_ms, "repeats": timing.repeats,
                   "probe_ms": probe or 0.0}
            rows[name] = _keep_faster(rows.get(name), new)
        write_records(path, run, list(rows.values()))
        eta.step(len(batch))
    return {name: rows[name] for name in wanted}


def measure_architectures(space: SearchSpace, resolution: int, count: int, seed: int, profiler: Profiler,
                          path: Path, run: Run, progress: Progress | None = None, per_batch: int = 2,
                          refine: bool = False) -> list[dict]:
    """`count` random architectures at `resolution` (named by their index in the seed's sequence)."""
    sized = dataclasses.replace(space, skeleton=dataclasses.replace(space.skeleton, resolution=resolution))
    wanted = {str(i): (encode_decisions(d), sized.to_spec(d)) for i, d in enumerate(sample_architectures(space, count, seed))}
    return list(measure_models(wanted, profiler, path, run, progress, per_batch, refine).values())


def split_indices(count: int, train_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = list(range(count))
    random.Random(seed + 1).shuffle(order)
    n_train = max(1, min(count - 1, math.ceil(count * train_fraction)))
    return sorted(order[:n_train]), sorted(order[n_train:])
