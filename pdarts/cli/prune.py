"""``pdarts prune``: search-space approximation, one stage's alphas to the next stage's candidates.

pdarts prune --alphas results/search/stage1/alphas.json --keep 5 --out results/search/stage2/candidates.json
"""

from __future__ import annotations

import argparse
import logging

from ..alphas import load_alphas
from ..io import write_json
from ..search.pruning import candidates_record

log = logging.getLogger("pdarts.prune")


def add_parser(commands) -> None:
    parser = commands.add_parser("prune", help="keep the heaviest ops on every edge for the next stage")
    parser.add_argument("--alphas", required=True, help="alphas JSON of the finished stage")
    parser.add_argument("--keep", required=True, type=int, help="ops kept per edge (the next stage's ops)")
    parser.add_argument("--stage", default="", help="name of the stage the candidates are for (recorded)")
    parser.add_argument("--out", required=True, help="candidates JSON to write")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    write_json(args.out, candidates_record(load_alphas(args.alphas), args.keep, args.stage, str(args.alphas)))
    log.info("stage %s: %d ops per edge kept from %s", args.stage, args.keep, args.alphas)
