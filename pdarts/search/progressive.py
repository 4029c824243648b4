"""Every stage of a search in one process: prune, search, ..., derive (the seeds sweep's search step).

Each stage runs exactly as the pipeline's own ``pdarts search`` step does (fresh loaders seeded from
the settings, fresh supernet and alphas, candidates pruned from the previous stage's alphas), so a
sweep's P-DARTS run at the pipeline's seed finds the pipeline's genotype. What it adds is the record
of how close each decision was: the pruning margin before every stage and the derivation margin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..alphas import alphas_from_dict
from ..genotype import Genotype
from ..search_space import initial_alphas
from .derivation import count_skips, derivation_margin, derive_genotype
from .pruning import prune_candidates, pruning_margin
from .sampling import random_genotype

__all__ = ["SearchRun", "run_plan", "stage_checkpoint"]

log = logging.getLogger(__name__)


def stage_checkpoint(folder: str | Path | None, stage: str) -> Path | None:
    """Where a run keeps the resume checkpoint of ``stage`` in ``folder`` (None: no checkpoints)."""
    return Path(folder, f"{stage}.pt") if folder else None


@dataclass
class SearchRun:
    """A method's search on one seed: the genotype and, per stage, what it cost and decided."""

    genotype: Genotype
    stages: list[dict[str, Any]] = field(default_factory=list)
    derivation_margin: float | None = None

    def record(self, plan, seed: int) -> dict[str, Any]:
        """The run as its search.json: seconds, margins and last-epoch metrics per stage."""
        return {
            "method": plan.method,
            "seed": seed,
            "search_seconds": round(sum(stage["seconds"] for stage in self.stages), 3),
            "skip_connects": count_skips(self.genotype.normal),
            "derivation_margin": self.derivation_margin,
            "stages": self.stages,
        }


def run_plan(
    plan, seed: int, manifest: dict[str, Any], context, checkpoints: str | Path | None = None
) -> SearchRun:
    """Runs a sweep plan (``pdarts.sweep.plan.SearchPlan``) on one seed.

    Args:
        plan: the method's ops, stages and cap.
        seed: the seed of every stage (and of the random draw).
        manifest: the prepared dataset's manifest.
        context: the data-parallel context (``pdarts.distributed``).
        checkpoints: a folder for each stage's resume checkpoint, ``<stage>.pt`` (None: none).
    """
    if not plan.stages:
        return SearchRun(random_genotype(plan.ops, plan.max_skip, seed))
    from .stage import search_stage

    settings = plan.settings(seed)
    alphas = alphas_from_dict(initial_alphas(plan.ops), "search space")
    run = SearchRun(genotype=None)
    for stage_plan in plan.stages:
        stage = stage_plan.stage()
        candidates = prune_candidates(alphas, stage_plan.ops)
        margin = pruning_margin(alphas, stage_plan.ops)
        path = stage_checkpoint(checkpoints, stage.name)
        result = search_stage(candidates, settings, stage, manifest, context, path)
        last = result.history[-1]
        run.stages.append(
            {
                "stage": stage.name,
                "cells": stage.cells,
                "ops": stage_plan.ops,
                "pruning_margin": margin,
                "seconds": round(sum(epoch["seconds"] for epoch in result.history), 3),  # resumed too
                **{key: last[key] for key in ("train_acc", "arch_acc")},
            }
        )
        alphas = alphas_from_dict(result.alphas, f"stage {stage.name}")
    run.genotype = derive_genotype(alphas, plan.max_skip)
    run.derivation_margin = derivation_margin(alphas)
    log.info(
        "%s seed %d: %d skip-connects in the normal cell", plan.method, seed, count_skips(run.genotype.normal)
    )
    return run
