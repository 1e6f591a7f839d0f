"""The `nas` command. Each subcommand lives in `nas/commands/<name>.py` and exposes `register()`.

Mistakes a user can make surface as `UserError`: one line on stderr, exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from search_space.errors import UserError

import nas.commands

# Quiet TensorFlow's C++ start-up chatter before any command imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="nas",
        description="Hardware-aware neural architecture search (MNAS) that reproduces EfficientNet-EdgeTPU.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    commands.required = True
    for info in sorted(pkgutil.iter_modules(nas.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"nas.commands.{info.name}").register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `nas models | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
