"""``pdarts search``: one progressive search stage (docs/algorithm.md#progressive-search-stages).

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
from ..manifest import ARRAYS_FORMAT, read_manifest
from ..search_space import validate_candidates
from ..settings import SearchSettings, Stage
from ._common import (
    add_epoch_options,
    add_output_options,
    run_data_parallel,
    step_checkpoint,
    write_metrics,
)
from .options import add_section_options, int_at_least, section_settings

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
        "--skip_dropout", "--skip-dropout", required=True, type=rate, help="initial skip-connect dropout rate"
    )
    parser.add_argument("--candidates", required=True, help="candidates JSON from the prune step")
    parser.add_argument("--data", required=True, help="dataset manifest from prepare-data")
    add_section_options(parser, "search.common")
    add_epoch_options(parser)
    add_output_options(parser, "alphas", "metrics", "history")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Every input is checked before torch is imported: a bad one fails in a fraction of a second.
    settings = section_settings(args, SearchSettings)
    stage = Stage(args.stage, args.cells, args.skip_dropout)
    candidates = validate_candidates(read_json(args.candidates, "candidates"), what=str(args.candidates))
    manifest = read_manifest(args.data, ARRAYS_FORMAT)
    return run_data_parallel(
        args, settings, lambda context: _search(args, settings, stage, candidates, manifest, context)
    )


def _search(args, settings: SearchSettings, stage: Stage, candidates, manifest, context) -> None:
    from ..errors import oom_hint
    from ..livelog import live_metrics
    from ..search.stage import STATE_KEYS, run_search_stage, search_loaders, stage_fingerprint

    expected = stage_fingerprint(stage, settings, candidates, manifest)
    resume, save_state = step_checkpoint(args, expected, STATE_KEYS, context.is_main)
    if not context.is_main:
        logging.getLogger("pdarts.search").setLevel(logging.WARNING)  # one log: rank 0's
    on_epoch = live_metrics(args.out_live, "search", resume, context.is_main)
    weight_batches, arch_batches, info = search_loaders(manifest, settings, context)
    start = time.perf_counter()
    with oom_hint("search.common.batch_size", settings.batch_size):
        result = run_search_stage(
            candidates, settings, stage, weight_batches, arch_batches, info.num_classes, info.in_channels,
            device=context.device, resume=resume, save_state=save_state, on_epoch=on_epoch,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    if not context.is_main:
        return
    write_json(args.out_alphas, {**result.alphas, "settings": stage.record(settings)})
    last = result.history[-1]
    metrics = {key: last[key] for key in ("train_acc", "train_loss", "arch_acc", "arch_loss")}
    metrics["weights"] = sum(p.numel() for p in result.model.weight_parameters())
    write_metrics(args, metrics, result.history)
    log.info("stage %s done in %.1f s: train acc %.4f", stage.name, seconds, last["train_acc"])
