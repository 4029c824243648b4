"""``pdarts train`` and ``pdarts transfer``: train the evaluation network of a genotype from scratch.

    pdarts train --genotype results/derive/genotype.json --data results/data/dataset.json \\
        [train settings] --out-model results/train/model.pt --out-metrics results/train/metrics.json \\
        --out-history results/train/history.json
    pdarts transfer --genotype results/derive/genotype.json --data results/data/transfer \\
        [transfer settings] --out-model ... --out-metrics ... --out-history ...

``train`` follows the CIFAR recipe (PDARTS.md section 6: cosine SGD, drop-path ramped linearly,
auxiliary loss, cutout); ``transfer`` the ImageNet one (linear decay with warm-up, lr scaled by
batch size, label smoothing, auxiliary loss). Both write the model (weights and the network's
description), the last epoch's metrics and the per-epoch history. With ``--processes N > 1`` the
command starts N data-parallel processes under torchrun; only the first writes artifacts.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..genotype import genotype_to_dict, load_genotype
from ._common import (
    ARRAYS_FORMAT,
    IMAGEFOLDER_FORMAT,
    add_checkpoint_options,
    add_output_options,
    checkpoint_saver,
    fingerprint,
    finish_checkpoint,
    load_resume_state,
    load_split,
    oom_hint,
    read_manifest,
    record,
    record_environment,
    resolve_device,
    run_data_parallel,
    save_checkpoint,
    write_metrics,
)
from ._settings import add_section_options, section_values

log = logging.getLogger("pdarts.train")


@dataclass(frozen=True)
class Recipe:
    """What differs between the CIFAR and the ImageNet recipe."""

    section: str
    family: str
    manifest_format: str
    data_help: str


RECIPES = {
    "train": Recipe("train", "cifar", ARRAYS_FORMAT, "dataset manifest from prepare-data"),
    "transfer": Recipe("transfer", "imagenet", IMAGEFOLDER_FORMAT, "the folder prepare-transfer wrote"),
}


def add_parser(commands) -> None:
    for name, recipe in RECIPES.items():
        parser = commands.add_parser(
            name, help=f"train the genotype's {recipe.family} network ({name} recipe)"
        )
        parser.add_argument("--genotype", required=True, help="genotype JSON (from derive)")
        parser.add_argument("--data", required=True, help=recipe.data_help)
        add_section_options(parser, recipe.section)
        add_checkpoint_options(parser)
        add_output_options(parser, "model", "metrics", "history")
        parser.set_defaults(run=run, recipe=recipe)


def _dataset(recipe: Recipe, manifest: dict[str, Any], settings: dict[str, Any]):
    """The training set, its number of classes and image channels, and the data record of the model."""
    if recipe.family == "cifar":
        from ..data import ArrayDataset, dataset_info, train_transform

        info = dataset_info(manifest["dataset"])
        images, labels = load_split(manifest, train=True)
        dataset = ArrayDataset(images, labels, train_transform(info, settings["cutout"]))
        return dataset, info.num_classes, info.in_channels, {"dataset": info.name}
    from ..data import image_folder, imagenet_train_transform

    dataset = image_folder(manifest["root"], "train", imagenet_train_transform(settings["image_size"]))
    return (
        dataset,
        len(dataset.classes),
        3,
        {"dataset": manifest["dataset"], "image_size": settings["image_size"]},
    )


def _lr_schedule(recipe: Recipe, settings: dict[str, Any]) -> Callable[[int], float]:
    from ..schedules import cosine_lr, linear_lr

    if recipe.family == "cifar":
        return lambda e: cosine_lr(e, settings["lr"], settings["epochs"], settings["lr_min"])
    # Linear scaling rule: lr is given for reference_batch_size (the paper: 0.1 at 256).
    base_lr = settings["lr"] * settings["batch_size"] / settings["reference_batch_size"]
    return lambda e: linear_lr(e, base_lr, settings["epochs"], settings["warmup_epochs"])


def run(args: argparse.Namespace) -> int:
    recipe: Recipe = args.recipe
    settings = section_values(args, recipe.section)
    genotype = load_genotype(args.genotype)
    manifest = read_manifest(args.data, recipe.manifest_format)
    device = resolve_device(settings["device"])

    def work(context) -> None:
        with oom_hint(f"{recipe.section}.batch_size", settings["batch_size"]):
            _train(args, recipe, settings, genotype, manifest, context)

    return run_data_parallel(settings, device, work)


def _train(args, recipe: Recipe, settings, genotype, manifest, context) -> None:
    import torch
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data.distributed import DistributedSampler

    from ..data import make_loader
    from ..distributed import all_reduce_sum
    from ..networks import build_network
    from ..precision import resolve_precision
    from ..profile import count_parameters
    from ..state import capture, make_reproducible, restore
    from ..training import LossGuard, train_epoch

    device = context.device
    make_reproducible(settings["seed"])
    dataset, num_classes, in_channels, data_record = _dataset(recipe, manifest, settings)
    sampler = (
        DistributedSampler(dataset, context.world_size, context.rank, shuffle=True, seed=settings["seed"])
        if context.distributed
        else None
    )
    loader = make_loader(
        dataset,
        settings["batch_size"] // context.world_size,
        shuffle=True,
        seed=settings["seed"],
        num_workers=settings["workers"],
        pin_memory=device.type == "cuda",
        sampler=sampler,
    )
    spec = {
        "family": recipe.family,
        "genotype": genotype_to_dict(genotype),
        "num_cells": settings["cells"],
        "init_channels": settings["init_channels"],
        "num_classes": num_classes,
        "in_channels": in_channels,
        "auxiliary": settings["auxiliary_weight"] > 0,
    }
    precision = resolve_precision(settings["precision"], device, settings["channels_last"])
    network = precision.prepare(build_network(spec).to(device))
    model = (
        DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)
        if context.distributed
        else network
    )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.0, momentum=settings["momentum"], weight_decay=settings["weight_decay"]
    )
    scaler = precision.grad_scaler()
    lr_at = _lr_schedule(recipe, settings)
    drop_path = settings.get("drop_path", 0.0)
    data_record = {**data_record, "manifest": str(args.data)}
    expected = fingerprint(recipe.section, settings, spec, manifest)
    resume = load_resume_state(args.checkpoint, expected, ("network", "optimizer", "scaler"))
    save_state = checkpoint_saver(args.checkpoint, expected) if context.is_main else None
    targets = {"network": network, "optimizer": optimizer, "scaler": scaler}
    history: list[dict[str, Any]] = []
    if resume is not None:
        history = restore(resume, targets, [loader.generator], f"this {recipe.section} network")
    if context.is_main:
        log.info(
            "%s: %s network, %d parameters, %d images, %s on %s x %d",
            recipe.section,
            recipe.family,
            count_parameters(network),
            len(dataset),
            precision.name,
            device,
            context.world_size,
        )
    for epoch in range(len(history), settings["epochs"]):
        epoch_start = time.perf_counter()
        lr = lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        network.drop_path_prob = drop_path * epoch / settings["epochs"]
        if sampler is not None:
            sampler.set_epoch(epoch)
        sums = train_epoch(
            model,
            loader,
            optimizer,
            device,
            auxiliary_weight=settings["auxiliary_weight"],
            grad_clip=settings["grad_clip"],
            label_smoothing=settings.get("label_smoothing", 0.0),
            precision=precision,
            scaler=scaler,
            guard=LossGuard(
                f"{recipe.section}: the training loss",
                epoch,
                f"Lower {recipe.section}.lr or use {recipe.section}.precision: fp32",
                device,
            ),
        )
        loss_sum, correct, count = all_reduce_sum([sums["loss_sum"], sums["correct"], sums["count"]], context)
        history.append(
            {
                "epoch": epoch,
                "lr": lr,
                "drop_path": network.drop_path_prob,
                "train_loss": loss_sum / count,
                "train_acc": correct / count,
                "samples": int(count),
                "seconds": time.perf_counter() - epoch_start,
            }
        )
        if context.is_main:
            log.info(
                "%s epoch %d/%d lr %.5f loss %.4f acc %.4f (%.1f s)",
                recipe.section,
                epoch + 1,
                settings["epochs"],
                lr,
                history[-1]["train_loss"],
                history[-1]["train_acc"],
                history[-1]["seconds"],
            )
        state = capture(targets, [loader.generator], history)  # in every process: it gathers
        if save_state is not None:
            save_state(state)
    if not context.is_main:
        return
    record_environment(device)
    record(precision=precision.name)
    save_checkpoint(
        args.out_model,
        {"state_dict": network.state_dict(), "network": spec, "data": data_record, "settings": settings},
    )
    write_metrics(
        args,
        {
            "train_acc": history[-1]["train_acc"],
            "train_loss": history[-1]["train_loss"],
            "params": count_parameters(network),
        },
        history,
    )
    log.info("artifacts written: %s, %s, %s", args.out_model, args.out_metrics, args.out_history)
    finish_checkpoint(args)
