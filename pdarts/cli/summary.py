"""``pdarts summary``: size and cost of the evaluation network of a genotype, as one JSON object.

pdarts summary GENOTYPE [--dataset {cifar10,cifar100,imagenet}] [--cells N] [--channels C]

GENOTYPE is a registered name (PDARTS, DARTS_V1, DARTS_V2) or a genotype JSON file. Parameters
exclude the auxiliary head (reported apart); multiply-adds are for one image, in eval mode.
"""

from __future__ import annotations

import argparse
import json
import logging

from ..genotype import GENOTYPES, resolve_genotype
from ..settings import schema_defaults
from .options import int_at_least

log = logging.getLogger(__name__)

DATASETS = ("cifar10", "cifar100", "imagenet")  # pdarts.profile.EVALUATION_NETWORKS, without torch


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "summary",
        help="parameters and multiply-adds of a genotype's network",
        description="Print the parameters and multiply-adds of a genotype's evaluation network as JSON "
        "(docs/algorithm.md#evaluation-networks).",
    )
    parser.add_argument(
        "genotype", metavar="GENOTYPE", help=f"{', '.join(GENOTYPES)} or a genotype JSON file"
    )
    parser.add_argument("--dataset", choices=DATASETS, default="cifar10", help="default: cifar10")
    cifar, imagenet = schema_defaults("train"), schema_defaults("transfer")  # the paper's networks
    for option, key, metavar, what in (
        ("--cells", "cells", "N", "cells"),
        ("--channels", "init_channels", "C", "initial channels"),
    ):
        paper = f"{cifar[key]} CIFAR, {imagenet[key]} ImageNet"
        parser.add_argument(option, type=int_at_least(1), metavar=metavar, help=f"{what} (default: {paper})")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    genotype = resolve_genotype(args.genotype)

    from ..profile import network_summary  # torch is imported only here: `pdarts --help` stays fast

    network = network_summary(genotype, args.dataset, args.cells, args.channels)
    summary = {"genotype": args.genotype, **network}
    size = (summary["params"] / 1e6, summary["macs"] / 1e6)
    log.info("%s on %s: %.2fM parameters, %.0fM multiply-adds", args.genotype, args.dataset, *size)
    print(json.dumps(summary))
