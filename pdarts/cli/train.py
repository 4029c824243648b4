"""``pdarts train`` and ``pdarts transfer``: train the evaluation network of a genotype from scratch.

    pdarts train --genotype results/derive/genotype.json --data results/data/dataset.json \\
        [train settings] --out-model results/train/model.pt --out-metrics results/train/metrics.json \\
        --out-history results/train/history.json
    pdarts transfer --genotype results/derive/genotype.json --data results/data/transfer \\
        [transfer settings] --out-model ... --out-metrics ... --out-history ...

``train`` follows the CIFAR recipe, ``transfer`` the ImageNet one (docs/algorithm.md#evaluation-networks).
Both write the model (weights and the network's description), the last epoch's metrics and the
per-epoch history. With ``--processes N > 1`` the command starts N data-parallel processes under
torchrun; only the first writes artifacts.
"""

from __future__ import annotations

import argparse
import logging

from ..genotype import load_genotype
from ..manifest import ARRAYS_FORMAT, IMAGEFOLDER_FORMAT, read_manifest
from ..runlog import record, write_results
from ..settings import TrainSettings, TransferSettings
from ._common import add_epoch_options, add_output_options, run_step
from .options import add_section_options, section_settings

log = logging.getLogger("pdarts.train")

# step -> its settings, the data format it trains on, and what --data is
RECIPES = {
    "train": (TrainSettings, ARRAYS_FORMAT, "dataset manifest from prepare-data"),
    "transfer": (TransferSettings, IMAGEFOLDER_FORMAT, "the folder prepare-transfer wrote"),
}


def add_parser(commands) -> None:
    for name, (settings_class, _, data_help) in RECIPES.items():
        family = settings_class.family
        parser = commands.add_parser(name, help=f"train the genotype's {family} network ({name} recipe)")
        parser.add_argument("--genotype", required=True, help="genotype JSON (from derive)")
        parser.add_argument("--data", required=True, help=data_help)
        add_section_options(parser, name)
        add_epoch_options(parser)
        add_output_options(parser, "model", "metrics", "history")
        parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings_class, data_format, _ = RECIPES[args.command]
    settings = section_settings(args, settings_class)
    genotype = load_genotype(args.genotype)
    manifest = read_manifest(args.data, data_format)
    return run_step(args, settings, lambda context: _train(args, settings, genotype, manifest, context))


def _train(args, settings, genotype, manifest, context) -> None:
    from ..checkpoints import save_torch_file
    from ..profile import count_parameters
    from ..training import train_recipe

    result = train_recipe(genotype, settings, manifest, context, args.checkpoint, args.out_live)
    if not context.is_main:
        return
    record(precision=result.precision.name)
    save_torch_file(args.out_model, result.model_file(settings, str(args.data)))
    last = result.history[-1]
    metrics = {"train_acc": last["train_acc"], "train_loss": last["train_loss"]}
    metrics["params"] = count_parameters(result.network)
    write_results(args.out_metrics, args.out_history, metrics, result.history)
    log.info("artifacts written: %s, %s, %s", args.out_model, args.out_metrics, args.out_history)
