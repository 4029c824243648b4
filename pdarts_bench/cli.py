"""``pdarts-bench`` (and ``pdarts bench``): seconds per step and peak memory, per optimisation.

    pdarts-bench [--configs stage1-b32 stage1-b96 ...] [--modes reference default ...] \\
        [--rounds 2] [--interleave] [--steps 5] [--warmup 2] [--threads 2] [--device cpu] [--out bench.json]

Prints a markdown table and writes the results, with the machine and library versions, as JSON.
A benchmark, not a test: run it on a quiet machine. ``pdarts bench`` takes the same options: its
parser is built by :func:`add_arguments` and it runs :func:`run`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pdarts.cli.options import int_at_least
from pdarts.errors import PdartsError
from pdarts.runlog import setup_logging

from .configs import CONFIGS, DEFAULT_MODES, LEVERS, check_options
from .measure import run_bench
from .report import log_result, table, write_report

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "build_parser", "main", "run"]

HELP = "time search and training steps in each optimisation mode"
DESCRIPTION = (
    "Seconds per step and peak memory of search and training steps, in each optimisation "
    "mode; each (configuration, mode) in a fresh process, or with --interleave every mode of a "
    "configuration in one process, alternating. A benchmark: run it on a quiet machine."
)
USER_ERROR = 2  # the exit status of a problem the user can fix, as for ``pdarts``


def _resolve_device(name: str) -> str:
    from pdarts.distributed import resolve_device  # imports torch: only when the benchmark runs

    return str(resolve_device(name))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options, for ``pdarts-bench`` and for the ``pdarts bench`` subcommand."""
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[name for name in CONFIGS if not name.startswith("smoke")],
        metavar="NAME",
        help=f"configurations to run, from: {', '.join(CONFIGS)} (default: all but the smoke ones)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=list(DEFAULT_MODES),
        metavar="MODE",
        help="reference (the straightforward implementation: the baseline of every ratio), default "
        "(the library with the default settings), fp32, all, or levers joined by '+' from: "
        f"{', '.join(LEVERS)} "
        f"(default: {' '.join(DEFAULT_MODES)}; compile takes minutes per configuration on a CPU)",
    )
    parser.add_argument(
        "--rounds",
        type=int_at_least(1),
        default=2,
        help="times each configuration runs its modes in turn (A B A B ...; default 2)",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="all modes of a configuration in one process, their steps alternating round by round "
        "(A B, B A, ...): steadier ratios on a noisy machine; no peak memory",
    )
    parser.add_argument("--steps", type=int_at_least(1), default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int_at_least(0), default=2, help="untimed steps first (compilation)")
    parser.add_argument("--threads", type=int_at_least(1), help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    parser.add_argument("--out", help="write the results to this JSON file")


def run(args: argparse.Namespace) -> int:
    """Runs the benchmark of parsed options: the table on stdout, the JSON to ``--out`` (rewritten after
    each measurement).

    Exit status 1 if a measurement failed; a bad option raises ``PdartsError`` before anything runs.
    """
    device = _resolve_device(args.device)
    check_options(args.configs, args.modes, device)

    def on_result(result: dict, report: dict) -> None:
        log_result(result)
        if args.out:  # after each measurement: a run cut short keeps what it measured
            write_report(args.out, report)

    results = run_bench(
        args.configs,
        args.modes,
        args.steps,
        args.warmup,
        device,
        args.threads,
        on_result,
        args.rounds,
        args.interleave,
    )
    print(table(results))
    if args.out:
        write_report(args.out, results)
    return 1 if any("error" in result for result in results["results"]) else 0


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error and no abbreviated options, as the ``pdarts`` command."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D102
        self.exit(USER_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``pdarts-bench`` command."""
    parser = _Parser(prog="pdarts-bench", description=DESCRIPTION)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``pdarts-bench``: a bad option is one line on stderr and exit status 2, without a traceback."""
    args = build_parser().parse_args(argv)
    setup_logging(None, args.quiet)  # as the pdarts command logs
    try:
        return run(args)
    except PdartsError as exc:
        print(f"pdarts-bench: error: {exc}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print("pdarts-bench: interrupted", file=sys.stderr)
        return 130
