"""The `nas` command. Each subcommand lives in `nas/commands/<name>.py` and exposes `register()`.

Mistakes a user can make surface as `UserError`: one line on stderr, exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import re
import sys
import threading

from nas.common.errors import UserError

import nas
import nas.commands

EXAMPLES = """\
examples:
  nas search --dry-run                       # preview the default search (the shipped 'edgetpu' config)
  nas search                                 # run it into runs/edgetpu/
  nas search --config my_search.yaml         # your own config (or a shipped one by name)
  nas models                                 # the released EfficientNet-EdgeTPU specs
  nas COMMAND --help                         # each command's options and examples
"""

# Quiet TensorFlow's C++ start-up chatter before any command imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# What TensorFlow's native libraries print on import whatever TF_CPP_MIN_LOG_LEVEL says (absl has not
# been initialised yet, and the CUDA probe logs at info level): noise above a user's one-line error.
# Ray's client retries a refused connection for about 20 s, a warning line a second; the one-line
# error that follows says what to do.
NATIVE_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWE]\d{4} [\d:. ]+\d+ "
    rb"(cudart_stub|cuda_\w+|cpu_feature_guard|port)\.cc:\d+\]"
    rb"|\[[\d-]+ [\d:,]+ [IW] \d+ \d+\] gcs_client\.cc:\d+: Failed to get cluster ID)"
)


@contextlib.contextmanager
def native_stderr_filtered():
    """Route file descriptor 2 through a filter that drops `NATIVE_NOISE` lines, keeping the rest."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr is not a real file (tests capture it)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not NATIVE_NOISE.match(line):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, fd)  # drops the pipe's last writer here, so the pump sees end of file
        thread.join(timeout=2.0)  # a child process still holding the pipe must not hang the exit
        os.close(saved)


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def format_help(self) -> str:
        """argparse's help with the epilog (each command's examples) printed as written, not re-wrapped."""
        epilog, self.epilog = self.epilog, None
        try:
            text = super().format_help()
        finally:
            self.epilog = epilog
        return text + (f"\n{epilog}" if epilog else "")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="nas",
        description="Hardware-aware neural architecture search (MNAS) that reproduces EfficientNet-EdgeTPU.",
        epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"%(prog)s {nas.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    commands.required = True
    for info in sorted(pkgutil.iter_modules(nas.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"nas.commands.{info.name}").register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with native_stderr_filtered():
            return int(args.run(args) or 0)
    except UserError as exc:
        # One line whatever the message quotes (a user's text may hold newlines).
        print(f"nas: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `nas models | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
