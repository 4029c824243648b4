"""``pdarts evaluate``: test metrics of a trained network.

    pdarts evaluate --model results/train/model.pt --data results/data/dataset.json \\
        [evaluate settings] --out results/evaluate/train.json

``--data`` is the manifest the network was trained from: an array dataset is evaluated on its
test split, an ImageFolder tree on ``val/``.
"""

from __future__ import annotations

import argparse
import logging
import time

from ..errors import PdartsError
from ..io import read_json, write_json
from ._common import ARRAYS_FORMAT, IMAGEFOLDER_FORMAT, load_checkpoint, load_split, resolve_device
from ._settings import add_section_options, section_values

log = logging.getLogger("pdarts.evaluate")


def add_parser(commands) -> None:
    parser = commands.add_parser("evaluate", help="test metrics of a trained network")
    parser.add_argument("--model", required=True, help="model.pt written by train or transfer")
    parser.add_argument("--data", required=True, help="the data manifest it was trained from")
    add_section_options(parser, "evaluate")
    parser.add_argument("--out", required=True, help="metrics JSON to write")
    parser.set_defaults(run=run)


def _test_batches(manifest: dict, checkpoint: dict, settings: dict, pin: bool):
    from ..data import (
        ArrayDataset,
        dataset_info,
        eval_transform,
        image_folder,
        imagenet_eval_transform,
        make_loader,
    )

    if manifest.get("format") == ARRAYS_FORMAT:
        images, labels = load_split(manifest, train=False)
        dataset = ArrayDataset(images, labels, eval_transform(dataset_info(manifest["dataset"])))
        input_size = (images.shape[3], images.shape[1], images.shape[2])
    elif manifest.get("format") == IMAGEFOLDER_FORMAT:
        size = checkpoint["data"]["image_size"]
        dataset = image_folder(manifest["root"], "val", imagenet_eval_transform(size))
        input_size = (3, size, size)
    else:
        raise PdartsError("--data is not a data manifest written by prepare-data or prepare-transfer")
    loader = make_loader(
        dataset,
        settings["batch_size"],
        shuffle=False,
        seed=0,
        num_workers=settings["workers"],
        pin_memory=pin,
    )
    return loader, input_size


def run(args: argparse.Namespace) -> None:
    from ..networks import build_network
    from ..profile import count_macs, count_parameters
    from ..training import evaluate

    settings = section_values(args, "evaluate")
    checkpoint = load_checkpoint(args.model)
    manifest = read_json(args.data, "data manifest")
    device = resolve_device(settings["device"])
    model = build_network(checkpoint["network"])
    try:
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as exc:
        raise PdartsError(
            f"{args.model} does not match its network description ({str(exc).splitlines()[0]}); retrain it"
        ) from None
    loader, input_size = _test_batches(manifest, checkpoint, settings, device.type == "cuda")
    if checkpoint["network"]["num_classes"] != max(
        manifest.get("num_classes", 0), len(manifest.get("classes", []))
    ):
        raise PdartsError(
            f"{args.model} was trained for {checkpoint['network']['num_classes']} classes, "
            f"but {args.data} has a different number; evaluate it on the data it was trained on"
        )
    model.to(device)
    start = time.perf_counter()
    stats = evaluate(model, loader, device)
    seconds = time.perf_counter() - start
    metrics = {
        "top1_acc": stats["top1"],
        "top5_acc": stats["top5"],
        "top1_err": 1.0 - stats["top1"],
        "top5_err": 1.0 - stats["top5"],
        "loss": stats["loss"],
        "samples": stats["count"],
        "params": count_parameters(model),
        "macs": count_macs(model.cpu(), input_size),
        "seconds": round(seconds, 3),
    }
    write_json(args.out, metrics)
    log.info(
        "%s: top-1 error %.2f %%, top-5 error %.2f %% on %d samples",
        args.model,
        100 * metrics["top1_err"],
        100 * metrics["top5_err"],
        stats["count"],
    )
