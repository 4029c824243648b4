"""``pdarts train`` and ``pdarts transfer``: train the evaluation network of a genotype from scratch.

    pdarts train --genotype results/derive/genotype.json --data results/data/dataset.json \\
        [train settings] --out results/train
    pdarts transfer --genotype results/derive/genotype.json --data results/data/transfer/manifest.json \\
        [transfer settings] --out results/transfer

``train`` follows the CIFAR recipe (PDARTS.md section 6: cosine SGD, drop-path ramped linearly,
auxiliary loss, cutout); ``transfer`` the ImageNet one (linear decay with warm-up, lr scaled by
batch size, label smoothing, auxiliary loss). Both write ``model.pt`` (weights and the network's
description), ``metrics.json`` and ``history.json``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..genotype import genotype_to_dict, load_genotype
from ._common import (
    ARRAYS_FORMAT,
    IMAGEFOLDER_FORMAT,
    load_split,
    read_manifest,
    resolve_device,
    save_checkpoint,
    write_metrics,
)
from ._settings import add_section_options, section_values

log = logging.getLogger("pdarts.train")


def add_parser(commands) -> None:
    for name, section, data_help in (
        ("train", "train", "dataset manifest from prepare-data"),
        ("transfer", "transfer", "manifest.json of the prepare-transfer folder"),
    ):
        parser = commands.add_parser(name, help=f"train the genotype's network ({section} recipe)")
        parser.add_argument("--genotype", required=True, help="genotype JSON (from derive)")
        parser.add_argument("--data", required=True, help=data_help)
        add_section_options(parser, section)
        parser.add_argument("--out", required=True, help="folder for model.pt, metrics.json, history.json")
        parser.set_defaults(run=run_train if name == "train" else run_transfer)


def _fit(
    model,
    loader,
    settings: dict[str, Any],
    lr_at: Callable[[int], float],
    drop_path: float,
    label_smoothing: float,
    device,
    name: str,
) -> tuple[list[dict[str, Any]], float]:
    """The epoch loop shared by both recipes; returns the per-epoch history and the seconds taken."""
    import torch

    from ..training import train_epoch

    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr_at(0), momentum=settings["momentum"], weight_decay=settings["weight_decay"]
    )
    history = []
    start = time.perf_counter()
    for epoch in range(settings["epochs"]):
        epoch_start = time.perf_counter()
        lr = lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.drop_path_prob = drop_path * epoch / settings["epochs"]
        stats = train_epoch(
            model,
            loader,
            optimizer,
            device,
            auxiliary_weight=settings["auxiliary_weight"],
            grad_clip=settings["grad_clip"],
            label_smoothing=label_smoothing,
        )
        history.append(
            {
                "epoch": epoch,
                "lr": lr,
                "drop_path": model.drop_path_prob,
                "train_loss": stats["loss"],
                "train_acc": stats["top1"],
                "seconds": time.perf_counter() - epoch_start,
            }
        )
        log.info(
            "%s epoch %d/%d lr %.5f loss %.4f acc %.4f (%.1f s)",
            name,
            epoch + 1,
            settings["epochs"],
            lr,
            stats["loss"],
            stats["top1"],
            history[-1]["seconds"],
        )
    return history, time.perf_counter() - start


def _save(
    out: Path,
    model,
    spec: dict[str, Any],
    data: dict[str, Any],
    settings: dict[str, Any],
    history: list[dict[str, Any]],
    seconds: float,
) -> None:
    from ..profile import count_parameters

    save_checkpoint(
        out / "model.pt",
        {"state_dict": model.state_dict(), "network": spec, "data": data, "settings": settings},
    )
    write_metrics(
        out,
        {
            "train_acc": history[-1]["train_acc"],
            "train_loss": history[-1]["train_loss"],
            "params": count_parameters(model),
            "seconds": round(seconds, 3),
        },
        history,
    )


def run_train(args: argparse.Namespace) -> None:
    settings = section_values(args, "train")
    genotype = load_genotype(args.genotype)
    manifest = read_manifest(args.data, ARRAYS_FORMAT)
    device = resolve_device(settings["device"])

    import torch

    from ..data import ArrayDataset, dataset_info, make_loader, train_transform
    from ..networks import build_network
    from ..schedules import cosine_lr

    info = dataset_info(manifest["dataset"])
    images, labels = load_split(manifest, train=True)
    loader = make_loader(
        ArrayDataset(images, labels, train_transform(info, settings["cutout"])),
        settings["batch_size"],
        shuffle=True,
        seed=settings["seed"],
        num_workers=settings["workers"],
        pin_memory=device.type == "cuda",
    )
    torch.manual_seed(settings["seed"])
    spec = {
        "family": "cifar",
        "genotype": genotype_to_dict(genotype),
        "num_cells": settings["cells"],
        "init_channels": settings["init_channels"],
        "num_classes": info.num_classes,
        "in_channels": info.in_channels,
        "auxiliary": settings["auxiliary_weight"] > 0,
    }
    model = build_network(spec).to(device)
    history, seconds = _fit(
        model,
        loader,
        settings,
        lambda e: cosine_lr(e, settings["lr"], settings["epochs"], settings["lr_min"]),
        settings["drop_path"],
        0.0,
        device,
        "train",
    )
    _save(
        Path(args.out),
        model,
        spec,
        {"dataset": info.name, "manifest": str(args.data)},
        settings,
        history,
        seconds,
    )


def run_transfer(args: argparse.Namespace) -> None:
    settings = section_values(args, "transfer")
    genotype = load_genotype(args.genotype)
    manifest = read_manifest(args.data, IMAGEFOLDER_FORMAT)
    device = resolve_device(settings["device"])

    import torch

    from ..data import image_folder, imagenet_train_transform, make_loader
    from ..networks import build_network
    from ..schedules import linear_lr

    dataset = image_folder(manifest["root"], "train", imagenet_train_transform(settings["image_size"]))
    loader = make_loader(
        dataset,
        settings["batch_size"],
        shuffle=True,
        seed=settings["seed"],
        num_workers=settings["workers"],
        pin_memory=device.type == "cuda",
    )
    torch.manual_seed(settings["seed"])
    spec = {
        "family": "imagenet",
        "genotype": genotype_to_dict(genotype),
        "num_cells": settings["cells"],
        "init_channels": settings["init_channels"],
        "num_classes": len(dataset.classes),
        "in_channels": 3,
        "auxiliary": settings["auxiliary_weight"] > 0,
    }
    model = build_network(spec).to(device)
    # Linear scaling rule: lr is given for reference_batch_size (the paper: 0.1 at 256, 0.5 at 1024).
    base_lr = settings["lr"] * settings["batch_size"] / settings["reference_batch_size"]
    history, seconds = _fit(
        model,
        loader,
        settings,
        lambda e: linear_lr(e, base_lr, settings["epochs"], settings["warmup_epochs"]),
        0.0,
        settings["label_smoothing"],
        device,
        "transfer",
    )
    _save(
        Path(args.out),
        model,
        spec,
        {"dataset": manifest["dataset"], "manifest": str(args.data), "image_size": settings["image_size"]},
        settings,
        history,
        seconds,
    )
