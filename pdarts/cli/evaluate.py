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

from ..io import write_json
from ..manifest import read_manifest
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

    from ..training import evaluate_model_file  # torch: only once the inputs are checked

    result = evaluate_model_file(args.model, manifest, args.data, settings)
    record_environment(result.device)
    record(precision=result.precision, evaluate_seconds=round(result.seconds, 3), **result.latency_ms)
    write_json(args.out, result.metrics)
    errors = [100 * result.metrics[key] for key in ("top1_err", "top5_err")]
    log.info(
        "%s: top-1 error %.2f %%, top-5 error %.2f %% on %d samples (%s on %s)", args.model, *errors,
        result.metrics["samples"], result.precision, result.device,
    )  # fmt: skip
