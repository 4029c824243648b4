"""``pdarts summary``: size and cost of the evaluation network of a genotype, as one JSON object.

pdarts summary GENOTYPE [--dataset {cifar10,cifar100,imagenet}] [--cells N] [--channels C]

GENOTYPE is a registered name (PDARTS, DARTS_V1, DARTS_V2) or a genotype JSON file. Parameters
exclude the auxiliary head (reported apart); multiply-adds are for one image, in eval mode.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import NamedTuple

from ..errors import PdartsError
from ..genotype import GENOTYPES, resolve_genotype
from ._settings import int_at_least

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Print the parameters and multiply-adds of a genotype's evaluation network as JSON (PDARTS.md 6)."
)

#: The mobile setting's budget: fewer than 600M multiply-adds per 224x224 image.
MOBILE_MACS = 600_000_000


class DatasetSettings(NamedTuple):
    family: str  # which network class: "cifar" or "imagenet"
    num_classes: int
    input_size: tuple[int, int, int]
    num_cells: int  # the paper's evaluation depth
    init_channels: int  # the paper's evaluation width


#: The paper's evaluation networks per data set (PDARTS.md section 6).
DATASETS: dict[str, DatasetSettings] = {
    "cifar10": DatasetSettings("cifar", 10, (3, 32, 32), 20, 36),
    "cifar100": DatasetSettings("cifar", 100, (3, 32, 32), 20, 36),
    "imagenet": DatasetSettings("imagenet", 1000, (3, 224, 224), 14, 48),
}


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "summary", help="parameters and multiply-adds of a genotype's network", description=DESCRIPTION
    )
    parser.add_argument(
        "genotype", metavar="GENOTYPE", help=f"{', '.join(GENOTYPES)} or a genotype JSON file"
    )
    parser.add_argument("--dataset", choices=tuple(DATASETS), default="cifar10", help="default: cifar10")
    parser.add_argument(
        "--cells", type=int_at_least(1), metavar="N", help="number of cells (default: 20 CIFAR, 14 ImageNet)"
    )
    parser.add_argument(
        "--channels",
        type=int_at_least(1),
        metavar="C",
        help="initial channels (default: 36 CIFAR, 48 ImageNet)",
    )
    parser.set_defaults(run=run)


def summarize(genotype_arg: str, dataset: str, cells: int | None, channels: int | None) -> dict[str, object]:
    """The summary of one network; raises ``PdartsError`` for a bad genotype or width."""
    genotype = resolve_genotype(genotype_arg)
    settings = DATASETS[dataset]
    cells = settings.num_cells if cells is None else cells
    channels = settings.init_channels if channels is None else channels
    if settings.family == "imagenet" and channels % 2:
        raise PdartsError(
            f"--channels must be even for ImageNet (the stem's first conv gives C/2), got {channels}"
        )

    # torch is imported only here, so that `pdarts --help` stays fast.
    from ..networks import CifarNetwork, ImageNetNetwork
    from ..profile import count_macs, count_parameters

    if settings.family == "imagenet":
        network = ImageNetNetwork(genotype, cells, channels, settings.num_classes)
    else:
        network = CifarNetwork(genotype, cells, channels, settings.num_classes)
    params = count_parameters(network)
    summary: dict[str, object] = {
        "genotype": genotype_arg,
        "dataset": dataset,
        "cells": cells,
        "channels": channels,
        "num_classes": settings.num_classes,
        "input_size": list(settings.input_size),
        "params": params,
        "params_auxiliary": count_parameters(network, exclude_auxiliary=False) - params,
        "macs": count_macs(network, settings.input_size),
    }
    if settings.family == "imagenet":
        summary["mobile_setting"] = summary["macs"] < MOBILE_MACS
    return summary


def run(args: argparse.Namespace) -> None:
    summary = summarize(args.genotype, args.dataset, args.cells, args.channels)
    log.info(
        "%s on %s: %.2fM parameters, %.0fM multiply-adds",
        args.genotype,
        args.dataset,
        summary["params"] / 1e6,
        summary["macs"] / 1e6,
    )
    print(json.dumps(summary))
