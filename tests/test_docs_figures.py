"""Every measured figure in README.md and docs/ is read from its results record by key.

The convention is benchmarks/figures.py's docstring (and the Contributing page): a figure is written
with `<!--fig FILE | ROW | COLUMN-->` right after it (or `FILE | line=LABEL` for a prose line of the
results file), a table copied from a results file with `<!--fig-table FILE-->` above it, and a number
that looks like a figure but is none (published, a goal, a setting, arithmetic) with
`<!--given: why-->`. The check compares the figure's numbers and unit with the record at its key.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import figures  # noqa: E402

TEXTS = figures.user_texts()


def test_every_figure_in_the_user_facing_text_matches_its_record():
    found = figures.problems(TEXTS)
    assert not found, "\n" + "\n".join(found)
    # A parser that stopped finding keys would pass vacuously: the docs held 55 keyed figures and
    # 19 keyed tables when this was written.
    keys = sum(1 for text in TEXTS.values() for _, kind, _, _ in figures.keyed(text) if kind == "fig")
    tables = sum(len(figures.keyed_tables(text)) for text in TEXTS.values())
    assert keys >= 50 and tables >= 15, (keys, tables)


SQ_CONFIG = "bench_search_quality.md | section=Objective: config; variant=default; controller=mnas"
GOALS = "bench_search_quality.md | objective=config; variant=default; controller=mnas"
# The wrong edits a regex over prose let through (issue 27), applied to the real text: (page, the text
# as it is, the text after the edit). Each must fail the check.
WRONG_EDITS = {
    "a wall time from another row (random's seed 0)": (
        "docs/guides/search.md", f"556 s<!--fig {SQ_CONFIG}; seed=0 | wall s-->", f"1050 s<!--fig {SQ_CONFIG}; seed=0 | wall s-->"),
    "720 s -> 727 s": (
        "docs/guides/search.md", "720 s<!--fig", "727 s<!--fig"),
    "two controllers' figures swapped": (
        "docs/benchmarks.md", "evolution 64<!--fig bench_controllers.md | evolution | samples to top 0.1%-->,\n"
                              "reinforce 83<!--fig bench_controllers.md | reinforce | samples to top 0.1%-->",
        "evolution 83<!--fig bench_controllers.md | evolution | samples to top 0.1%-->,\n"
        "reinforce 64<!--fig bench_controllers.md | reinforce | samples to top 0.1%-->"),
    "0.99x -> 1.00x": (
        "docs/benchmarks.md", "0.99x<!--fig bench_train.md", "1.00x<!--fig bench_train.md"),
    "a seed's 3.57 -> 5.12 (another seed's)": (
        "docs/benchmarks.md", f"3.57<!--fig {SQ_CONFIG}; seed=1 | goals-->", f"5.12<!--fig {SQ_CONFIG}; seed=1 | goals-->"),
    "0.77-1.23 -> 0.77-1.16": (
        "docs/benchmarks.md", f"0.77-1.23<!--fig {GOALS} | Q4 median latency-->",
        f"0.77-1.16<!--fig {GOALS} | Q4 median latency-->"),
    "12.0 min -> 2026 min (the year in the file's date)": (
        "docs/benchmarks.md", "12.0 min<!--fig", "2026 min<!--fig"),
    "5 of 5 -> 3 of 5": (
        "docs/benchmarks.md", f"5 of 5<!--fig {GOALS} | Q4 >= 1.1 x Q1-->", f"3 of 5<!--fig {GOALS} | Q4 >= 1.1 x Q1-->"),
    "(359 images) -> (9999 images)": (
        "docs/benchmarks.md", "(359 images<!--fig", "(9999 images<!--fig"),
    "'1% short in this run', unkeyed (it passed on 'TF1')": (
        "docs/benchmarks.md", "(goal 1.0x<!--given: a goal, not a measurement-->)",
        "(goal 1.0x<!--given: a goal, not a measurement-->: 1% short in this run)"),
    "an integer without a unit: 51 -> 52 distinct architectures": (
        "docs/benchmarks.md", "51 architectures<!--fig", "52 architectures<!--fig"),
    "an unkeyed count: 'in 9 of 10 seeds' with no key": (
        "docs/benchmarks.md", "ends in the band in seven.", "ends in the band in 9 of 10 seeds."),
    "a figure read from a JSON store, rounded differently": (
        "docs/benchmarks.md", "0.889<!--fig bench_search_quality.json", "0.890<!--fig bench_search_quality.json"),
    "a figure without a unit where the record has one (unit checked)": (
        "docs/benchmarks.md", "10.13 ms<!--fig", "10.13 MB<!--fig"),
}


@pytest.mark.parametrize("name", WRONG_EDITS)
def test_the_check_catches_each_wrong_edit(name):
    page, before, after = WRONG_EDITS[name]
    text = TEXTS[page]
    assert text.count(before) == 1, f"{name}: the text to edit is no longer on {page} exactly once: {before!r}"
    assert not figures.problems({page: text})
    found = figures.problems({page: text.replace(before, after)})
    assert found, f"{name}: the check passed a wrong edit"


def test_keys_read_records_by_table_row_and_column():
    cell, header = figures.lookup(figures.parse_key(f"{SQ_CONFIG}; seed=4 | wall s"))
    assert (cell, header) == ("1259", "wall s")
    cell, _ = figures.lookup(figures.parse_key("bench_train.md | nas train loop | vs fit (CPU)"))
    assert cell == "0.92x"
    with pytest.raises(LookupError, match="needs exactly one"):  # seed 0 of mnas has four rows
        figures.lookup(figures.parse_key("bench_search_quality.md | section=Objective: config; controller=mnas; seed=0 | wall s"))
    assert figures.check("12.0 s", figures.parse_key("bench_test_suite.md | 720 | wall (min)"))  # wrong unit
    assert figures.check("12.0 min", figures.parse_key("bench_test_suite.md | 720 | wall (min)")) is None


def test_a_keyed_table_must_be_rows_of_the_results_table():
    rows = ["| setting | wall (s) | trials/min overall | trials/min steady | median proxy (s) | best reward |",
            "|---|---|---|---|---|---|",
            "| local (one process) | 200.6 | 3.59 | 3.88 | 14.7 | 0.3287 |"]
    assert figures.check_table("bench_ray_throughput.md", rows) is None
    assert "is not a row" in figures.check_table("bench_ray_throughput.md", rows[:2] + [rows[2].replace("200.6", "200.7")])
    page = "<!--fig-table bench_ray_throughput.md-->\n" + "\n".join(rows) + "\n"
    assert figures.problems({"x.md": page}) == []
    assert figures.problems({"x.md": page.replace("3.88", "3.89")})
    # an unkeyed copy of the table is figures without keys
    assert figures.problems({"x.md": "\n".join(rows).replace("| 200.6 |", "| 200.6 s |") + "\n"})


def test_json_stores_are_records_too():
    key = figures.parse_key("bench_search_quality.json | objective=config; variant=default; controller=mnas; "
                            "seed=0; trials=64 | result.wall_s")
    assert figures.check("556 s", key) is None  # 555.99... to no decimals
    assert figures.check("555.99 s", key) is None
    assert figures.check("557 s", key) and figures.check("556 ms", key)
    # a store whose keys hold '|' (bench_proxy_fidelity's variant|architecture|seed)
    key = figures.parse_key("bench_proxy_fidelity.json | key=strides|10|2 | accuracy")
    assert figures.check("0.925", key) is None and figures.check("0.924", key)
