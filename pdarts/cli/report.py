"""``pdarts report``: a finished run as pictures and pages (docs/workflow.md#the-run-report).

    pdarts report --params params.yaml --search results/search --genotypes results/derive/genotypes.json \\
        --train results/train/history.json results/evaluate/train.json \\
        --transfer results/transfer/history.json results/evaluate/transfer.json \\
        --logs logs --out results/report --out-metrics results/metrics.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..report.content import NETWORKS, ReportInputs, collect


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "report", help="draw the cells, alphas and curves; write index.html, summary.md and headline metrics"
    )
    parser.add_argument(
        "--params",
        nargs="+",
        required=True,
        type=Path,
        metavar="YAML",
        help="the settings files, later over earlier (params.yaml [--configfile ...])",
    )
    parser.add_argument(
        "--search",
        required=True,
        type=Path,
        metavar="FOLDER",
        help="the search results: <stage>/alphas.json and history.json per stage",
    )
    parser.add_argument(
        "--genotypes", required=True, type=Path, help="genotypes at every cap (derive --all-caps)"
    )
    for name, what in NETWORKS.items():
        parser.add_argument(
            f"--{name}",
            nargs=2,
            type=Path,
            metavar=("HISTORY", "EVALUATION"),
            help=f"the {what}'s history and evaluation",
        )
    parser.add_argument("--logs", type=Path, help="the run records' folder (seconds, latency)")
    parser.add_argument("--out", required=True, help="report folder to write (replaced whole)")
    parser.add_argument("--out-metrics", required=True, metavar="PATH", help="headline metrics JSON to write")
    parser.set_defaults(run=run)  # fmt: skip


def run(args: argparse.Namespace) -> None:
    from ..report.build import write_report  # matplotlib: only when a report is drawn

    networks = {name: tuple(getattr(args, name)) for name in NETWORKS if getattr(args, name)}
    report = collect(ReportInputs(args.params, args.search, args.genotypes, networks, args.logs))
    write_report(report, args.out, args.out_metrics)
