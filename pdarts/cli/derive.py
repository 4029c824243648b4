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
from ..search.derivation import MAX_CAP, derive_all_caps
from ._settings import int_at_least

log = logging.getLogger(__name__)

DESCRIPTION = "Derive the genotype of the last stage's alphas with the skip-connect cap (PDARTS.md 5)."


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


def count_skips(pairs) -> int:
    return sum(op == "skip_connect" for op, _ in pairs)


def run(args: argparse.Namespace) -> None:
    if args.out == args.all_caps:
        raise PdartsError("--out and --all-caps must be different files")
    alphas = load_alphas(args.alphas)
    by_cap = derive_all_caps(alphas)
    chosen = by_cap[min(args.max_skip, MAX_CAP)]
    # Everything is derived before anything is written: a failure leaves no file.
    write_json(args.out, genotype_to_dict(chosen))
    if args.all_caps:
        write_json(
            args.all_caps,
            {
                "max_skip": args.max_skip,
                "caps": [
                    {"max_skip": m, "skip_connects": count_skips(g.normal), "genotype": genotype_to_dict(g)}
                    for m, g in by_cap.items()
                ],
            },
        )
    log.info(
        "genotype (max %d skip-connects, %d in the normal cell) written to %s",
        args.max_skip,
        count_skips(chosen.normal),
        args.out,
    )
