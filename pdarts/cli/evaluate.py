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

from ..checkpoints import load_model_file
from ..errors import PdartsError
from ..io import write_json
from ..manifest import num_classes, read_manifest
from ..runlog import record, record_environment
from ..settings import EvaluateSettings
from .options import add_section_options, section_settings

log = logging.getLogger("pdarts.evaluate")


def add_parser(commands) -> None:
    parser = commands.add_parser("evaluate", help="test metrics of a trained network")
    parser.add_argument("--model", required=True, help="model.pt written by train or transfer")
    parser.add_argument("--data", required=True, help="the data manifest (or folder) it was trained from")
    add_section_options(parser, "evaluate")
    parser.add_argument("--out", required=True, help="metrics JSON to write")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    settings = section_settings(args, EvaluateSettings)
    manifest = read_manifest(args.data)

    from ..distributed import resolve_device
    from ..manifest import evaluation_set
    from ..training import evaluate_network, network_from_file

    device = resolve_device(settings.device)
    model_file = load_model_file(args.model)
    network = network_from_file(args.model, model_file)
    dataset, input_size = evaluation_set(manifest, model_file.get("data"))
    trained_for = model_file["network"]["num_classes"]
    if trained_for != num_classes(manifest):
        raise PdartsError(
            f"{args.model} was trained for {trained_for} classes, but {args.data} has "
            f"{num_classes(manifest)}; evaluate it on the data it was trained on"
        )
    result = evaluate_network(network, dataset, input_size, settings, device)
    record_environment(device)
    record(precision=result.precision, evaluate_seconds=round(result.seconds, 3), **result.latency_ms)
    write_json(args.out, result.metrics)
    log.info(
        "%s: top-1 error %.2f %%, top-5 error %.2f %% on %d samples (%s on %s)",
        args.model,
        100 * result.metrics["top1_err"],
        100 * result.metrics["top5_err"],
        result.metrics["samples"],
        result.precision,
        device,
    )
