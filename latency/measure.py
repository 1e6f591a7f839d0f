"""Timing TFLite models with the LiteRT interpreter on this CPU, guarded against a noisy machine.

Guards: one interpreter thread (`threads`, default 1: multi-threaded timings on a shared machine
measure the neighbours), pinned to one core where the OS allows (`pinned`), and a bare `invoke` on
inputs set once, so only the model's own work is timed. Layers for lookup tables and whole models
are timed by the same `time_warm`: in a few rounds, each model gets its warm-up invokes right before
its own block of timed invokes (a model runs warm, as it does in an inference loop; a layer timed
straight after 39 others would run with cold caches that no layer inside a model sees), and the
rounds spread each model's sample over time. Every timing keeps min / median / max. Noise on a shared
machine only ever *adds* time, so the minimum is the most repeatable estimate of a model's own cost:
`Timing.ms` is that minimum; the median and max are reported so the noise is visible. Noise that lasts
a whole window is the probe's job (`latency.profiling`).

TensorFlow is imported only to build and convert models (`spec_to_tflite`, `keras_file_to_tflite`).
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from search_space.errors import UserError
from search_space.spec import ModelSpec

WARMUP = 5
REPEATS = 30
ROUNDS = 3


@dataclass(frozen=True)
class Timing:
    min_ms: float
    median_ms: float
    max_ms: float
    repeats: int
    threads: int = 1

    @property
    def ms(self) -> float:
        """The estimate used for tables and calibration (see the module docstring: the minimum)."""
        return self.min_ms

    def describe(self) -> str:
        return (f"{self.min_ms:.3f} / {self.median_ms:.3f} / {self.max_ms:.3f} ms (min / median / max of "
                f"{self.repeats}, {self.threads} thread{'s' if self.threads != 1 else ''})")


@contextlib.contextmanager
def pinned(threads: int = 1):
    """Run the block on one core (the last this process may use) when timing one thread, where the OS
    allows; yields the core, or None. LiteRT runs a one-thread invoke on the calling thread."""
    if threads != 1 or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    try:
        allowed = os.sched_getaffinity(0)
        core = max(allowed)
        os.sched_setaffinity(0, {core})
    except OSError:
        yield None
        return
    try:
        yield core
    finally:
        os.sched_setaffinity(0, allowed)


def time_warm(invokes: Sequence[Callable[[], object]], warmup: int = WARMUP, repeats: int = REPEATS,
              threads: int = 1, rounds: int = ROUNDS) -> list[Timing]:
    """Time each callable `repeats` times in `rounds` rounds; in every round, each gets `warmup` untimed
    calls right before its block of timed calls."""
    if repeats < 1 or warmup < 0:
        raise UserError(f"repeats must be at least 1 and warm-up at least 0 (got {repeats}, {warmup})")
    rounds = max(1, min(rounds, repeats))
    samples: list[list[float]] = [[] for _ in invokes]
    clock = time.perf_counter_ns
    with pinned(threads):
        for r in range(rounds):
            block = math.ceil(repeats * (r + 1) / rounds) - math.ceil(repeats * r / rounds)
            for invoke, out in zip(invokes, samples):
                for _ in range(warmup):
                    invoke()
                for _ in range(block):
                    start = clock()
                    invoke()
                    out.append((clock() - start) / 1e6)
    return [Timing(min(s), statistics.median(s), max(s), repeats, threads) for s in samples]


def random_inputs(details: Sequence[dict], seed: int = 0) -> list[np.ndarray]:
    """Random tensors matching input details (uint8/int8 over their range, floats standard normal)."""
    rng = np.random.default_rng(seed)
    out = []
    for d in details:
        dtype = np.dtype(d["dtype"])
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            out.append(rng.integers(info.min, int(info.max) + 1, size=d["shape"], dtype=dtype))
        else:
            out.append(rng.standard_normal(d["shape"]).astype(dtype))
    return out


def interpreter_invoke(interp) -> Callable[[], object]:
    """A no-argument callable that runs one inference of a loaded interpreter on fixed random inputs."""
    for detail, value in zip(interp.get_input_details(), random_inputs(interp.get_input_details())):
        interp.set_tensor(detail["index"], value)
    return interp.invoke


def time_tflite(models: Sequence[bytes | str | os.PathLike], threads: int = 1, warmup: int = WARMUP,
                repeats: int = REPEATS, delegates: list | None = None) -> list[Timing]:
    """Time whole .tflite models (file paths or bytes) with `time_warm`."""
    from search_space.tflite import load_interpreter

    interps = [load_interpreter(m, num_threads=threads, delegates=delegates) for m in models]
    return time_warm([interpreter_invoke(i) for i in interps], warmup, repeats, threads)


# Building what is timed (TensorFlow from here on) ---------------------------------------------


def spec_to_tflite(spec: ModelSpec, quantize: bool = True, representative=None, seed: int = 0) -> bytes:
    """Build `spec` (batch 1) and convert it; int8 without `representative` calibrates on random inputs."""
    import keras

    from search_space.builder import build_model
    from search_space.tflite import convert, random_representative

    model = build_model(spec, seed=seed, batch_size=1)
    if quantize and representative is None:
        representative = random_representative(spec.resolution, count=2, seed=seed)
    try:
        return convert(model, quantize=quantize, representative=representative)
    finally:
        keras.backend.clear_session()


def keras_file_to_tflite(path: str | os.PathLike, quantize: bool = True, representative=None) -> bytes:
    """Load a saved Keras model (.keras / .h5), fix its batch size to 1 and convert it."""
    import keras

    from search_space.tflite import convert, random_representative

    path = Path(path)
    if not path.is_file():
        raise UserError(f"Keras model file '{path}' does not exist")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file; all mean the same to a user
        raise UserError(f"cannot load Keras model '{path}': {str(exc).splitlines()[0]}") from None
    shape = tuple(model.inputs[0].shape[1:])
    if None in shape:
        raise UserError(f"Keras model '{path}' has an input of unknown size {shape}; give it a fixed input shape")
    inputs = keras.Input(shape, batch_size=1)
    model = keras.Model(inputs, model(inputs))
    if quantize and representative is None:
        def representative():
            rng = np.random.default_rng(0)
            for _ in range(2):
                yield rng.standard_normal((1, *shape)).astype(np.float32)
    return convert(model, quantize=quantize, representative=representative)
