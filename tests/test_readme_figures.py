"""Every measured figure in the README is backed by a current results file.

The convention (README authors: follow it; the failure message says what is missing):

* A *block* is a paragraph, a list item (with its continuation lines), or a table row. Fenced code
  blocks are not checked, and neither is anything inside an inline code span (`...`): put
  configuration values, constants and command output there.
* A *figure* is a number followed by a unit: ms, µs, s, min, h, hours, days, bytes, KB, MB, GB, images/s,
  architectures/s, trials/min, % or x (as in 1.5x), or any number in a table column whose header
  names a unit in parentheses, e.g. `wall (s)`.
* Every block with a figure must name at least one results file, `benchmarks/results/NAME.md` (or
  `NAME.md` for a file of that folder); a table row may instead rely on the files named in the
  paragraph just above its table. Every file named must exist, and each figure's number must appear
  in one of the named files verbatim (as a whole number token: `14.7` does not match `14.69`).
* Figures that are not measurements (published numbers, arithmetic estimates, assumptions) are
  listed in NOT_MEASURED below with a reason, by the block they are in and the figure as written.
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
FIGURE = re.compile(rf"(?<![\w.,/-])({NUMBER})\s?({UNIT})(?![\w/])")
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


def figures(kind: str, text: str, header):
    if kind == "row":
        cells = [c.strip() for c in text.strip().strip("|").split("|")]
        found = []
        for title, cell in zip(header, cells):
            plain = CODE_SPAN.sub("", cell)
            has_unit = HEADER_UNIT.search(title)
            found += [m.group(0) for m in FIGURE.finditer(plain)]
            if has_unit and re.fullmatch(NUMBER, plain):
                found.append(plain)
        return found
    return [m.group(0) for m in FIGURE.finditer(CODE_SPAN.sub("", text))]


def number_of(figure: str) -> str:
    return re.match(NUMBER, figure).group(0)


def contains_number(text: str, number: str) -> bool:
    return re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d]|[.,]\d)", text) is not None


def problems(readme: str, used: set | None = None) -> list[str]:
    found = []
    for line, kind, text, header, above in blocks(readme):
        wanted = []
        for f in figures(kind, text, header):
            allowed = [(phrase, figure) for phrase, figure in NOT_MEASURED
                       if phrase in (text + "\n" + above if kind == "row" else text) and f == figure]
            if used is not None:
                used.update(allowed)
            if not allowed:
                wanted.append(f)
        if not wanted:
            continue
        names = RESULT_FILE.findall(CODE_SPAN.sub(lambda m: m.group(0).strip("`"), text))
        if kind == "row" and not names:
            names = RESULT_FILE.findall(above.replace("`", ""))
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
            if not any(contains_number(t, number_of(figure)) for t in texts.values()):
                found.append(f"{where}: figure {figure!r} is not in {', '.join('benchmarks/results/' + n for n in texts)}")
    return found


def test_every_readme_figure_is_in_a_named_results_file():
    used = set()
    found = problems(README.read_text(), used)
    assert not found, "\n" + "\n".join(found)
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
    assert problems("A constant `12.5 s` in a code span, and no unit on 12.5.\n") == []
    table = ("Throughput (`benchmarks/results/bench_nothing_here.md`):\n\n| setting | wall (s) |\n|---|---|\n"
             "| local | 98.6 |\n")
    assert any("line 5" in p and "does not exist" in p for p in problems(table))
    assert problems("| setting | wall (s) |\n|---|---|\n| local | 98.6 |\n")[0].startswith("README.md line 3")
