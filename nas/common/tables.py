"""Tables for people (aligned text) and for programs (CSV, JSON) from one list of row dicts."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable

FORMATS = ("table", "csv", "json")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,d}"
    return "" if value is None else str(value)


def format_rows(rows: Iterable[dict[str, Any]], fmt: str = "table") -> str:
    rows = list(rows)
    if not rows:
        return "" if fmt != "json" else "[]\n"
    columns = list(rows[0])
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r.get(c), (int, float)) for r in rows) for c in columns]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)]) + "\n"


def format_duration(seconds: float) -> str:
    """'4m05s' or '1h02m': the ETA and wall-time format of progress lines."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
