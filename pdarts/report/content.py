"""What a run report says: the run's artifacts read, checked and gathered into one object.

``collect`` reads a finished pipeline's files (the settings, each search stage's alphas and history,
the genotypes at every skip-connect cap, each network's history and evaluation) and the run records
that still describe them (seconds, latency: ``pdarts.report.records``); ``headline_metrics`` flattens
the numbers a comparison of runs needs into the metrics file ``dvc exp show`` reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..alphas import alphas_from_dict
from ..errors import PdartsError
from ..genotype import Genotype, genotype_from_dict
from ..io import read_json
from ..search.derivation import MAX_CAP, count_skips, derivation_margin
from ..search.pruning import pruning_margin
from ..settings import SECTIONS, merge_settings, schema_defaults, section_values
from .records import RunRecords, StepRecord

__all__ = [
    "NETWORKS",
    "Cap",
    "NetworkReport",
    "Report",
    "ReportInputs",
    "StageReport",
    "collect",
    "decision_margins",
    "headline_metrics",
]

#: The evaluated networks: name -> what the report calls it.
NETWORKS = {"train": "CIFAR network (train)", "transfer": "ImageNet network (transfer)"}


@dataclass(frozen=True)
class ReportInputs:
    """The files a report reads. ``search``: the folder with one ``<stage>/alphas.json`` and
    ``<stage>/history.json`` per stage of ``search.stages``; ``networks``: name (a key of
    ``NETWORKS``) -> (history, evaluation) file; ``logs``: the run records' folder."""

    params: Sequence[Path]
    search: Path
    genotypes: Path
    networks: Mapping[str, tuple[Path, Path]]
    logs: Path | None = None


@dataclass(frozen=True)
class StageReport:
    name: str
    cells: int
    ops: int
    skip_dropout: float
    alphas: dict[str, Any]
    history: list[dict[str, Any]]
    record: StepRecord | None

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1]


@dataclass(frozen=True)
class Cap:
    max_skip: int
    skips: int
    genotype: Genotype


@dataclass(frozen=True)
class NetworkReport:
    name: str
    history: list[dict[str, Any]]
    evaluation: dict[str, Any]
    training: StepRecord | None
    evaluating: StepRecord | None

    @property
    def latency_ms(self) -> dict[int, float]:
        """Inference latency per batch size, from the evaluation's run record (empty: not recorded)."""
        fields = self.evaluating.fields if self.evaluating else {}
        prefix = "latency_ms_batch"
        return {int(key[len(prefix) :]): value for key, value in fields.items() if key.startswith(prefix)}


@dataclass(frozen=True)
class Report:
    settings: dict[str, Any]
    changed_settings: list[tuple[str, Any, Any]]
    stages: list[StageReport]
    caps: list[Cap]
    max_skip: int
    networks: list[NetworkReport]
    records: list[StepRecord] = field(default_factory=list)

    @property
    def genotype(self) -> Genotype:
        """The genotype the pipeline trained: the one at the chosen cap."""
        return self.caps[min(self.max_skip, MAX_CAP)].genotype


