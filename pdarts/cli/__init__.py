"""The ``pdarts`` command: one thin entry point per pipeline step.

Each subcommand parses its arguments, calls the library and writes its artifacts atomically. A
problem the user can fix (``PdartsError``, a bad argument) ends with one line on stderr and exit
status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Sequence

from ..errors import PdartsError
from ..launch import launched_argv
from ..runlog import RUN_RECORD, setup_logging, write_run_record
from . import bench, check, derive, evaluate, prepare, prune, report, search, summary, sweep, train
from .options import HelpFormatter

__all__ = ["main", "build_parser"]

COMMANDS = (check, prepare, prune, search, derive, train, evaluate, report, sweep, summary, bench)
USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (usage stays in ``--help``) that takes no abbreviations: a
    misspelt setting (``--epoch 3``) is refused, never read as another one (``--epochs``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D102
        if message.startswith("unrecognized arguments:"):
            unknown = [word for word in message.split(":", 1)[1].split() if word.startswith("--")]
            if unknown:
                message = (
                    f"unknown setting {', '.join(unknown)}: not a setting of this step "
                    "(a misspelt key in params.yaml? `pdarts check-params` names it)"
                )
        self.exit(USER_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pdarts", description="P-DARTS as a cached pipeline: one subcommand per step.")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument(
        "--log",
        metavar="FILE",
        help="also write the log to FILE, and the run's timings and environment to FILE with .json",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        module.add_parser(commands)
    parser.subcommands = commands
    return parser


def _output_paths(args: argparse.Namespace) -> tuple[str, ...]:
    """The files a step was told to write (its ``--out`` and ``--out-NAME`` arguments)."""
    names = [name for name in vars(args) if name == "out" or name.startswith("out_")]
    return tuple(getattr(args, name) for name in names if isinstance(getattr(args, name), str))


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = launched_argv()  # the arguments of a command relaunched under torchrun
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the step's own parser, so that the error names the step
        parser.subcommands.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    setup_logging(args.log, args.quiet)
    RUN_RECORD.reset()
    start = time.perf_counter()
    try:
        status = args.run(args)
        if args.log:
            command = shlex.join(["pdarts", *(sys.argv[1:] if argv is None else argv)])
            write_run_record(args.log, command, time.perf_counter() - start, _output_paths(args))
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
