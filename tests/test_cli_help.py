"""Every `nas` command's --help ends with examples, and every example is a command line its parser accepts."""

from __future__ import annotations

import argparse
import shlex

import pytest

from nas.cli import build_parser


def _tree(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("nas",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _tree(sub, (*path, name))


PARSERS = dict(_tree(build_parser()))


def _examples(help_text: str) -> list[str]:
    """The command lines of the help's last section, which must be 'examples:' (continuations joined)."""
    head, marker, section = help_text.rpartition("\nexamples:\n")
    assert marker, "no 'examples:' section"
    lines = " ".join(line.strip() for line in section.replace("\\\n", " ").splitlines())
    return [f"nas {part.split('#')[0].strip()}" for part in lines.split("nas ")[1:]]


@pytest.mark.parametrize("path", sorted(PARSERS), ids=" ".join)
def test_help_ends_with_examples_the_parser_accepts(path):
    parser = PARSERS[path]
    examples = _examples(parser.format_help())
    own = [e for e in examples if tuple(e.split()[: len(path)]) == path]
    assert own, f"{' '.join(path)} --help: no example of the command itself"
    for example in examples:
        argv = shlex.split(example)[1:]
        if argv[-1:] == ["--help"]:
            continue
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{' '.join(path)} --help: the example '{example}' does not parse")


def test_the_examples_section_is_printed_as_written(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--help"])
    out = capsys.readouterr().out
    assert out.rstrip().endswith("nothing finished runs again")
    assert "\n  nas search --dry-run " in out  # one example per line, not re-wrapped into a paragraph
