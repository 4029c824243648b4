"""``pdarts search``: one progressive search stage (PDARTS.md section 3).

    pdarts search --stage stage2 --cells 11 --skip_dropout 0.4 \\
        --candidates results/search/stage2/candidates.json --data results/data/dataset.json \\
        [search.common settings] --out-alphas results/search/stage2/alphas.json \\
        --out-metrics results/search/stage2/metrics.json --out-history results/search/stage2/history.json

Writes the alphas (the ``pdarts derive --alphas`` format, with the stage's settings), the last
epoch's metrics and the per-epoch history.
"""

from __future__ import annotations

import argparse
import logging
import time

from ..io import read_json, write_json
from ..search_space import validate_candidates
from ._common import (
    ARRAYS_FORMAT,
    add_checkpoint_options,
    add_output_options,
    checkpoint_saver,
    fingerprint,
    finish_checkpoint,
    load_resume_state,
    load_split,
    oom_hint,
    read_manifest,
    record_environment,
    resolve_device,
    run_data_parallel,
    write_metrics,
)
from ._settings import add_section_options, int_at_least, section_values

log = logging.getLogger("pdarts.search")


def rate(text: str) -> float:
    """A rate in [0, 1), for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def add_parser(commands) -> None:
    parser = commands.add_parser("search", help="run one progressive search stage")
    parser.add_argument("--stage", required=True, help="the stage's name (search.stages[].name)")
    parser.add_argument("--cells", required=True, type=int_at_least(1), help="L, cells of the supernet")
    parser.add_argument(
        "--skip_dropout",
        "--skip-dropout",
        dest="skip_dropout",
        required=True,
        type=rate,
        help="initial skip-connect dropout rate of this stage",
    )
    parser.add_argument("--candidates", required=True, help="candidates JSON from the prune step")
    parser.add_argument("--data", required=True, help="dataset manifest from prepare-data")
    add_section_options(parser, "search.common")
    add_checkpoint_options(parser)
    add_output_options(parser, "alphas", "metrics", "history")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Every input is checked before torch is imported: a bad one fails in a fraction of a second.
    common = section_values(args, "search.common")
    candidates = validate_candidates(read_json(args.candidates, "candidates"), what=str(args.candidates))
    manifest = read_manifest(args.data, ARRAYS_FORMAT)
    device = resolve_device(common["device"])
    return run_data_parallel(
        common, device, lambda context: _search(args, common, candidates, manifest, context)
    )


def _search(args, common, candidates, manifest, context) -> None:
    from ..data import ArrayDataset, dataset_info, make_loader, search_halves, train_transform
    from ..search.stage import SearchSettings, run_search_stage
    from ..state import make_reproducible

    make_reproducible(common["seed"])
    device = context.device

    info = dataset_info(manifest["dataset"])
    images, labels = load_split(manifest, train=True)
    weight_idx, arch_idx = search_halves(len(labels))
    transform = train_transform(info)
    loaders = [
        make_loader(
            ArrayDataset(images[idx], labels[idx], transform),
            common["batch_size"] // context.world_size,
            shuffle=True,
            seed=common["seed"] + offset,
            num_workers=common["workers"],
            pin_memory=device.type == "cuda",
            shard=(context.rank, context.world_size),  # in one process: all of it
        )
        for offset, idx in enumerate((weight_idx, arch_idx))
    ]
    settings = SearchSettings(
        num_cells=args.cells,
        skip_dropout=args.skip_dropout,
        epochs=common["epochs"],
        warmup_epochs=common["warmup_epochs"],
        init_channels=common["init_channels"],
        weight_lr=common["weight_lr"],
        weight_lr_min=common["weight_lr_min"],
        momentum=common["momentum"],
        weight_decay=common["weight_decay"],
        arch_lr=common["arch_lr"],
        arch_weight_decay=common["arch_weight_decay"],
        grad_clip=common["grad_clip"],
        precision=common["precision"],
        channels_last=common["channels_last"],
        compile=common["compile"],
        checkpoint_cells=common["checkpoint_cells"],
    )
    stage_settings = {"stage": args.stage, "cells": args.cells, "skip_dropout": args.skip_dropout, **common}
    expected = fingerprint(stage_settings, candidates, manifest["sha256"], manifest.get("subset"))
    resume = load_resume_state(args.checkpoint, expected, ("model", "weight_optimizer", "alpha_optimizer"))
    if not context.is_main:
        logging.getLogger("pdarts.search").setLevel(logging.WARNING)  # one log: rank 0's
    log.info(
        "stage %s: %d cells, %d ops per edge, skip dropout %.2f, %d+%d images, on %s x %d",
        args.stage,
        args.cells,
        max(len(ops) for ops in candidates["normal"]),
        args.skip_dropout,
        len(weight_idx),
        len(arch_idx),
        device,
        context.world_size,
    )
    start = time.perf_counter()
    saver = checkpoint_saver(args.checkpoint, expected) if context.is_main else None

    def save_state(state):  # every process gathers its random streams into the state; rank 0 writes
        if saver is not None:
            saver(state)

    with oom_hint("search.common.batch_size", common["batch_size"]):
        result = run_search_stage(
            candidates,
            settings,
            loaders[0],
            loaders[1],
            num_classes=info.num_classes,
            in_channels=info.in_channels,
            device=device,
            seed=common["seed"],
            resume=resume,
            save_state=save_state if args.checkpoint else None,
        )
    seconds = time.perf_counter() - start
    if not context.is_main:
        return
    record_environment(device)
    write_json(args.out_alphas, {**result.alphas, "settings": stage_settings})
    last = result.history[-1]
    write_metrics(
        args,
        {
            "train_acc": last["train_acc"],
            "train_loss": last["train_loss"],
            "arch_acc": last["arch_acc"],
            "arch_loss": last["arch_loss"],
            "weights": sum(p.numel() for p in result.model.weight_parameters()),
        },
        result.history,
    )
    log.info("stage %s done in %.1f s: train acc %.4f", args.stage, seconds, last["train_acc"])
    finish_checkpoint(args)
