"""Per-layer latency lookup tables: the file, its checks, and prediction without TensorFlow.

A table is a CSV file any spreadsheet opens: `#` header lines name the format version, the source it
was profiled on, the device, the quantisation, library versions, the machine fingerprint and the
measurement run (`latency.fingerprint`) with the run's best probe time, the search space (a hash plus
the space itself as JSON) and resolution it covers, and the calibration once one is fitted (with the
run its measurements came from); then one row per layer shape (`Layer.key` fields) with min / median
/ max ms and the probe time of the batch it was measured in.

Prediction sums the entries of a spec's layers and, when the table is calibrated, applies the
fitted correction (`latency.calibration`). `SpaceTable` goes further for whole search spaces: the
layers of a stage depend only on that stage's decisions and the previous stage's width, so each
stage's contribution is precomputed once and a batch of decision vectors is predicted with a few
NumPy gathers (millions of architectures per second).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search_space.errors import UserError
from search_space.files import write_text
from search_space.space import DECISIONS, SearchSpace
from search_space.spec import Layer, ModelSpec

FORMAT = "edgetpu-nas latency lookup table v2"
OLD_FORMATS = ("edgetpu-nas latency lookup table v1",)
KEY_FIELDS = ("kind", "in_size", "in_ch", "expanded_ch", "out_ch", "kernel", "stride", "expand_ratio", "se_ch",
              "residual", "fused_stride_on")
VALUE_FIELDS = ("ms", "min_ms", "median_ms", "max_ms", "repeats", "probe_ms")
_INT_FIELDS = {"in_size", "in_ch", "expanded_ch", "out_ch", "kernel", "stride", "expand_ratio", "se_ch"}


def space_fingerprint(space: SearchSpace, resolution: int) -> str:
    """What a table covers: the space's choices and skeleton at one resolution (names excluded)."""
    data = space.to_dict()
    data["skeleton"] = {k: v for k, v in data["skeleton"].items() if k != "name"}
    data["skeleton"]["resolution"] = resolution
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def layer_from_key(key: tuple) -> Layer:
    return Layer(**dict(zip(KEY_FIELDS, key)))


def describe_layer(layer: Layer | tuple) -> str:
    if isinstance(layer, tuple):
        layer = layer_from_key(layer)
    text = (f"{layer.kind} {layer.in_size}x{layer.in_size}x{layer.in_ch} -> {layer.out_ch} "
            f"(k{layer.kernel} s{layer.stride} e{layer.expand_ratio}, expanded {layer.expanded_ch}")
    return text + (", residual)" if layer.residual else ")")