def changed_settings(settings: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, value, schema default)`` for every setting that differs from the schema's default
    (the paper's value); ``search.stages`` has no default and is reported with the stages. The
    ``sweep`` section is not the run's: the sweep's own report lists it."""
    changed = []
    for section in SECTIONS:
        if section == "sweep":
            continue
        values = section_values(settings, section)
        for key, default in schema_defaults(section).items():
            if values.get(key, default) != default:
                changed.append((f"{section}.{key}", values[key], default))
    return changed


def _history(path: Path, what: str) -> list[dict[str, Any]]:
    history = read_json(path, what)
    if not isinstance(history, list) or not history or not all(isinstance(e, dict) for e in history):
        raise PdartsError(f"{path}: expected a non-empty JSON list of per-epoch records ({what})")
    return history


def _stage(stage: Mapping[str, Any], folder: Path, records: RunRecords) -> StageReport:
    alphas_path, history_path = (
        folder / stage["name"] / "alphas.json",
        folder / stage["name"] / "history.json",
    )
    alphas = read_json(alphas_path, "alphas")
    alphas_from_dict(alphas, str(alphas_path))  # checked; the figures draw its softmax weights
    return StageReport(
        name=stage["name"],
        cells=stage["cells"],
        ops=stage["ops"],
        skip_dropout=stage["skip_dropout"],
        alphas=alphas,
        history=_history(history_path, "search history"),
        record=records.of(alphas_path),
    )


def _caps(path: Path) -> tuple[list[Cap], int]:
    data = read_json(path, "genotypes")
    try:
        caps = [
            Cap(c["max_skip"], c["skip_connects"], genotype_from_dict(c["genotype"])) for c in data["caps"]
        ]
        max_skip = int(data["max_skip"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PdartsError(f"{path}: not a genotypes file of `pdarts derive --all-caps` ({exc})") from None
    if [cap.max_skip for cap in caps] != list(range(MAX_CAP + 1)):
        raise PdartsError(f"{path}: expected the genotypes of caps 0..{MAX_CAP} in order")
    for cap in caps:
        if count_skips(cap.genotype.normal) != cap.skips:
            raise PdartsError(
                f"{path}: cap {cap.max_skip} says {cap.skips} skip-connects, its genotype differs"
            )
    return caps, max_skip


def _network(name: str, files: tuple[Path, Path], records: RunRecords) -> NetworkReport:
    history, evaluation = files
    data = read_json(evaluation, "evaluation")
    missing = {"top1_err", "top5_err", "params", "macs"} - set(data if isinstance(data, dict) else ())
    if missing:
        raise PdartsError(f"{evaluation}: not an evaluation of `pdarts evaluate` (missing {sorted(missing)})")
    return NetworkReport(
        name=name,
        history=_history(history, f"{name} history"),
        evaluation=data,
        training=records.of(history),
        evaluating=records.of(evaluation),
    )


def decision_margins(stages: Sequence[StageReport]) -> list[tuple[str, float | None]]:
    """How close each decision of the search was to a tie: before every stage after the first, the
    smallest gap between a kept and a dropped op of the previous stage's alphas (``pruning_margin``);
    then the derivation from the last stage's (``derivation_margin``)."""
    margins = []
    for before, stage in zip(stages, stages[1:]):
        alphas = alphas_from_dict(before.alphas, before.name)
        margins.append(
            (
                f"pruning {before.name} → {stage.name} ({stage.ops} ops kept)",
                pruning_margin(alphas, stage.ops),
            )
        )
    if stages:
        last = stages[-1]
        margins.append(
            (f"derivation from {last.name}", derivation_margin(alphas_from_dict(last.alphas, last.name)))
        )
    return margins


def collect(inputs: ReportInputs) -> Report:
    """Reads and checks everything a report shows (one-line ``PdartsError`` on a bad file)."""
    settings = merge_settings(inputs.params)
    records = RunRecords.from_folder(inputs.logs)
    stages = [_stage(stage, inputs.search, records) for stage in settings["search"]["stages"]]
    caps, max_skip = _caps(inputs.genotypes)
    unknown = set(inputs.networks) - set(NETWORKS)
    if unknown:
        raise PdartsError(f"unknown networks {sorted(unknown)}; expected some of {list(NETWORKS)}")
    networks = [
        _network(name, inputs.networks[name], records) for name in NETWORKS if name in inputs.networks
    ]
    return Report(settings, changed_settings(settings), stages, caps, max_skip, networks, records.records)


def headline_metrics(report: Report) -> dict[str, Any]:
    """The flat metrics ``dvc exp show`` puts side by side, with short names so that a row reads at
    120 columns: ``top1_err``, ``params``, ``macs`` (the CIFAR network), ``transfer_err``,
    ``transfer_macs``, ``skips`` (skip-connects in the trained normal cell) and ``<stage>_s``, each
    search stage's seconds (None: not recorded)."""
    metrics: dict[str, Any] = {}
    for network in report.networks:
        evaluation = network.evaluation
        if network.name == "train":
            metrics.update(
                top1_err=evaluation["top1_err"], params=evaluation["params"], macs=evaluation["macs"]
            )
        else:
            metrics.update(
                {f"{network.name}_err": evaluation["top1_err"], f"{network.name}_macs": evaluation["macs"]}
            )
    metrics["skips"] = count_skips(report.genotype.normal)
    for stage in report.stages:
        metrics[f"{stage.name}_s"] = round(stage.record.seconds, 1) if stage.record else None
    return metrics
