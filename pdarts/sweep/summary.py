"""The sweep's aggregate: per method, mean ± std over the seeds and how often each (edge, op) was chosen.

Reads, for every method and seed, ``<runs>/<method>/seed<N>/``: ``search.json`` (sweep-search),
``genotype.json`` and ``evaluate.json`` (pdarts evaluate). Writes ``summary.json``::

    {"seeds": [...], "methods": {"pdarts": {"seeds": [...], "top1_err": {"mean", "std", "values"},
     "params": {...}, "search_seconds": {...}, "skip_connects": {...}, "margin": {...},
     ["transfer_err": {...},]
     "choices": {"normal": {"c_{k-2}→0": {"sep_conv_3x3": 2, ...}, ...}, "reduce": {...}}}}}

``std`` is the sample standard deviation (n - 1 in the denominator; 0 for one seed).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..genotype import Genotype, genotype_from_dict
from ..io import read_json
from ..search_space import CELL_TYPES

__all__ = ["METRICS", "run_folder", "stats", "summarize"]

#: metric -> (file of the run, key in it)
METRICS = {
    "top1_err": ("evaluate.json", "top1_err"),
    "params": ("evaluate.json", "params"),
    "search_seconds": ("search.json", "search_seconds"),
    "skip_connects": ("search.json", "skip_connects"),
}
TRANSFER = "transfer_evaluate.json"  # the transferred network's evaluation, for the methods of sweep.transfer
STATE_NAMES = ("c_{k-2}", "c_{k-1}", "0", "1", "2", "3")


def run_folder(runs: str | Path, method: str, seed: int) -> Path:
    """Where one method's run on one seed keeps its files."""
    return Path(runs, method, f"seed{seed}")


def stats(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation and the values themselves, in seed order."""
    values = list(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "values": values}


def _choices(genotypes: Sequence[Genotype]) -> dict[str, dict[str, dict[str, int]]]:
    """Per cell type and edge (``input→node``), how many genotypes chose each op there."""
    result: dict[str, dict[str, dict[str, int]]] = {}
    for cell in CELL_TYPES:
        counts: dict[str, Counter] = {}
        for genotype in genotypes:
            for index, (op, source) in enumerate(getattr(genotype, cell)):
                edge = f"{STATE_NAMES[source]}→{STATE_NAMES[index // 2 + 2]}"
                counts.setdefault(edge, Counter())[op] += 1
        ordered = sorted(
            counts, key=lambda e: (STATE_NAMES.index(e.split("→")[1]), STATE_NAMES.index(e.split("→")[0]))
        )
        result[cell] = {
            edge: dict(sorted(counts[edge].items(), key=lambda kv: (-kv[1], kv[0]))) for edge in ordered
        }
    return result


def _margin(search: dict[str, Any]) -> float | None:
    """The smallest margin of a run's decisions: every pruning and the derivation."""
    margins = [stage["pruning_margin"] for stage in search["stages"]] + [search["derivation_margin"]]
    margins = [m for m in margins if m is not None]
    return min(margins) if margins else None


def summarize(
    runs: str | Path, methods: Sequence[str], seeds: Sequence[int], transfer: Sequence[str] = ()
) -> dict[str, Any]:
    """The aggregate of every method's runs on ``seeds`` (their files must all exist); for the methods
    of ``transfer``, also ``transfer_err`` (their cells on the transfer data)."""
    summary: dict[str, Any] = {"seeds": list(seeds), "methods": {}}
    for method in methods:
        folders = [run_folder(runs, method, seed) for seed in seeds]
        files = [
            {name: read_json(folder / name, name) for name in ("evaluate.json", "search.json")}
            for folder in folders
        ]
        entry: dict[str, Any] = {"seeds": list(seeds)}
        for metric, (name, key) in METRICS.items():
            entry[metric] = stats([run[name][key] for run in files])
        if method in transfer:
            errors = [read_json(folder / TRANSFER, TRANSFER)["top1_err"] for folder in folders]
            entry["transfer_err"] = stats(errors)
        margins = [_margin(run["search.json"]) for run in files]
        entry["margin"] = stats(margins) if None not in margins else None
        genotypes = [
            genotype_from_dict(read_json(folder / "genotype.json", "genotype")) for folder in folders
        ]
        entry["choices"] = _choices(genotypes)
        summary["methods"][method] = entry
    return summary
