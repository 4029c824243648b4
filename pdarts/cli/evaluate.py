"""``pdarts evaluate``: test metrics of a trained network.

    pdarts evaluate --model results/train/model.pt --data results/data/dataset.json \\
        [evaluate settings] --out results/evaluate/train.json

``--data`` is the manifest (or prepared data folder) the network was trained from: an array dataset
is evaluated on its test split, an ImageFolder tree on ``val/``. The metrics file holds what the
model and data determine; seconds and inference latency go to the run record (``logs/*.json``).
"""

from __future__ import annotations

import argparse
import logging
import time

from ..errors import PdartsError, first_line
from ..io import read_json, write_json
from ._common import (
    ARRAYS_FORMAT,
    IMAGEFOLDER_FORMAT,
    load_checkpoint,
    load_split,
    manifest_path,
    oom_hint,
    record,
    record_environment,
    resolve_device,
)
from ._settings import add_section_options, section_values

log = logging.getLogger("pdarts.evaluate")


def add_parser(commands) -> None:
    parser = commands.add_parser("evaluate", help="test metrics of a trained network")
    parser.add_argument("--model", required=True, help="model.pt written by train or transfer")
    parser.add_argument("--data", required=True, help="the data manifest (or folder) it was trained from")
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
    else:
        record = checkpoint.get("data")
        size = record.get("image_size") if isinstance(record, dict) else None
        if not isinstance(size, int):
            raise PdartsError(
                "the model file records no image size (it was not trained by transfer); "
                "evaluate it on the data it was trained on"
            )
        dataset = image_folder(manifest["root"], "val", imagenet_eval_transform(size))
        input_size = (3, size, size)
    loader = make_loader(
        dataset,
        settings["batch_size"],
        shuffle=False,
        seed=0,
        num_workers=settings["workers"],
        pin_memory=pin,
    )
    return loader, input_size


def _load_model(path: str, checkpoint: dict):
    """The network of a model file with its weights; refuses weights that do not fit it exactly."""
    from ..networks import build_network

    try:
        model = build_network(checkpoint["network"])
    except (KeyError, TypeError, ValueError, AttributeError, PdartsError) as exc:
        raise PdartsError(
            f"{path} has a broken network description ({type(exc).__name__}: {first_line(exc)}); retrain it"
        ) from None
    try:
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise PdartsError(
            f"{path} does not match its network description ({first_line(exc)}); retrain it"
        ) from None
    return model


def run(args: argparse.Namespace) -> None:
    settings = section_values(args, "evaluate")
    manifest = read_json(manifest_path(args.data), "data manifest")
    if not isinstance(manifest, dict) or manifest.get("format") not in (ARRAYS_FORMAT, IMAGEFOLDER_FORMAT):
        raise PdartsError(
            f"{args.data} is not a data manifest; pass the one prepare-data or prepare-transfer wrote"
        )
    device = resolve_device(settings["device"])
    checkpoint = load_checkpoint(args.model)

    from ..precision import resolve_precision
    from ..profile import count_macs, count_parameters
    from ..training import evaluate, measure_latency

    model = _load_model(args.model, checkpoint)
    loader, input_size = _test_batches(manifest, checkpoint, settings, device.type == "cuda")
    classes = max(manifest.get("num_classes", 0), len(manifest.get("classes", [])))
    if checkpoint["network"]["num_classes"] != classes:
        raise PdartsError(
            f"{args.model} was trained for {checkpoint['network']['num_classes']} classes, but "
            f"{args.data} has "
            f"{classes}; evaluate it on the data it was trained on"
        )
    macs = count_macs(model, input_size)
    precision = resolve_precision(settings["precision"], device, settings["channels_last"])
    model = precision.prepare(model.to(device))
    start = time.perf_counter()
    with oom_hint("evaluate.batch_size", settings["batch_size"]):
        sums = evaluate(model, loader, device, precision)
    seconds = time.perf_counter() - start
    count = max(sums["count"], 1)
    metrics = {
        "top1_acc": sums["top1"] / count,
        "top5_acc": sums["top5"] / count,
        "top1_err": 1.0 - sums["top1"] / count,
        "top5_err": 1.0 - sums["top5"] / count,
        "loss": sums["loss_sum"] / count,
        "samples": sums["count"],
        "params": count_parameters(model),
        "macs": macs,
    }
    record_environment(device)
    record(precision=precision.name, evaluate_seconds=round(seconds, 3))
    for batch_size in settings["latency_batch_sizes"]:
        with oom_hint("evaluate.latency_batch_sizes", batch_size):
            latency = measure_latency(
                model, input_size, batch_size, device, precision, settings["latency_repeats"]
            )
        record(**{f"latency_ms_batch{batch_size}": round(1000 * latency, 3)})
    write_json(args.out, metrics)
    log.info(
        "%s: top-1 error %.2f %%, top-5 error %.2f %% on %d samples (%s on %s)",
        args.model,
        100 * metrics["top1_err"],
        100 * metrics["top5_err"],
        sums["count"],
        precision.name,
        device,
    )
