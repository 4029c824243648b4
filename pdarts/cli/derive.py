"""``pdarts derive``: the genotype of the last stage's alphas, with the skip-connect cap.

pdarts derive --alphas ALPHAS.json --max-skip M --out GENOTYPE.json [--all-caps CAPS.json]
"""

from __future__ import annotations

import argparse
import logging

from ..alphas import load_alphas
from ..errors import PdartsError
from ..genotype import genotype_to_dict
from ..io import write_json
from ..search.derivation import MAX_CAP, all_caps_record, count_skips, derive_all_caps
from .options import int_at_least

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Derive the genotype of the last stage's alphas with the skip-connect cap "
    "(docs/algorithm.md#genotype-derivation-and-the-skip-connect-cap)."
)


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "derive", help="derive the genotype with the skip-connect cap", description=DESCRIPTION
    )
    parser.add_argument("--alphas", required=True, help="alphas JSON of the last search stage")
    parser.add_argument(
        "--max-skip",
        "--max_skip",
        dest="max_skip",
        required=True,
        type=int_at_least(0, " (8 or more means no cap)"),
        metavar="M",
        help="most skip-connects in the normal cell (>= 8: no cap)",
    )
    parser.add_argument("--out", required=True, help="genotype JSON to write")
    parser.add_argument(
        "--all-caps", metavar="PATH", help=f"also write the genotypes for every cap 0..{MAX_CAP} here"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    if args.out == args.all_caps:
        raise PdartsError("--out and --all-caps must be different files")
    by_cap = derive_all_caps(load_alphas(args.alphas))
    chosen = by_cap[min(args.max_skip, MAX_CAP)]
    # Everything is derived before anything is written: a failure leaves no file.
    write_json(args.out, genotype_to_dict(chosen))
    if args.all_caps:
        write_json(args.all_caps, all_caps_record(by_cap, args.max_skip))
    skips = count_skips(chosen.normal)
    log.info(
        "genotype (max %d skip-connects, %d in the normal cell) written to %s", args.max_skip, skips, args.out
    )
