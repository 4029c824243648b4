"""``pdarts check-params``: validate a whole settings file (schema and cross-field rules).

    pdarts check-params [params.yaml ...] [--out results/params.ok]

With ``--out``, a file is written once every file is valid. ``dvc.yaml`` runs this first, as the step
every other step depends on, so that a bad setting is refused before any step's outputs change; the
file's content never changes, so passing the check reruns nothing. (Snakemake checks the config when
it reads the Snakefile.)
"""

from __future__ import annotations

import argparse
import logging

from ..io import write_json
from ..settings import check_params_file

log = logging.getLogger("pdarts.check")

CHECKED = {"valid": True}  # the content of --out: constant, so that passing reruns nothing


def add_parser(commands) -> None:
    parser = commands.add_parser("check-params", help="validate params.yaml (or another settings file)")
    parser.add_argument("files", nargs="*", default=["params.yaml"], metavar="FILE")
    parser.add_argument("--out", metavar="PATH", help="write this file once every settings file is valid")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    for path in args.files:
        check_params_file(path)
        log.info("%s: valid", path)
    if args.out:
        write_json(args.out, CHECKED)
