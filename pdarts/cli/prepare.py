"""Data-preparation steps: check the datasets once, write manifests, the initial search space.

pdarts prepare-data --dataset D --root R [--download] --out results/data/dataset.json
pdarts prepare-transfer --dataset {digits,imagefolder} --root R [--verify_images] --out results/data/transfer
pdarts prepare-space --ops OP [OP ...] --out results/search/space/alphas.json
"""

from __future__ import annotations

import argparse

from ..io import write_json
from ..manifest import write_arrays_manifest, write_transfer_folder
from ..search_space import initial_alphas
from ..settings import DataSettings, SpaceSettings, TransferDataSettings
from .options import add_section_options, section_settings


def add_parser(commands) -> None:
    data = commands.add_parser("prepare-data", help="check the search/train dataset and write its manifest")
    add_section_options(data, "data")
    data.add_argument("--out", required=True, help="manifest JSON to write")
    data.set_defaults(run=run_data)

    transfer = commands.add_parser("prepare-transfer", help="check or write the transfer ImageFolder tree")
    add_section_options(transfer, "transfer_data")
    transfer.add_argument("--out", required=True, help="folder to write (manifest.json, and the digits tree)")
    transfer.set_defaults(run=run_transfer)

    space = commands.add_parser("prepare-space", help="the initial search space, as uniform alphas")
    add_section_options(space, "search.space")
    space.add_argument("--out", required=True, help="alphas JSON to write")
    space.set_defaults(run=run_space)


def run_data(args: argparse.Namespace) -> None:
    write_arrays_manifest(section_settings(args, DataSettings), args.out)


def run_transfer(args: argparse.Namespace) -> None:
    write_transfer_folder(section_settings(args, TransferDataSettings), args.out)


def run_space(args: argparse.Namespace) -> None:
    write_json(args.out, initial_alphas(section_settings(args, SpaceSettings).ops))
