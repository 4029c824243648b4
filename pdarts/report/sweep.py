"""The seeds sweep's report: its table and two figures, in ``index.html`` and ``summary.md``.

``errors.png``: each method's test error and parameters, one point per seed, with mean ± std.
``choices.png``: per method and cell type, how many seeds chose each op on each edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..io import atomic_folder
from ..search_space import CELL_TYPES, EDGES, PRIMITIVES
from .figures import CELL_TITLES, DPI, edge_label, math_label, report_style, save_figure
from .page import render_html, render_markdown

__all__ = ["write_sweep_report"]

METHOD_COLOURS = {"pdarts": "#0072B2", "darts": "#D55E00", "random": "#999999"}


def _spread_panel(ax, summary: Mapping[str, Any], metric: str, scale: float, label: str) -> None:
    methods = list(summary["methods"])
    for x, method in enumerate(methods):
        values = np.array(summary["methods"][method][metric]["values"], dtype=float) * scale
        colour = METHOD_COLOURS.get(method, "#000000")
        jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(x + jitter, values, color=colour, alpha=0.6, s=22, zorder=3)
        mean, std = values.mean(), (values.std(ddof=1) if len(values) > 1 else 0.0)
        ax.errorbar(x + 0.3, mean, yerr=std, fmt="D", color=colour, capsize=4, ms=5, zorder=4)
    ax.set_xticks(range(len(methods)), methods)
    ax.set_xlim(-0.5, len(methods) - 0.3)
    ax.set_ylabel(label)
    ax.grid(axis="y", alpha=0.3)


def sweep_errors(summary: Mapping[str, Any], path: str | Path) -> Path:
    """Test error and parameters per method: the seeds as points, mean ± std (sample) beside them."""
    with report_style():
        figure = Figure(figsize=(8.5, 3.6), dpi=DPI, layout="constrained")
        errors, params = figure.subplots(1, 2)
        _spread_panel(errors, summary, "top1_err", 100.0, "top-1 test error (%)")
        _spread_panel(params, summary, "params", 1e-6, "parameters (M)")
        seeds = len(summary["seeds"])
        figure.suptitle(f"{seeds} seeds per method: points are seeds, diamonds mean ± std", fontsize=11)
        return save_figure(figure, path)


def _choice_table(choices: Mapping[str, Mapping[str, int]]) -> tuple[list[str], np.ndarray]:
    ops = [op for op in PRIMITIVES if op != "none"]
    rows = [edge_label(source, node + 2) for node, source in EDGES]
    table = np.array([[choices.get(row, {}).get(op, 0) for op in ops] for row in rows], dtype=float)
    return ops, table


def sweep_choices(summary: Mapping[str, Any], path: str | Path) -> Path:
    """How many seeds chose each op on each edge, per method (rows) and cell type (columns)."""
    methods = list(summary["methods"])
    seeds = len(summary["seeds"])
    cmap = matplotlib.colormaps["Blues"]
    with report_style():
        figure = Figure(figsize=(10.0, 0.6 + 5.2 * len(methods)), dpi=DPI, layout="constrained")
        axes = np.atleast_2d(figure.subplots(len(methods), 2, squeeze=False))
        for row, method in enumerate(methods):
            for ax, cell in zip(axes[row], CELL_TYPES):
                ops, table = _choice_table(summary["methods"][method]["choices"][cell])
                ax.imshow(table, cmap=cmap, vmin=0, vmax=seeds, aspect="auto", interpolation="nearest")
                for (r, c), count in np.ndenumerate(table):
                    if count:
                        colour = "white" if count > seeds / 2 else "black"
                        ax.text(c, r, f"{int(count)}", ha="center", va="center", fontsize=8, color=colour)
                ax.set_xticks(range(len(ops)), ops, rotation=35, ha="right", rotation_mode="anchor")
                ax.set_yticks(range(len(EDGES)), [math_label(edge_label(s, n + 2)) for n, s in EDGES])
                ax.set_title(f"{method}: {CELL_TITLES[cell]}")
                ax.tick_params(length=0)
        figure.suptitle(f"how many of the {seeds} seeds chose each op on each edge", fontsize=11)
        return save_figure(figure, path)


def _mean_std(entry: Mapping[str, Any] | None, scale: float = 1.0, digits: int = 2) -> str:
    if entry is None:
        return "—"
    return f"{entry['mean'] * scale:.{digits}f} ± {entry['std'] * scale:.{digits}f}"


def _blocks(summary: Mapping[str, Any]) -> list[tuple]:
    rows = []
    for method, entry in summary["methods"].items():
        errors = ", ".join(f"{100 * v:.2f}" for v in entry["top1_err"]["values"])
        margin = entry["margin"]
        rows.append(
            [
                method,
                _mean_std(entry["top1_err"], 100.0),
                errors,
                _mean_std(entry["params"], 1e-6, 3),
                _mean_std(entry["search_seconds"], 1.0, 0),
                _mean_std(entry["skip_connects"], 1.0, 1),
                _mean_std(entry.get("transfer_err"), 100.0),
                "—" if margin is None else f"{min(margin['values']):.2g}",
            ]
        )
    header = ["method", "top-1 error (%)", "per seed (%)", "params (M)", "search (s)", "skips (normal)",
              "transfer error (%)", "smallest margin"]  # fmt: skip
    seeds = ", ".join(map(str, summary["seeds"]))
    return [
        ("h1", "Seeds sweep"),
        (
            "p",
            f"Seeds {seeds}; mean ± sample standard deviation over them. The smallest margin is the "
            "smallest gap, over all seeds, between a kept and a dropped op at any pruning or at the "
            "derivation: near zero, a decision was made by noise.",
        ),  # fmt: skip
        ("table", header, rows),
        ("images", [("errors.png", "test error and parameters per seed")]),
        ("images", [("choices.png", "how often each (edge, op) was chosen")]),
    ]


def write_sweep_report(summary: Mapping[str, Any], folder: str | Path) -> None:
    """``index.html``, ``summary.md``, ``errors.png`` and ``choices.png`` in ``folder`` (replaced whole)."""
    with atomic_folder(folder) as staging:
        sweep_errors(summary, staging / "errors.png")
        sweep_choices(summary, staging / "choices.png")
        content = _blocks(summary)
        (staging / "index.html").write_text(render_html(content, title="P-DARTS seeds sweep"))
        (staging / "summary.md").write_text(render_markdown(content))
