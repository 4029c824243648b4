"""The seeds sweep's own steps (docs/workflow.md#the-seeds-sweep); training and evaluation are the
pipeline's ``pdarts train`` and ``pdarts evaluate`` with the seed's paths.

    pdarts sweep-plan --params params.yaml [more.yaml] --method darts --out results/sweep/plans/darts.json
    pdarts sweep-search --plan results/sweep/plans/darts.json --seed 1 --data results/data/dataset.json \\
        --checkpoint checkpoints/sweep/darts/seed1 --out-genotype G.json --out-search S.json
    pdarts sweep-summary [sweep settings] --runs results/sweep/runs --out results/sweep/summary.json \\
        --out-report results/sweep/report
"""

from __future__ import annotations

import argparse
import sys

from ..checkpoints import remove_checkpoint
from ..genotype import genotype_to_dict
from ..io import read_json, write_json
from ..launch import run_data_parallel
from ..manifest import ARRAYS_FORMAT, read_manifest
from ..settings import SweepSettings, merge_settings
from ..sweep.plan import METHODS, method_plan, plan_from_dict
from ._common import add_epoch_options, add_output_options
from .options import add_section_options, section_settings


def add_parser(commands) -> None:
    plan = commands.add_parser("sweep-plan", help="what one method of the sweep searches, from the settings")
    plan.add_argument(
        "--params", nargs="+", required=True, metavar="YAML", help="settings, later over earlier"
    )
    plan.add_argument("--method", required=True, choices=METHODS)
    plan.add_argument("--out", required=True, help="plan JSON to write")
    plan.set_defaults(run=run_plan)

    search = commands.add_parser("sweep-search", help="one method's whole search (or draw) on one seed")
    search.add_argument("--plan", required=True, help="plan JSON from sweep-plan")
    search.add_argument("--seed", required=True, type=int, help="the seed of every stage")
    search.add_argument("--data", required=True, help="dataset manifest from prepare-data")
    add_epoch_options(search)  # --checkpoint is a folder here: one file per stage
    add_output_options(search, "genotype", "search")
    search.set_defaults(run=run_search)

    summary = commands.add_parser(
        "sweep-summary", help="mean ± std per method over the seeds, (edge, op) counts"
    )
    add_section_options(summary, "sweep")
    summary.add_argument("--runs", required=True, help="folder of <method>/seed<N>/ runs")
    summary.add_argument("--out", required=True, help="summary JSON to write")
    summary.add_argument(
        "--out-report", required=True, metavar="FOLDER", help="report folder (replaced whole)"
    )
    summary.set_defaults(run=run_summary)


def run_plan(args: argparse.Namespace) -> None:
    write_json(args.out, method_plan(merge_settings(args.params), args.method).to_dict())


def run_search(args: argparse.Namespace) -> int:
    from ..search.progressive import run_plan as run_search_plan
    from ..search.progressive import stage_checkpoint

    plan = plan_from_dict(read_json(args.plan, "sweep plan"), args.plan)
    manifest = read_manifest(args.data, ARRAYS_FORMAT)

    def work(context) -> None:
        run = run_search_plan(plan, args.seed, manifest, context, args.checkpoint)
        if context.is_main:
            write_json(args.out_genotype, genotype_to_dict(run.genotype))
            write_json(args.out_search, run.record(plan, args.seed))
            for stage in plan.stages:  # once every artifact is written
                remove_checkpoint(stage_checkpoint(args.checkpoint, stage.name), args.keep_checkpoint)

    if not plan.stages:  # the random draw: no search, no torch
        return work(argparse.Namespace(is_main=True))
    return run_data_parallel(plan.settings(args.seed), work, sys.argv[1:])


def run_summary(args: argparse.Namespace) -> None:
    from ..report.sweep import write_sweep_report  # matplotlib: only when drawn
    from ..sweep.summary import summarize

    settings = section_settings(args, SweepSettings)
    summary = summarize(args.runs, settings.methods, settings.seeds, settings.transfer)
    write_sweep_report(summary, args.out_report)
    write_json(args.out, summary)
