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

from ..config import section_schema
from ..io import read_json, write_json
from ..manifest import ARRAYS_FORMAT, read_manifest
from ..runlog import write_results
from ..search_space import validate_candidates
from ..settings import SearchSettings, Stage
from ._common import add_epoch_options, add_output_options, run_step
from .options import add_option, add_section_options, section_settings

log = logging.getLogger("pdarts.search")


def add_parser(commands) -> None:
    parser = commands.add_parser("search", help="run one progressive search stage")
    entry = section_schema("search.stages")["items"]["properties"]  # the stage's keys, as checked there
    for option, key in (("stage", "name"), ("cells", "cells"), ("skip_dropout", "skip_dropout")):
        add_option(parser, option, entry[key], required=True, help=f"{entry[key]['description']} ({key})")
    parser.add_argument("--candidates", required=True, help="candidates JSON from the prune step")
    parser.add_argument("--data", required=True, help="dataset manifest from prepare-data")
    add_section_options(parser, "search.common")
    add_epoch_options(parser)
    add_output_options(parser, "alphas", "metrics", "history")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Every input is checked before torch is imported: a bad one fails in a fraction of a second.
    settings = section_settings(args, SearchSettings)
    stage = Stage.checked(args.stage, args.cells, args.skip_dropout)
    candidates = validate_candidates(read_json(args.candidates, "candidates"), what=str(args.candidates))
    manifest = read_manifest(args.data, ARRAYS_FORMAT)
    work = lambda context: _search(args, settings, stage, candidates, manifest, context)  # noqa: E731
    return run_step(args, settings, work)


def _search(args, settings: SearchSettings, stage: Stage, candidates, manifest, context) -> None:
    from ..search.stage import search_stage

    start = time.perf_counter()
    result = search_stage(candidates, settings, stage, manifest, context, args.checkpoint, args.out_live)
    seconds = time.perf_counter() - start
    if not context.is_main:
        return
    write_json(args.out_alphas, {**result.alphas, "settings": stage.record(settings)})
    write_results(args.out_metrics, args.out_history, result.metrics(), result.history)
    log.info("stage %s done in %.1f s: train acc %.4f", stage.name, seconds, result.history[-1]["train_acc"])
