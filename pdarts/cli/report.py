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

# option -> (what it is, argparse keywords)
INPUTS = {
    "--params": ("the settings files, later over earlier (params.yaml [--configfile ...])",
                 {"nargs": "+", "required": True, "metavar": "YAML"}),
    "--search": ("the search results: <stage>/alphas.json and history.json per stage",
                 {"required": True, "metavar": "FOLDER"}),
    "--genotypes": ("genotypes at every cap (derive --all-caps)", {"required": True}),
    **{f"--{name}": (f"the {what}'s history and evaluation",
                     {"nargs": 2, "metavar": ("HISTORY", "EVALUATION")}) for name, what in NETWORKS.items()},
    "--logs": ("the run records' folder (seconds, latency)", {}),
}  # fmt: skip


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "report", help="draw the cells, alphas and curves; write index.html, summary.md and headline metrics"
    )
    for option, (what, kwargs) in INPUTS.items():
        parser.add_argument(option, type=Path, help=what, **kwargs)
    parser.add_argument("--out", required=True, help="report folder to write (replaced whole)")
    parser.add_argument("--out-metrics", required=True, metavar="PATH", help="headline metrics JSON to write")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..report.build import write_report  # matplotlib: only when a report is drawn

    networks = {name: tuple(getattr(args, name)) for name in NETWORKS if getattr(args, name)}
    report = collect(ReportInputs(args.params, args.search, args.genotypes, networks, args.logs))
    write_report(report, args.out, args.out_metrics)
