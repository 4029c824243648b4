"""Writing a run report: every figure and both pages into a fresh folder that replaces the old one
whole, then the headline metrics file.

Files, relative to the report folder: ``index.html``, ``summary.md``, ``normal.png``/``.svg``,
``reduce.png``/``.svg``, ``<network>_curves.png`` per network, and under ``search/`` per stage
``<stage>_alphas.png``, ``<stage>_trajectories.png``, ``<stage>_curves.png`` and all stages' curves
in ``stages_curves.png`` (a folder of images only, which DVC shows as image plots).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..io import atomic_folder, write_json
from .cells import draw_cell
from .content import NETWORKS, Report, headline_metrics
from .figures import alpha_heatmap, op_trajectories, search_curves, stages_curves, training_curves
from .page import Figures, blocks, render_html, render_markdown

__all__ = ["write_report", "SEARCH_FIGURES"]

log = logging.getLogger(__name__)

SEARCH_FIGURES = "search"  # the subfolder of per-stage images


def _has_trajectories(stage) -> bool:
    """Histories written before the op weights were recorded per epoch have none to draw."""
    if all("op_probabilities" in epoch for epoch in stage.history):
        return True
    log.warning("%s's history has no op weights per epoch (rerun the stage to draw them)", stage.name)
    return False


def _draw(report: Report, folder: Path) -> Figures:
    for cell in ("normal", "reduce"):
        draw_cell(report.genotype, cell, folder / cell)
    (folder / SEARCH_FIGURES).mkdir()
    stages = {}
    for stage in report.stages:
        kinds = ("alphas", "trajectories", "curves") if _has_trajectories(stage) else ("alphas", "curves")
        files = {kind: f"{SEARCH_FIGURES}/{stage.name}_{kind}.png" for kind in kinds}
        alpha_heatmap(
            stage.alphas,
            f"{stage.name}: softmax(α) after {len(stage.history)} epochs",
            folder / files["alphas"],
        )
        if "trajectories" in files:
            op_trajectories(
                stage.history,
                f"{stage.name}: op weights at the end of each epoch",
                folder / files["trajectories"],
            )
        search_curves(stage.history, f"search {stage.name} ({stage.cells} cells)", folder / files["curves"])
        stages[stage.name] = files
    overview = f"{SEARCH_FIGURES}/stages_curves.png"
    stages_curves(
        {s.name: s.history for s in report.stages}, "the search stages side by side", folder / overview
    )
    networks = {}
    for network in report.networks:
        networks[network.name] = f"{network.name}_curves.png"
        training_curves(network.history, NETWORKS[network.name], folder / networks[network.name])
    return Figures("normal.png", "reduce.png", overview, stages, networks)  # fmt: skip


def write_report(report: Report, folder: str | Path, metrics_path: str | Path) -> None:
    """Draws the figures and writes the pages into ``folder`` (replaced whole: a failure leaves the
    old folder, or none), then ``metrics_path`` (flat headline metrics)."""
    with atomic_folder(folder) as staging:
        figures = _draw(report, staging)
        content = blocks(report, figures)
        (staging / "index.html").write_text(render_html(content))
        (staging / "summary.md").write_text(render_markdown(content))
    write_json(metrics_path, headline_metrics(report))
    log.info(
        "report written to %s (%s), headline metrics to %s", folder, Path(folder, "index.html"), metrics_path
    )