@dataclass
class LookupTable:
    header: dict[str, str]
    entries: dict[tuple, dict] = field(default_factory=dict)  # Layer.key -> VALUE_FIELDS
    path: Path | None = None

    # file ------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LookupTable":
        path = Path(path)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read lookup table '{path}': {getattr(exc, 'strerror', None) or exc}") from None
        header: dict[str, str] = {}
        lines = text.splitlines()
        body = [line for line in lines if not line.startswith("#")]
        for line in lines:
            if line.startswith("#"):
                name, _, value = line[1:].partition(":")
                header[name.strip()] = value.strip()
        if header.get("format") in OLD_FORMATS:
            # Refused, not loaded with a warning: a v1 table cannot say whether its layers and its
            # calibration come from one machine and one day, and mixed ones ranked worse than no
            # correction at all; rebuilding is one command.
            raise UserError(f"lookup table '{path}' has no machine fingerprint (format v1): where and when its "
                            "pieces were measured cannot be checked; rebuild it with 'nas latency build-lut'")
        if header.get("format") != FORMAT:
            raise UserError(f"'{path}' is not a latency lookup table of this version (expected a "
                            f"'# format: {FORMAT}' line); rebuild it with 'nas latency build-lut'")
        table = cls(header, {}, path)
        reader = csv.DictReader(body)
        missing = set(KEY_FIELDS + VALUE_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise UserError(f"lookup table '{path}' lacks column(s) {', '.join(sorted(missing))}")
        for n, row in enumerate(reader, start=2):
            try:
                key = tuple(int(row[k]) if k in _INT_FIELDS else (row[k] == "True" if k == "residual" else row[k])
                            for k in KEY_FIELDS)
                values = {k: float(row[k]) for k in VALUE_FIELDS}
            except (TypeError, ValueError):
                raise UserError(f"lookup table '{path}': data row {n - 1} is not valid; rebuild or fix it") from None
            table.entries[key] = values
        return table

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Written atomically (unique temp file, fsync, rename): an interrupted build never leaves half a table."""
        path = Path(path or self.path)
        out = io.StringIO()
        out.write(f"# format: {FORMAT}\n")
        for name, value in self.header.items():
            if name != "format":
                out.write(f"# {name}: {value}\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(KEY_FIELDS + VALUE_FIELDS)
        for key, values in self.entries.items():
            writer.writerow([*key, *(f"{values[k]:.6g}" for k in VALUE_FIELDS)])
        write_text(path, out.getvalue())
        self.path = path
        return path

    # checks ----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "lookup table"

    def check_space(self, space: SearchSpace, resolution: int) -> None:
        expected = space_fingerprint(space, resolution)
        if self.header.get("space") != expected:
            raise UserError(f"lookup table '{self.name}' was built for another search space or resolution "
                            f"(table {self.header.get('space')}, resolution {self.header.get('resolution')}; "
                            f"config {expected}, resolution {resolution}); rebuild it with 'nas latency build-lut'")

    def entry_ms(self, key: tuple) -> float:
        try:
            return self.entries[key]["ms"]
        except KeyError:
            raise UserError(f"lookup table '{self.name}' has no entry for layer {describe_layer(key)}; "
                            "build the table for this search space and resolution") from None

    # prediction ------------------------------------------------------------------------------

    @property
    def fingerprint(self):
        from latency.fingerprint import Fingerprint

        if "fingerprint" not in self.header:
            raise UserError(f"lookup table '{self.name}' has no machine fingerprint; rebuild it with 'nas latency build-lut'")
        return Fingerprint.from_json(self.header["fingerprint"], f"lookup table '{self.name}'")

    def describe_origin(self) -> str:
        """Which machine the table describes, for a user reading a prediction."""
        return (f"table measured on {self.fingerprint.describe()}, run {self.header.get('run')}"
                + (", calibrated" if self.header.get("calibration") else ", uncalibrated"))

    @property
    def correction(self):
        from latency.calibration import Correction
        from latency.fingerprint import check_same_run

        text = self.header.get("calibration")
        if not text:
            return None
        check_same_run(f"the calibration of lookup table '{self.name}'", self.header.get("calibrated_run", "none"),
                       "its layers", self.header.get("run", "none"),
                       "run 'nas latency calibrate' again (with a new --measurements file)")
        return Correction.from_json(text)

    def sum_ms(self, spec: ModelSpec) -> float:
        return sum(self.entry_ms(layer.key) for layer in spec.layers())


class LookupTableModel:
    """The `lut:PATH` source: table sum, corrected by the table's calibration when it has one."""

    def __init__(self, table: LookupTable):
        self.table = table
        self.correction = table.correction
        self.name = f"lut:{table.name}" + ("" if self.correction else " (uncalibrated)")
        self._ms = {key: v["ms"] for key, v in table.entries.items()}

    def predict_ms(self, spec: ModelSpec) -> float:
        from latency.calibration import spec_features

        if self.correction is None:
            return self.sum_ms(spec)
        return self.correction.apply(spec_features(spec, self._entry))

    def sum_ms(self, spec: ModelSpec) -> float:
        return sum(self._entry(layer.key) for layer in spec.layers())

    def _entry(self, key: tuple) -> float:
        value = self._ms.get(key)
        return self.table.entry_ms(key) if value is None else value


class SpaceTable:
    """Vectorised prediction for decision vectors of one search space (see the module docstring)."""

    def __init__(self, table: LookupTable, space: SearchSpace, resolution: int | None = None):
        from latency.calibration import FEATURES, layer_features

        resolution = resolution or space.skeleton.resolution
        table.check_space(space, resolution)
        self.space = dataclasses.replace(space, skeleton=dataclasses.replace(space.skeleton, resolution=resolution))
        self.correction = table.correction
        entry = table.entry_ms
        n = len(DECISIONS)
        mult = DECISIONS.index("filter_multiplier")
        cards = self.space.cardinalities
        self.stages = len(self.space.stages)
        self.stage_cards = [cards[s * n:(s + 1) * n] for s in range(self.stages)]
        self.prev_cards = [cards[(s - 1) * n + mult] if s else 1 for s in range(self.stages)]
        # features[s][prev, combo, f]: stage s's summed features (stem with stage 0, head with the last)
        self.features = []
        for s in range(self.stages):
            combos = list(itertools.product(*map(range, self.stage_cards[s])))
            values = np.zeros((self.prev_cards[s], len(combos), len(FEATURES)))
            for prev in range(self.prev_cards[s]):
                for c, combo in enumerate(combos):
                    decisions = [0] * len(cards)
                    decisions[s * n:(s + 1) * n] = combo
                    if s:
                        decisions[(s - 1) * n + mult] = prev
                    for layer in self.space.to_spec(decisions).layers():
                        if layer.stage == s or (layer.kind == "stem" and s == 0) or (
                                layer.kind == "head" and s == self.stages - 1):
                            values[prev, c] += layer_features(layer, entry(layer.key))
            self.features.append(values)
        self._strides = [np.cumprod([1, *self.stage_cards[s][::-1]])[-2::-1] for s in range(self.stages)]

    def features_of(self, decisions: np.ndarray) -> np.ndarray:
        decisions = np.asarray(decisions, dtype=np.int64)
        n = len(DECISIONS)
        mult = DECISIONS.index("filter_multiplier")
        total = np.zeros((decisions.shape[0], self.features[0].shape[-1]))
        for s in range(self.stages):
            combo = decisions[:, s * n:(s + 1) * n] @ self._strides[s]
            prev = decisions[:, (s - 1) * n + mult] if s else 0
            total += self.features[s][prev, combo]
        return total

    def predict_ms(self, decisions: np.ndarray) -> np.ndarray:
        """Latency of each row of `decisions` (shape [N, len(space.cardinalities)]), in ms."""
        features = self.features_of(decisions)
        return features[:, 0] if self.correction is None else self.correction.apply_many(features)
