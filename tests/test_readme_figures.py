"""Every measured figure in the README is backed by a current results file.

The convention (README authors: follow it; the failure message says what is missing):

* A *block* is a paragraph, a list item (with its continuation lines), or a table row. Fenced code
  blocks are not checked.
* A *figure* is
  - a number followed by a unit: ms, µs, s, min, h, hours, days, bytes, KB, MB, GB, images/s,
    architectures/s, trials/min, % or x (as in 1.5x, written without a space: "3 x 6" is a product).
    The unit may be joined by a hyphen ("15-minute") or followed by a slash ("200 MB/s", "12 ms/trial");
  - both ends of a range with a unit ("157-170 s", "796–862 MB", "18-19%": 157, 170, 796, 862, 18, 19);
  - any number in a table column whose header names a unit in parentheses, e.g. `wall (s)`;
  - in a block that names a results file (below), any number with a fractional part, with or without
    a unit: rewards (0.858), ratios (3.28), both ends of ranges (2.64-3.17), correlations, accuracies.
    Blocks that name no results file are not searched for unitless decimals: they hold configuration,
    published, analytic or arithmetic numbers (learning rates, scaling coefficients, MAC counts,
    versions), and a measured decimal must not be written in one.
  A number is read as a whole token, with any sign ("-17%" is the figure 17%). Not figures: a number
  that is part of a name (x0.25, top-1, B4–B7, v1/v2: a letter, `.` or `,` directly before it, or a
  letter and a hyphen), a fraction's denominator (1/40), a version with more than one dot (2.21.0).
* Inline code spans (`...`) are for configuration, constants, commands and code: inside them only
  numbers with a unit are figures (so a measurement cannot hide in backticks), and a code span
  holding a number alone is read as plain text ("`15`-minute" is the figure 15-minute). Config keys
  and options (`proxy.width: 0.25`, `--trials 40`) are not figures.
* Every block with a figure must name at least one results file, `benchmarks/results/NAME.md` (or
  `NAME.md` for a file of that folder); a table row may instead rely on the files named in the
  paragraph just above its table. Every file named must exist, and each figure's number must appear
  in one of the named files verbatim (as a whole number token: `14.7` does not match `14.69`, and
  `0.86` does not match `0.858`; write the file's digits). A configuration or published number in
  such a block passes when the file holds it too (e.g. the published 5.1 ms in bench_edgetpu_model.md).
* Figures that are not measurements (published numbers, goals and thresholds, arithmetic estimates,
  assumptions) and that their block's results file does not hold are listed in NOT_MEASURED below
  with a reason, by a phrase of the block they are in and the figure as written, as the failure
  message shows it ("0.858", "15-minute", "19.7%"; a range's first number with the range:
  "157-170 s"). An entry that matches nothing any more fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"

UNIT = (r"(?:ms|µs|us|s|sec|seconds?|min|minutes?|h|hours?|days?|KB|MB|GB|KiB|MiB|GiB|"
        r"bytes|images/s|architectures/s|trials/min|%|x)")
NUMBER = r"\d[\d,]*(?:\.\d+)?"
NUMBER_TOKEN = re.compile(rf"(?<![\w.,])({NUMBER})(?![.,]?\d)")
# What may follow a number to make it a figure: an optional space or hyphen ("15-minute"), then the unit,
# not followed by a letter or digit: "200 MB/s", "12 ms/trial" and "5 minutes" are figures, "3x3" is not.
UNIT_AFTER = re.compile(rf"(?:\s|-(?=[A-Za-zµ]))?({UNIT})(?![\w])")
# A range's first number takes the unit after its second one: "157-170 s", "796–862 MB".
RANGE_AFTER = re.compile(rf"\s?[-–]\s?{NUMBER}(?:\s|-(?=[A-Za-zµ]))?({UNIT})(?![\w])")
RESULT_FILE = re.compile(r"(?:benchmarks/results/)?\b(bench_[\w-]+\.md)\b")
CODE_SPAN = re.compile(r"`[^`]*`")
HEADER_UNIT = re.compile(rf"\(\s*{UNIT}\s*\)\s*$")

# (a phrase of the block, the figure as written) -> why it is not a measurement needing a results file.
NOT_MEASURED = {
    ("What it costs (", "9 minutes"): "arithmetic: 6.6e16 FLOP at an assumed 125 TFLOP/s",
    ("What it costs (", "150 images/s"): "an assumed JPEG decode rate for the estimate, said so in the text",
    ("What it costs (", "85 minutes"): "arithmetic from the assumed decode rate",
    ("What it costs (", "4.5 days"): "published by MNAS (Tan et al., 2019)",
    ("What it costs (", "7.5 GB"): "arithmetic: 50,000 images of 150 KB",
    ("Streaming ImageNet.", "150 KB"): "arithmetic: 224 x 224 x 3 bytes",
    ("What it costs (", "1,200 images/s"): "arithmetic: 8 cores at the assumed rate",
    ("parameter cache sharing", "9 MB"): "the Edge TPU's on-chip memory, a documented constant of the cost model",
    ("reports error, share within", "10%"): "a threshold the command reports against, not a result",
    ("repeats push phi 2 to", "19.7%"): "an analytic MACs count (count_macs), not a measurement",
    ("(TuNAS, ", "0.1"):
        "the absolute reward's default beta, a config value (bench_edgetpu_model.md's 0.1 is another number)",
    ("the same command CI runs", "15-minute"):
        "the time target the default test run is held to (a limit, not a measured time)",
    ("meets both goals set for a proxy here", "0.6"): "the goal for Kendall tau, not a result",
    ("where the reference reports", "0.1"): "published: the reference's int8 accuracy drops (tensorflow/tpu)",
    ("where the reference reports", "0.4"): "published: the reference's int8 accuracy drops (tensorflow/tpu)",
}


def blocks(text: str):
    """(first line number, kind, text, table header or None, text of the paragraph above a table)."""
    lines = text.splitlines()
    out, current, start, fenced, last_paragraph, header = [], [], 0, False, "", None

    def flush():
        nonlocal current, last_paragraph
        if current:
            joined = "\n".join(current)
            out.append((start, "block", joined, None, ""))
            last_paragraph = joined
        current = []

    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            fenced = not fenced
            continue
        if fenced:
            continue
        if stripped.startswith("|"):
            flush()
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if header is None:
                header = cells
            elif not all(set(c) <= set("-: ") for c in cells):
                out.append((number, "row", stripped, header, last_paragraph))
            continue
        header = None
        if not stripped or stripped.startswith("#") or stripped.startswith("<!--"):
            flush()
            continue
        if re.match(r"^\s*(?:[-*]|\d+\.)\s", line):  # a list item starts a block of its own
            flush()
        if not current:
            start = number
        current.append(line)
    flush()
    return out


def scan(text: str, decimals: bool) -> list[str]:
    """The figures of a text, as written: numbers with a unit (also in code spans), and, if `decimals`,
    numbers with a fractional part outside code spans."""
    # A code span holding only a number is read as prose: "`15`-minute" is the figure "15-minute".
    text = CODE_SPAN.sub(lambda m: m.group(0)[1:-1] if re.fullmatch(NUMBER, m.group(0)[1:-1]) else m.group(0),
                         text)
    code = [m.span() for m in CODE_SPAN.finditer(text)]
    found = []
    for m in NUMBER_TOKEN.finditer(text):
        before, rest = text[:m.start()], text[m.end():]
        if before.endswith("/") or re.search(r"[^\W\d][-–]$", before):
            continue  # a fraction's denominator (1/40), part of a name (top-1, phi-2)
        unit = UNIT_AFTER.match(rest) or RANGE_AFTER.match(rest)
        if unit and unit.group(1) == "x" and rest[unit.start(1) - 1:unit.start(1)].isspace():
            unit = None  # "x" only as in 1.5x: "3 x 6" is a product
        if unit:
            found.append(m.group(1) + rest[:unit.end()])
        elif decimals and "." in m.group(1) and not any(a <= m.start() < b for a, b in code):
            found.append(m.group(1))
    return found


def figures(kind: str, text: str, header, decimals: bool = True):
    if kind == "row":
        cells = [c.strip() for c in text.strip().strip("|").split("|")]
        found = []
        for title, cell in zip(header, cells):
            if HEADER_UNIT.search(title) and re.fullmatch(NUMBER, cell):
                found.append(cell)
            else:
                found += scan(cell, decimals)
        return found
    return scan(text, decimals)


def number_of(figure: str) -> str:
    return re.match(NUMBER, figure).group(0)


def contains_number(text: str, number: str) -> bool:
    return re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d]|[.,]\d)", text) is not None


def problems(readme: str, used: set | None = None, checked: list | None = None) -> list[str]:
    """What is wrong with the README's figures; `used` collects the NOT_MEASURED entries that matched,
    `checked` the figures looked up in a results file."""
    found = []
    for line, kind, text, header, above in blocks(readme):
        names = RESULT_FILE.findall(CODE_SPAN.sub(lambda m: m.group(0).strip("`"), text))
        if kind == "row" and not names:
            names = RESULT_FILE.findall(above.replace("`", ""))
        wanted = []
        for f in figures(kind, text, header, decimals=bool(names)):
            allowed = [(phrase, figure) for phrase, figure in NOT_MEASURED
                       if phrase in (text + "\n" + above if kind == "row" else text) and f == figure]
            if used is not None:
                used.update(allowed)
            if not allowed:
                wanted.append(f)
        if not wanted:
            continue
        where = f"README.md line {line} ({text.strip()[:70]!r}...)"
        if not names:
            found.append(f"{where}: figure(s) {', '.join(repr(f) for f in wanted)} name no results file "
                         "(benchmarks/results/NAME.md) in the same paragraph, list item or table")
            continue
        texts = {}
        for name in dict.fromkeys(names):
            path = RESULTS / name
            if not path.is_file():
                found.append(f"{where}: names benchmarks/results/{name}, which does not exist")
            else:
                texts[name] = path.read_text()
        if not texts:
            continue
        for figure in wanted:
            if checked is not None:
                checked.append(figure)
            if not any(contains_number(t, number_of(figure)) for t in texts.values()):
                found.append(f"{where}: figure {figure!r} is not in {', '.join('benchmarks/results/' + n for n in texts)}")
    return found


def test_every_readme_figure_is_in_a_named_results_file():
    used, checked = set(), []
    found = problems(README.read_text(), used, checked)
    assert not found, "\n" + "\n".join(found)
    # A change to the parsing that stopped finding figures would pass the check above vacuously: the
    # README had 229 (2026-12-03).
    assert len(checked) >= 200, f"only {len(checked)} figures found in README.md: is the parsing broken?"
    stale = set(NOT_MEASURED) - used
    assert not stale, f"NOT_MEASURED entries that match no figure of the README any more: {sorted(stale)}"


def test_the_check_catches_unbacked_missing_and_wrong_figures(tmp_path):
    name = next(iter(sorted(RESULTS.glob("*.md")))).name
    assert problems("Builds take 12.5 s on two cores.\n") == [
        "README.md line 1 ('Builds take 12.5 s on two cores.'...): figure(s) '12.5 s' name no results file "
        "(benchmarks/results/NAME.md) in the same paragraph, list item or table"]
    assert "does not exist" in problems("It took 3 s (`benchmarks/results/bench_nothing_here.md`).\n")[0]
    wrong = problems(f"It took 987654.321 ms (`benchmarks/results/{name}`).\n")
    assert len(wrong) == 1 and "'987654.321 ms' is not in" in wrong[0]
    # Numbers with a unit in code spans are figures, and a code span holding a number alone is prose;
    # configuration in code spans is not a figure.
    assert "'12.5 s' name no results file" in problems("A constant `12.5 s` in a code span.\n")[0]
    assert "'15-minute' name no results file" in problems("Kept within a `15`-minute budget.\n")[0]
    config = f"Set `proxy.width: 0.987654` and `--trials 987654` (`benchmarks/results/{name}`).\n"
    assert problems(config) == []
    # Unitless decimals are figures where the block names a results file (only there).
    assert problems("No results file named: the decimal 987654.321 is not a figure.\n") == []
    # A unitless decimal, both ends of a range, a unit followed by a slash, a hyphenated unit, a signed
    # figure; not a number that is part of a name (top-1).
    text = (f"Reward 987654.321, 987654-987655 s, 987654 MB/s, a 987656-minute run, -987657% and "
            f"top-1 (`benchmarks/results/{name}`).\n")
    wanted = ["987654.321", "987654-987655 s", "987655 s", "987654 MB", "987656-minute", "987657%"]
    flagged = [p.split(": figure ")[1].split(" is not in")[0] for p in problems(text)]
    assert flagged == [repr(w) for w in wanted]
    # A decimal in a table row, checked against the file named in the paragraph above the table.
    rows = (f"Rewards (`benchmarks/results/{name}`):\n\n| seed | Q4 / Q1 |\n|---|---|\n| 0 | 987654.321 |\n")
    found = problems(rows)
    assert len(found) == 1 and "line 5" in found[0] and "'987654.321' is not in" in found[0]
    table = ("Throughput (`benchmarks/results/bench_nothing_here.md`):\n\n| setting | wall (s) |\n|---|---|\n"
             "| local | 98.6 |\n")
    assert any("line 5" in p and "does not exist" in p for p in problems(table))
    assert problems("| setting | wall (s) |\n|---|---|\n| local | 98.6 |\n")[0].startswith("README.md line 3")
