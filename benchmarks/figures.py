"""Every measured figure in the user-facing text (README.md, docs/) is read from a results record by key.

A figure is written with its key right after it, in an HTML comment (invisible when rendered):

    the default search took 556 s<!--fig bench_search_quality.md | section=Objective: config; variant=default;
    controller=mnas; seed=0 | wall s-->

* `FILE` is a results file of benchmarks/results/ (the markdown each benchmark writes).
* `ROW` picks one row of one table: `HEADER=VALUE` conditions separated by `;` (each cell equal to
  VALUE, ignoring backticks), or a plain text that the row's first cell equals (or, if no first cell
  equals it, starts with, in one row only). `section=HEADING` keeps the tables under that `##` heading.
* `COL` is the column's header (equal, or else the one header that starts with it).
* For a prose line of the results file (or a table's header line) instead of a table cell:
  `FILE | line=LABEL`: the one line that contains LABEL.

A JSON store beside a results file is a record too: `bench_NAME.json | FIELD=VALUE; ... | PATH` picks
the one stored measurement whose fields equal the values (a dict store's keys are its `key` field) and
reads the dotted PATH in it (`result.wall_s`, `result.quarters.3`); the figure matches when the stored
value rounded to the figure's decimals equals it, and the unit comes from the path's name (`_s`: s,
`_ms`: ms, `_mb`: MB) or none.

A whole table is keyed by `<!--fig-table FILE-->` on the line above it: its header must be the header
of a table of FILE, and each of its rows a row of that table, cell for cell (rows may be left out,
not changed).

The check (`problems`): the figure's numbers (digits as written, thousands separators ignored) must be
the cell's numbers or a run of consecutive ones ("5 of 5" in "5 of 5 (3.57-6.07)", the range
"3.57-6.07" too); in a prose line, each of the figure's numbers in order. A figure's unit must be the
one the cell, its column header or the line carries (`9.0 min` in a `wall (min)` column).

Which text is a figure needing a key (`candidates`): outside fenced code and HTML comments, a number
followed by a unit of time, size, rate, a per cent sign or an `x` ratio (`0.99x`), a count of
images / trials / seeds / architectures, an `N of M`, and, in a paragraph that already carries a key,
any number with a decimal point. A figure that is no measurement (a published number, a goal, a
configuration value, arithmetic) carries `<!--given: why-->` instead. Numbers in inline code spans are
configuration unless they carry a unit. Pages generated from code (they say `<!-- generated -->`) hold
no measurements and are not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?"
_NUM = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])|(?<![\w.])\d[\d,]*(?:\.\d+)?(?=x\b)")
UNITS = (r"ms|µs|us|s|sec|seconds?|min|minutes?|h|hours?|days?|KB|MB|GB|KiB|MiB|GiB|bytes|"
         r"images/s|architectures/s|trials/min|%|x|images|trials|seeds|architectures|points")
_UNIT = re.compile(rf"^(?:\s|-)?({UNITS})(?![\w/])")
MARKER = re.compile(r"<!--\s*(fig|given)\b(?!-table)(.*?)-->", re.S)
TABLE_MARKER = re.compile(r"^<!--\s*fig-table\s+(\S+)\s*-->\s*$")
_FIGURE_BEFORE = re.compile(
    rf"({NUMBER}(?:\s?(?:-|–|to|of)\s?{NUMBER})?(?:\s?(?:-(?=[A-Za-zµ]))?(?:{UNITS}))?)$")


@dataclass(frozen=True)
class Key:
    file: str
    row: str
    col: str


def numbers(text: str) -> list[str]:
    """The numbers of a text as written, thousands separators removed ("6,077,024" -> "6077024")."""
    return [m.group(0).replace(",", "") for m in _NUM.finditer(text.replace("`", ""))]


def unit_of(figure: str) -> str | None:
    rest = re.sub(rf"^.*?{NUMBER}(?:\s?(?:-|–|to|of)\s?{NUMBER})?", "", figure, count=1)
    m = _UNIT.match(rest)
    return m.group(1) if m else None


def parse_key(text: str) -> Key:
    parts = [p.strip() for p in text.split("|")]
    if len(parts) == 2 and parts[1].startswith("line="):
        return Key(parts[0], parts[1], "")
    if len(parts) < 3:
        raise ValueError(f"a key is 'FILE | ROW | COL' or 'FILE | line=LABEL', not {text.strip()!r}")
    raw = text.split("|")
    return Key(parts[0], "|".join(raw[1:-1]).strip(), parts[-1])  # a JSON store's keys may hold '|'



# ---- the results files as records -------------------------------------------------------------------

@dataclass
class Table:
    section: str
    header: list[str]
    rows: list[list[str]]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def read_results(text: str) -> tuple[list[Table], list[str]]:
    """The tables of a results file (with the `##` heading above each) and its other lines."""
    tables, prose, section, current = [], [], "", None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        if line.strip().startswith("|"):
            cells = _cells(line)
            if current is None:
                current = Table(section, cells, [])
                tables.append(current)
            elif not all(set(c) <= set("-: ") for c in cells):
                current.rows.append(cells)
            continue
        current = None
        if line.strip():
            prose.append(line)
    return tables, prose


def _plain(text: str) -> str:
    return text.replace("`", "").strip()


def _pick(names: list[str], wanted: str, what: str) -> int:
    exact = [i for i, n in enumerate(names) if _plain(n) == wanted]
    if len(exact) == 1:
        return exact[0]
    starts = [i for i, n in enumerate(names) if _plain(n).startswith(wanted)]
    if len(exact) > 1 or len(starts) != 1:
        raise LookupError(f"{what} {wanted!r} matches {len(exact) or len(starts)} (needs exactly one)")
    return starts[0]


def lookup(key: Key, results: Path = RESULTS) -> tuple[str, str]:
    """(the text at `key`, the text its unit may come from: the cell's column header, or the line)."""
    path = results / key.file
    if not path.is_file():
        raise LookupError(f"no results file benchmarks/results/{key.file}")
    if key.file.endswith(".json"):
        return lookup_json(key, path)
    tables, prose = read_results(path.read_text())
    if key.row.startswith("line="):
        label = key.row[5:].strip()
        found = [line for line in path.read_text().splitlines() if label in line]
        if len(found) != 1:
            raise LookupError(f"line {label!r} matches {len(found)} lines of {key.file} (needs exactly one)")
        return found[0], found[0]
    conditions = [c.strip() for c in key.row.split(";") if c.strip()]
    section = next((c.split("=", 1)[1].strip() for c in conditions if c.startswith("section=")), None)
    conditions = [c for c in conditions if not c.startswith("section=")]
    hits = []
    for table in tables:
        if section is not None and table.section != section:
            continue
        try:
            col = _pick(table.header, key.col, "column")
        except LookupError:
            continue
        for row in table.rows:
            if len(row) != len(table.header):
                continue
            if all("=" in c for c in conditions) and conditions:
                ok = True
                for c in conditions:
                    name, value = (s.strip() for s in c.split("=", 1))
                    try:
                        ok = ok and _plain(row[_pick(table.header, name, "column")]) == value
                    except LookupError:
                        ok = False
                if ok:
                    hits.append((row[col], table.header[col]))
            elif not any("=" in c for c in conditions):
                label = key.row.strip()
                if _plain(row[0]) == label:
                    hits.append((row[col], table.header[col], "exact"))
                elif _plain(row[0]).startswith(label):
                    hits.append((row[col], table.header[col], "prefix"))
    exact = [h for h in hits if len(h) == 2 or h[2] == "exact"]
    chosen = exact if exact else hits
    if len(chosen) != 1:
        raise LookupError(f"row {key.row!r}, column {key.col!r} matches {len(chosen)} cells of {key.file} "
                          "(needs exactly one)")
    return chosen[0][0], chosen[0][1]


def lookup_json(key: Key, path: Path) -> tuple[str, str]:
    """(the stored value as text, its path) of the one measurement of a JSON store that `key` picks."""
    import json

    data = json.loads(path.read_text())
    records = ([dict(v, key=k) for k, v in data.items() if isinstance(v, dict)] if isinstance(data, dict)
               else [r for r in data if isinstance(r, dict)])
    conditions = [c.split("=", 1) for c in key.row.split(";") if c.strip()]
    if any(len(c) != 2 for c in conditions):
        raise LookupError(f"a JSON row is FIELD=VALUE conditions joined by ';', not {key.row!r}")
    hits = [r for r in records if all(str(r.get(f.strip())) == v.strip() for f, v in conditions)]
    if len(hits) != 1:
        raise LookupError(f"row {key.row!r} matches {len(hits)} measurements of {key.file} (needs exactly one)")
    value = hits[0]
    for part in key.col.split("."):
        try:
            value = value[int(part)] if isinstance(value, list) else value[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise LookupError(f"{key.file}: the measurement has no {key.col!r}") from None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise LookupError(f"{key.file}: {key.col!r} is {value!r}, not a number")
    unit = {"_s": "s", "_ms": "ms", "_mb": "MB"}.get("_" + key.col.rsplit("_", 1)[-1], "") if "_" in key.col else ""
    return repr(value), unit


def _contiguous(part: list[str], whole: list[str]) -> bool:
    return any(whole[i:i + len(part)] == part for i in range(len(whole) - len(part) + 1))


def _in_order(part: list[str], whole: list[str]) -> bool:
    it = iter(whole)
    return all(any(p == w for w in it) for p in part)


def _unit_ok(unit: str | None, cell: str, context: str) -> bool:
    if unit is None:
        return True
    aliases = {"seconds": "s", "second": "s", "sec": "s", "minutes": "min", "minute": "min", "hours": "h",
               "hour": "h", "us": "µs"}
    unit = aliases.get(unit, unit)
    if unit in ("images", "trials", "seeds", "architectures", "points"):  # counts: "distinct archs" will do
        return any(re.search(rf"\b{unit[:4]}", text, re.I) for text in (cell, context))
    for text in (cell, context):
        text = re.sub(r"\s*/\s*", "/", text)  # "architectures / s"
        words = re.findall(r"µs|images/s|architectures/s|trials/min|%|[A-Za-z]+|(?<=\d)x\b", text)
        if any(aliases.get(w, w) == unit for w in words):
            return True
    return False


def check(figure: str, key: Key, results: Path = RESULTS) -> str | None:
    """None if `figure` is what the results file holds at `key`, else why not."""
    try:
        cell, context = lookup(key, results)
    except LookupError as e:
        return str(e)
    got, want = numbers(figure), numbers(cell)
    if not got:
        return f"{figure!r} holds no number"
    if key.file.endswith(".json"):
        decimals = len(got[0].split(".")[1]) if "." in got[0] else 0
        if len(got) != 1 or round(float(cell), decimals) != float(got[0]):
            return f"{figure!r} is not {key.file}'s {key.col} at {key.row!r} ({cell}) to its decimals"
        unit = unit_of(figure)
        if unit and {"seconds": "s", "sec": "s"}.get(unit, unit) != context:
            return f"{figure!r}: its unit is not {key.file}'s {key.col} ({context or 'none'})"
        return None
    fits = _in_order(got, want) if key.row.startswith("line=") else _contiguous(got, want)
    if not fits:
        return f"{figure!r} is not what {key.file} holds at {key.row!r} / {key.col!r}: {cell!r}"
    if not _unit_ok(unit_of(figure), cell, context):
        return f"{figure!r}: its unit is not the one of {key.file} at {key.row!r} / {key.col!r} ({context!r}: {cell!r})"
    return None


# ---- the text -----------------------------------------------------------------------------------------

def _scrub_fences(text: str) -> str:
    """The text with fenced code blocks blanked (line numbers kept)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
            out.append("")
        else:
            out.append("" if fenced else line)
    return "\n".join(out)


def keyed_tables(text: str) -> list[tuple[int, str, list[str]]]:
    """(line of the marker, FILE, the table's lines) for every `<!--fig-table FILE-->`."""
    lines, found = _scrub_fences(text).splitlines(), []
    for i, line in enumerate(lines):
        m = TABLE_MARKER.match(line.strip())
        if m:
            rows = []
            for nxt in lines[i + 1:]:
                if not nxt.strip().startswith("|"):
                    break
                rows.append(nxt)
            found.append((i + 1, m.group(1), rows))
    return found


def check_table(file: str, rows: list[str], results: Path = RESULTS) -> str | None:
    path = results / file
    if not path.is_file():
        return f"no results file benchmarks/results/{file}"
    if len(rows) < 3:
        return "a fig-table marker with no table right below it"
    header, body = _cells(rows[0]), [_cells(r) for r in rows[2:]]
    tables = [t for t in read_results(path.read_text())[0] if t.header == header]
    if not tables:
        return f"no table of {file} has the header {header}"
    for row in body:
        if not any(row in t.rows for t in tables):
            return f"row {row} is not a row of {file}'s table with that header"
    return None


def _scrub_keyed_tables(text: str) -> str:
    lines = text.splitlines()
    for start, _, rows in keyed_tables(text):
        for i in range(start, start + len(rows)):
            lines[i] = ""
    return "\n".join(lines)


def keyed(text: str) -> list[tuple[int, str, str, str]]:
    """(line, kind 'fig' or 'given', the figure written just before the marker, the marker's body)."""
    text = _scrub_fences(text)
    found = []
    for m in MARKER.finditer(text):
        before = text[:m.start()].replace("`", "")
        f = _FIGURE_BEFORE.search(before)
        found.append((text.count("\n", 0, m.start()) + 1, m.group(1), f.group(1) if f else "", m.group(2)))
    return found


# Counts that are measurements here ("359 images", "51 architectures"); "64 trials" is mostly a setting.
CANDIDATE_UNITS = UNITS.replace("|x|", "|").replace("|trials|", "|").replace("|points", "")
_CANDIDATE = re.compile(
    rf"(?<![\w.,/-])(\d[\d,]*(?:\.\d+)?)(?:\s?(?:-|–|to)\s?\d[\d,]*(?:\.\d+)?)?"
    rf"(?:\s?of\s\d+|(?:\s|-)?(?:{CANDIDATE_UNITS})(?![\w/])|x(?![\w])|(?=x\b))?")


def candidates(text: str) -> list[tuple[int, str]]:
    """(line, figure) for every figure-like text without a key or a `given` note right after it."""
    text = _scrub_keyed_tables(_scrub_fences(text))
    found = []
    # blocks: paragraphs, list items, table rows (a key makes the decimals of its own block figures)
    paragraphs = re.split(r"\n\s*\n|\n(?=\s*(?:[-*]|\d+\.)\s|\s*\|)", text)
    offset = 0
    for para in paragraphs:
        start = text.index(para, offset) if para else offset
        offset = start + len(para)
        has_key = "<!--fig" in para
        bare = MARKER.sub(lambda m: "\0" * len(m.group(0)), para)  # markers kept as placeholders
        bare = re.sub(r"<!--.*?-->", lambda m: " " * len(m.group(0)), bare, flags=re.S)
        code = [m.span() for m in re.finditer(r"`[^`\n]*`", bare)]
        for m in _CANDIDATE.finditer(bare):
            whole = m.group(0)
            unit = unit_of(whole)
            decimal = "." in m.group(1)
            count = " of " in whole
            in_code = any(a <= m.start() < b for a, b in code)
            if in_code and not unit:
                continue
            if not (unit or count or (decimal and has_key)):
                continue
            after = bare[m.end():]
            if after.startswith("\0") or after.lstrip("`").startswith("\0"):
                continue
            # part of a name or an option (top-1, B4, x0.25, v2, 3x3, 1x1)
            if re.match(r"[A-Za-z]", bare[m.start() - 1:m.start()] or " "):
                continue
            if unit == "x" and re.match(r"x\d", bare[m.end() - 1:m.end() + 1]):
                continue
            found.append((text.count("\n", 0, start + m.start()) + 1, whole.strip()))
    return found


def user_texts(root: Path = ROOT) -> dict[str, str]:
    """README.md and every docs page not generated from code."""
    texts = {"README.md": (root / "README.md").read_text()}
    for path in sorted((root / "docs").rglob("*.md")):
        text = path.read_text()
        if not text.startswith("<!-- generated"):
            texts[path.relative_to(root).as_posix()] = text
    return texts


def problems(texts: dict[str, str], results: Path = RESULTS) -> list[str]:
    """Everything wrong with the figures of `texts` ({name: markdown})."""
    found = []
    for name, text in texts.items():
        for line, kind, figure, body in keyed(text):
            if kind == "given":
                if not body.strip(" :"):
                    found.append(f"{name}:{line}: a 'given' note says why the figure is no measurement")
                continue
            if not figure:
                found.append(f"{name}:{line}: a key with no figure written right before it")
                continue
            try:
                key = parse_key(body)
            except ValueError as e:
                found.append(f"{name}:{line}: {e}")
                continue
            why = check(figure, key, results)
            if why:
                found.append(f"{name}:{line}: {why}")
        for line, file, rows in keyed_tables(text):
            why = check_table(file, rows, results)
            if why:
                found.append(f"{name}:{line}: {why}")
        for line, figure in candidates(text):
            found.append(f"{name}:{line}: figure {figure!r} has no key (<!--fig FILE | ROW | COL-->) and no "
                         "<!--given: why--> note")
    return found
