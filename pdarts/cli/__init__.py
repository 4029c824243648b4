"""The ``pdarts`` command: one thin entry point per pipeline step.

Each subcommand parses its arguments, calls the library and writes its artifacts atomically. A
problem the user can fix (``PdartsError``, a bad argument) ends with one line on stderr and exit
status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import PdartsError
from . import bench, check, derive, evaluate, prepare, prune, search, summary, train

__all__ = ["main", "build_parser"]

COMMANDS = (check, prepare, prune, search, derive, train, evaluate, summary, bench)
USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (usage stays in ``--help``)."""

    def error(self, message: str):  # noqa: D102
        self.exit(USER_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pdarts", description="P-DARTS as a cached pipeline: one subcommand per step.")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--log", metavar="FILE", help="also write the log to FILE")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if args.log:
        Path(args.log).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(args.log, mode="w"))
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=handlers,
    )
    try:
        status = args.run(args)
    except PdartsError as exc:
        logging.getLogger("pdarts").debug("user error", exc_info=True)
        print(f"pdarts {args.command}: error: {exc}", file=sys.stderr)
        if args.log:
            with open(args.log, "a") as handle:
                handle.write(f"pdarts {args.command}: error: {exc}\n")
        return USER_ERROR
    except KeyboardInterrupt:
        print(f"pdarts {args.command}: interrupted", file=sys.stderr)
        return 130
    return status or 0
