"""``pdarts check-params``: validate a whole settings file (schema and cross-field rules).

pdarts check-params [params.yaml ...]
"""

from __future__ import annotations

import argparse
import logging

from ..config import check_params, load_params
from ..errors import PdartsError

log = logging.getLogger("pdarts.check")


def add_parser(commands) -> None:
    parser = commands.add_parser("check-params", help="validate params.yaml (or another settings file)")
    parser.add_argument("files", nargs="*", default=["params.yaml"], metavar="FILE")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    for path in args.files:
        params = load_params(path)  # its errors name the file already
        try:
            check_params(params)
        except PdartsError as exc:
            raise PdartsError(f"{path}: {exc}") from None
        log.info("%s: valid", path)
