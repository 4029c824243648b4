"""Data-preparation steps: check the datasets once, write manifests, the initial search space.

pdarts prepare-data --dataset D --root R [--download] --out results/data/dataset.json
pdarts prepare-transfer --dataset {digits,imagefolder} --root R [--verify_images] --out results/data/transfer
pdarts prepare-space --ops OP [OP ...] --out results/search/space/alphas.json
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..io import write_json
from ..search_space import CELL_TYPES, EDGES, canonical_order
from ._common import ARRAYS_FORMAT, IMAGEFOLDER_FORMAT, MANIFEST_NAME, array_digest
from ._settings import add_section_options, section_values

log = logging.getLogger("pdarts.prepare")


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
    from ..data import DATASETS, load_arrays

    settings = section_values(args, "data")
    info = DATASETS[settings["dataset"]]
    splits = {}
    sizes = {}
    for split, train in (("train", True), ("test", False)):
        images, labels = load_arrays(
            settings["dataset"], settings["root"], train=train, download=settings["download"]
        )
        if settings["subset"]:
            images, labels = images[: settings["subset"]], labels[: settings["subset"]]
        splits[split] = array_digest(images, labels)
        sizes[split] = len(labels)
    write_json(
        args.out,
        {
            "format": ARRAYS_FORMAT,
            "dataset": info.name,
            "root": settings["root"],
            "subset": settings["subset"],
            "num_classes": info.num_classes,
            "in_channels": info.in_channels,
            "image_size": info.image_size,
            "train": sizes["train"],
            "test": sizes["test"],
            "sha256": splits,
        },
    )
    log.info("%s: %d train / %d test images checked", info.name, sizes["train"], sizes["test"])


def _replace_dir(tmp: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def run_transfer(args: argparse.Namespace) -> None:
    from ..data import DATASETS, check_image_folder, load_arrays, write_image_folder

    settings = section_values(args, "transfer_data")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if settings["dataset"] == "digits":
            classes = [str(c) for c in range(DATASETS["digits"].num_classes)]
            for split, train in (("train", True), ("val", False)):
                images, labels = load_arrays("digits", "", train=train)
                write_image_folder(images, labels, tmp, split, classes)
            summary = check_image_folder(tmp, verify_images=False)
            root = str(out)
        else:
            summary = check_image_folder(settings["root"], verify_images=settings["verify_images"])
            root = settings["root"]
        write_json(
            tmp / MANIFEST_NAME,
            {"format": IMAGEFOLDER_FORMAT, "dataset": settings["dataset"], "root": root, **summary},
        )
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "transfer data %s: %d classes, %d train / %d val images",
        root,
        len(summary["classes"]),
        summary["train"],
        summary["val"],
    )


def run_space(args: argparse.Namespace) -> None:
    ops = canonical_order(section_values(args, "search.space")["ops"])
    write_json(
        args.out,
        {
            cell: [
                {"source": source, "target": node + 2, "ops": list(ops), "alpha": [0.0] * len(ops)}
                for node, source in EDGES
            ]
            for cell in CELL_TYPES
        },
    )
