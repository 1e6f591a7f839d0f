"""The built-in latency sources, each registered where it is defined, and `make_latency_model`.

`sim` (the Edge TPU cost model) and `lut:PATH` (a lookup table, calibrated or not) predict without
TensorFlow; `tflite-cpu[:float|int8]` and `edgetpu` build, convert and time each spec, importing
TensorFlow only when they measure. `auto` is `edgetpu` when an Edge TPU is usable here (the
`edgetpu_compiler` is on PATH and the runtime's delegate loads, which it does only with a device
attached), else `sim`.
"""

from __future__ import annotations

from latency.base import LATENCY_SOURCES, LatencyModel
from latency.edgetpu_model import EdgeTpuCostModel
from search_space.errors import UserError
from search_space.spec import ModelSpec


def make_latency_model(source: str) -> LatencyModel:
    """The latency model for a source string: `sim`, `lut:PATH`, `tflite-cpu[:int8|float]`, `edgetpu`, `auto`
    (or a prefix registered with `register_source`); an unknown or malformed one is a `UserError`."""
    prefix, _, argument = source.partition(":")
    return LATENCY_SOURCES.get(prefix)(argument)


def _no_argument(prefix: str, argument: str) -> None:
    if argument:
        raise UserError(f"latency source '{prefix}' takes no argument, got '{prefix}:{argument}'")


@LATENCY_SOURCES.register("sim")
def _sim(argument: str) -> EdgeTpuCostModel:
    _no_argument("sim", argument)
    return EdgeTpuCostModel()


@LATENCY_SOURCES.register("lut")
def _lut(argument: str):
    from latency.lookup_table import LookupTable, LookupTableModel

    if not argument:
        raise UserError("latency source 'lut' needs a table file: lut:PATH (build one with 'nas latency build-lut')")
    return LookupTableModel(LookupTable.load(argument))


class MeasuredLatency:
    """`tflite-cpu[:int8|float]` and `edgetpu`: build, convert and time every spec (seconds each)."""

    def __init__(self, source: str):
        from latency.profiling import make_profiler

        self.name = source
        self.profiler = make_profiler(source)

    def predict_ms(self, spec: ModelSpec) -> float:
        return self.profiler.models([spec])[0].ms


@LATENCY_SOURCES.register("tflite-cpu")
def _tflite_cpu(argument: str) -> MeasuredLatency:
    if argument not in ("", "int8", "float"):
        raise UserError(f"latency source 'tflite-cpu' takes int8 or float, got 'tflite-cpu:{argument}'")
    return MeasuredLatency("tflite-cpu" + (f":{argument}" if argument else ""))


@LATENCY_SOURCES.register("edgetpu")
def _edgetpu(argument: str) -> MeasuredLatency:
    _no_argument("edgetpu", argument)
    return MeasuredLatency("edgetpu")


def choose_auto() -> tuple[str, str]:
    """(the source `auto` stands for here, why): `edgetpu` when the compiler is installed and the Edge TPU
    delegate loads (it needs an attached device), else `sim`."""
    import ctypes

    from latency.edgetpu_device import RUNTIME, compiler_path, load_edgetpu_delegate

    try:
        compiler_path()
        try:  # loading the library alone first: a failed delegate load prints an interpreter-shutdown error
            ctypes.CDLL(RUNTIME)
        except OSError:
            raise UserError(f"the Edge TPU runtime {RUNTIME} is not installed") from None
        load_edgetpu_delegate()  # the library loads; the delegate needs an attached device
    except UserError as exc:
        return "sim", f"no usable Edge TPU ({exc})"
    return "edgetpu", "an Edge TPU is attached and the edgetpu_compiler is installed"


@LATENCY_SOURCES.register("auto")
def _auto(argument: str) -> LatencyModel:
    _no_argument("auto", argument)
    return make_latency_model(choose_auto()[0])
