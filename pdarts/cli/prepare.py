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


def _write_space(settings: SpaceSettings, out: str) -> None:
    write_json(out, initial_alphas(settings.ops))


# command -> its settings, what it does, what --out is, and the library call that writes it
STEPS = {
    "prepare-data": (DataSettings, "check the search/train dataset and write its manifest",
                     "manifest JSON to write", write_arrays_manifest),
    "prepare-transfer": (TransferDataSettings, "check or write the transfer ImageFolder tree",
                         "folder to write (manifest.json, and the digits tree)", write_transfer_folder),
    "prepare-space": (SpaceSettings, "the initial search space, as uniform alphas",
                      "alphas JSON to write", _write_space),
}  # fmt: skip


def add_parser(commands) -> None:
    for name, (settings_class, what, out, _) in STEPS.items():
        parser = commands.add_parser(name, help=what)
        add_section_options(parser, settings_class.section)
        parser.add_argument("--out", required=True, help=out)
        parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    settings_class, _, _, write = STEPS[args.command]
    write(section_settings(args, settings_class), args.out)
