"""``pdarts derive``: the genotype of the last stage's alphas, with the skip-connect cap.

pdarts derive --alphas ALPHAS.json --max_skip M --out GENOTYPE.json [--all-caps CAPS.json]
"""

from __future__ import annotations

import argparse
import logging

from ..alphas import load_alphas
from ..errors import PdartsError
from ..genotype import genotype_to_dict
from ..io import write_json
from ..search.derivation import MAX_CAP, all_caps_record, count_skips, derive_all_caps
from ..settings import DeriveSettings
from .options import add_section_options, section_settings

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
    add_section_options(parser, "derive")
    parser.add_argument("--out", required=True, help="genotype JSON to write")
    parser.add_argument(
        "--all-caps", metavar="PATH", help=f"also write the genotypes for every cap 0..{MAX_CAP} here"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    if args.out == args.all_caps:
        raise PdartsError("--out and --all-caps must be different files")
    max_skip = section_settings(args, DeriveSettings).max_skip
    by_cap = derive_all_caps(load_alphas(args.alphas))
    chosen = by_cap[min(max_skip, MAX_CAP)]
    # Everything is derived before anything is written: a failure leaves no file.
    write_json(args.out, genotype_to_dict(chosen))
    if args.all_caps:
        write_json(args.all_caps, all_caps_record(by_cap, max_skip))
    skips = count_skips(chosen.normal)
    log.info("genotype (cap %d, %d skip-connects in its normal cell) written: %s", max_skip, skips, args.out)
