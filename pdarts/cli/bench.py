"""``pdarts bench``: the benchmark tool ``pdarts_bench`` (also the ``pdarts-bench`` command) as a subcommand.

The same options and output as ``pdarts-bench``; the tool is imported only when ``pdarts`` builds its
parser, and a bad option raises ``PdartsError``, which ``pdarts`` reports in one line.
"""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    from pdarts_bench import cli

    parser = commands.add_parser("bench", help=cli.HELP, description=cli.DESCRIPTION)
    cli.add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pdarts_bench.cli import run as run_bench

    return run_bench(args)
