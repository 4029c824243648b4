"""Figures of a search and a training run: the softmaxed alphas of a stage as a heat map, the op
probabilities of every edge over the epochs, and the loss / accuracy / schedule curves.

Also the pieces every report drawing shares: one fixed colour per op name (``OP_COLOURS``), the labels of
a cell's states and edges, and ``save_figure``, which writes a figure atomically and byte-for-byte
reproducibly. Figures are ``matplotlib.figure.Figure`` objects drawn without pyplot (no global state).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from ..errors import PdartsError
from ..io import atomic_path
from ..search.pruning import edge_probabilities
from ..search_space import CELL_TYPES, EDGES, PRIMITIVES

__all__ = [
    "OP_COLOURS",
    "CELL_TITLES",
    "node_label",
    "edge_label",
    "math_label",
    "report_style",
    "save_figure",
    "alpha_heatmap",
    "op_trajectories",
    "search_curves",
    "training_curves",
]

#: One colour per op, the same in every figure: the Okabe-Ito palette (colour-blind safe), with
#: ``skip_connect`` black so it stands out from every convolution and pooling, and ``none`` grey.
OP_COLOURS: dict[str, str] = {
    "none": "#999999",
    "max_pool_3x3": "#E69F00",
    "avg_pool_3x3": "#CC79A7",
    "skip_connect": "#000000",
    "sep_conv_3x3": "#0072B2",
    "sep_conv_5x5": "#56B4E9",
    "dil_conv_3x3": "#009E73",
    "dil_conv_5x5": "#D55E00",
}
#: Line styles that tell the op families apart without colour: convolutions solid, pools dashed.
_OP_LINESTYLES = {"none": ":", "max_pool_3x3": "--", "avg_pool_3x3": "--", "skip_connect": "-."}

CELL_TITLES = {"normal": "normal cell", "reduce": "reduction cell"}

DPI = 110
WARMUP_COLOUR = "#e3e3e3"
_WARMUP_LABEL = "warm-up (weights only, α frozen)"
_MARKER_EPOCHS = 12  # with at most this many epochs, points are marked (a single epoch is still visible)

#: rcParams of every report drawing: fixed SVG ids, SVG text kept as text, one font.
_STYLE = {
    "svg.hashsalt": "pdarts",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
}
_METADATA = {"png": {"Software": None}, "svg": {"Date": None}}


def node_label(index: int) -> str:
    """The label of a cell state: input 0 is ``c_{k-2}``, input 1 ``c_{k-1}``, then nodes ``0``.. ``3``."""
    return ("c_{k-2}", "c_{k-1}")[index] if index < 2 else str(index - 2)


def edge_label(source: int, target: int) -> str:
    """``c_{k-2}→0`` for the edge from state ``source`` into state ``target`` (node ``target - 2``)."""
    return f"{node_label(source)}→{node_label(target)}"


def math_label(label: str) -> str:
    """A state or edge label as drawn: the ``c_{..}`` parts in mathtext, so the index is a subscript."""
    parts = label.split("→")
    return " → ".join(f"${part}$" if part.startswith("c_") else part for part in parts)


@contextmanager
def report_style() -> Iterator[None]:
    """The rcParams of every report drawing; build and save a figure inside it."""
    with matplotlib.rc_context(_STYLE):
        yield


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Writes ``figure`` to ``path`` (format from the suffix: png or svg) atomically, without the date or
    software version in the file, so the same figure gives the same bytes every time."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in _METADATA:
        raise PdartsError(f"cannot write figure {path}: give a .png or .svg path")
    with report_style(), atomic_path(path) as tmp:
        figure.savefig(tmp, format=fmt, dpi=figure.dpi, metadata=_METADATA[fmt])
    return path


# --- the alphas of one stage as a heat map -------------------------------------------------------------


def _edge_weights(edge: Mapping[str, Any]) -> dict[str, float]:
    """One edge of an alphas file as ``{op: softmax weight}``: its ``weights``, else softmax of ``alpha``."""
    ops = edge["ops"]
    if "weights" in edge:
        return dict(zip(ops, map(float, edge["weights"])))
    return edge_probabilities(dict(zip(ops, map(float, edge["alpha"]))))


def _weight_table(edges: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str], np.ndarray]:
    """Row labels (edges), columns (ops present on any edge, canonical order) and the weights, NaN where an
    op is not on the edge."""
    try:
        weights = [_edge_weights(edge) for edge in edges]
        rows = [edge_label(edge["source"], edge["target"]) for edge in edges]
    except (KeyError, TypeError, ValueError) as exc:
        raise PdartsError(
            f"alphas: every edge needs source, target, ops and weights or alpha ({exc})"
        ) from None
    ops = [op for op in PRIMITIVES if any(op in edge for edge in weights)]
    table = np.array([[edge.get(op, math.nan) for op in ops] for edge in weights], dtype=float)
    return rows, ops, table


def _colour_norm(tables: Sequence[np.ndarray]) -> Normalize:
    """The colour scale: this figure's min to max weight, so near-uniform stages still show differences."""
    values = np.concatenate([table[~np.isnan(table)] for table in tables])
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-6:
        low, high = low - 0.01, high + 0.01
    return Normalize(vmin=low, vmax=high)


def _decimals(spread: float) -> int:
    """2 decimals, or as many more (up to 4) as near-uniform weights need to differ in print."""
    return int(min(4, max(2, math.ceil(-math.log10(max(spread, 1e-9))) + 1)))


def _text_colour(rgb: Sequence[float]) -> str:
    """Black on light cells, white on dark ones (relative luminance)."""
    red, green, blue = rgb[:3]
    return "black" if 0.2126 * red + 0.7152 * green + 0.0722 * blue > 0.45 else "white"


_ABSENT = {"facecolor": "#d9d9d9", "edgecolor": "#8c8c8c", "hatch": "///"}  # an op not on the edge
_BEST = {"fill": False, "edgecolor": "#D55E00", "lw": 2.2}  # frame of an edge's heaviest op


def _draw_values(ax: Axes, table: np.ndarray, cmap, norm: Normalize, decimals: int) -> None:
    """Writes every weight in its cell, the heaviest op of each edge bold and framed; hatches the ops that
    are not on an edge."""
    for row, values in enumerate(table):
        best = int(np.nanargmax(values))
        for col, value in enumerate(values):
            if math.isnan(value):
                ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, lw=0, **_ABSENT))
                continue
            weight = "bold" if col == best else "normal"
            colour = _text_colour(cmap(norm(value)))
            ax.text(
                col,
                row,
                f"{value:.{decimals}f}",
                ha="center",
                va="center",
                fontsize=7.5,
                color=colour,
                fontweight=weight,
            )
        ax.add_patch(Rectangle((best - 0.46, row - 0.46), 0.92, 0.92, **_BEST))


def _draw_table(ax: Axes, rows, ops, table: np.ndarray, norm: Normalize, decimals: int, cell: str) -> None:
    cmap = matplotlib.colormaps["viridis"]
    ax.imshow(np.ma.masked_invalid(table), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    _draw_values(ax, table, cmap, norm, decimals)
    ax.set_xticks(range(len(ops)), ops, rotation=35, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(rows)), [math_label(row) for row in rows])
    ax.set_xlabel("candidate op")
    ax.set_ylabel("edge (input → node)")
    ax.set_title(CELL_TITLES[cell])
    ax.tick_params(length=0)


def _heatmap_legend(figure: Figure, pruned: bool) -> None:
    handles = [Patch(**_BEST, label="largest weight on the edge (value in bold)")]
    if pruned:
        handles.append(Patch(**_ABSENT, label="op not on this edge (pruned in an earlier stage)"))
    figure.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)


def alpha_heatmap(alphas: Mapping[str, Any], title: str, path: str | Path) -> Path:
    """Draws one stage's softmaxed alphas (an alphas.json mapping) as a heat map per cell type, side by
    side: rows are the 14 edges, columns the ops present on any edge; writes the PNG ``path``."""
    with report_style():
        tables = {cell: _weight_table(_cell_edges(alphas, cell)) for cell in CELL_TYPES}
        norm = _colour_norm([table for _, _, table in tables.values()])
        decimals = _decimals(norm.vmax - norm.vmin)
        widths = [len(ops) for _, ops, _ in tables.values()]
        figure = Figure(figsize=(max(8.0, 3.6 + 0.62 * sum(widths)), 7.6), dpi=DPI, layout="constrained")
        axes = figure.subplots(1, 2, width_ratios=widths)
        for ax, (cell, (rows, ops, table)) in zip(axes, tables.items()):
            _draw_table(ax, rows, ops, table, norm, decimals, cell)
        bar = figure.colorbar(ScalarMappable(norm=norm, cmap="viridis"), ax=axes, shrink=0.8, pad=0.02)
        low, high = f"{norm.vmin:.{decimals}f}", f"{norm.vmax:.{decimals}f}"
        bar.set_label(f"softmax(α)   (colours span this figure's range, {low} – {high})")
        _heatmap_legend(figure, pruned=any(np.isnan(table).any() for _, _, table in tables.values()))
        figure.suptitle(title, fontsize=12)
        return save_figure(figure, path)


def _cell_edges(alphas: Mapping[str, Any], cell: str) -> Sequence[Mapping[str, Any]]:
    edges = alphas.get(cell) if isinstance(alphas, Mapping) else None
    if not isinstance(edges, list) or len(edges) != len(EDGES):
        raise PdartsError(f"alphas: {cell!r} must list {len(EDGES)} edges (an alphas.json mapping)")
    return edges


# --- shared pieces of the per-epoch figures ---------------------------------------------------------------


def _series(history: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """``key`` of every epoch as floats, NaN where it is missing or null (NaN is not drawn)."""
    return np.array([math.nan if entry.get(key) is None else float(entry[key]) for entry in history])


def _epochs(history: Sequence[Mapping[str, Any]], what: str) -> np.ndarray:
    if not history:
        raise PdartsError(f"{what}: the history lists no epochs")
    if any(not isinstance(entry, Mapping) or "epoch" not in entry for entry in history):
        raise PdartsError(f"{what}: every history entry needs an 'epoch'")
    return np.array([int(entry["epoch"]) for entry in history])


def _warmup_spans(history: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """The warm-up epochs as runs ``(first - 0.5, last + 0.5)`` for shading."""
    spans: list[tuple[float, float]] = []
    for entry in history:
        if not entry.get("warmup"):
            continue
        epoch = int(entry["epoch"])
        if spans and spans[-1][1] == epoch - 0.5:
            spans[-1] = (spans[-1][0], epoch + 0.5)
        else:
            spans.append((epoch - 0.5, epoch + 0.5))
    return spans


def _epoch_axis(
    ax: Axes, epochs: np.ndarray, spans: Sequence[tuple[float, float]], label: bool = True
) -> None:
    """Integer epoch ticks, the warm-up shaded, x range covering every epoch."""
    for start, end in spans:
        ax.axvspan(start, end, color=WARMUP_COLOUR, zorder=0, lw=0)
    low, high = int(epochs.min()), int(epochs.max())
    if high - low < 10:  # few epochs: a tick at each (a locator would fall back to fractions for one epoch)
        ax.set_xticks(range(low, high + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
    if label:
        ax.set_xlabel("epoch")


def _plot(ax: Axes, epochs: np.ndarray, values: np.ndarray, **style: Any) -> None:
    marker = "o" if len(epochs) <= _MARKER_EPOCHS else None
    ax.plot(epochs, values, marker=marker, markersize=3.5, lw=1.6, **style)


def _warmup_handle() -> Patch:
    return Patch(facecolor=WARMUP_COLOUR, label=_WARMUP_LABEL)


# --- op probabilities over the epochs ---------------------------------------------------------------------


def _op_probabilities(history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The epochs that carry ``op_probabilities``; raises if none does."""
    kept = [entry for entry in history if isinstance(entry, Mapping) and entry.get("op_probabilities")]
    if not kept:
        raise PdartsError(
            "op_trajectories: no epoch of the search history has 'op_probabilities' "
            "(histories written before they were recorded cannot be drawn this way)"
        )
    for entry in kept:
        for cell in CELL_TYPES:
            edges = entry["op_probabilities"].get(cell)
            if not isinstance(edges, list) or len(edges) != len(EDGES):
                raise PdartsError(
                    f"op_trajectories: epoch {entry.get('epoch')}: op_probabilities[{cell!r}] must list "
                    f"{len(EDGES)} edges of {{op: probability}}"
                )
    return kept


def _edge_panel(ax: Axes, epochs: np.ndarray, history, cell: str, index: int) -> None:
    per_epoch = [entry["op_probabilities"][cell][index] for entry in history]
    for op in PRIMITIVES:
        if any(op in edge for edge in per_epoch):
            values = np.array([float(edge.get(op, math.nan)) for edge in per_epoch])
            _plot(ax, epochs, values, color=OP_COLOURS[op], linestyle=_OP_LINESTYLES.get(op, "-"))
    node, source = EDGES[index]
    ax.set_title(math_label(edge_label(source, node + 2)), fontsize=9, pad=3)
    ax.tick_params(labelsize=7)


#: Where each cell type's triangle of panels sits (figure fractions): fixed margins, nothing cut off.
_TRIANGLES = {"normal": {"top": 0.925, "bottom": 0.545}, "reduce": {"top": 0.445, "bottom": 0.065}}


def _cell_trajectories(figure: Figure, epochs, history, spans, cell: str) -> Axes:
    """A triangle of 14 panels, one row per node, one column per input; returns the free corner above the
    diagonal (for the legend)."""
    grid = figure.add_gridspec(4, 5, left=0.07, right=0.985, hspace=0.6, wspace=0.1, **_TRIANGLES[cell])
    first = None
    for index, (node, source) in enumerate(EDGES):
        ax = figure.add_subplot(grid[node, source], sharex=first, sharey=first)
        first = first or ax
        _edge_panel(ax, epochs, history, cell, index)
        _epoch_axis(ax, epochs, spans, label=node == 3)
        if source == 0:
            ax.set_ylabel("softmax(α)")
        else:
            ax.tick_params(labelleft=False)
    top = _TRIANGLES[cell]["top"]
    figure.text(0.01, top + 0.03, CELL_TITLES[cell], fontsize=13, fontweight="bold", va="bottom")
    corner = figure.add_subplot(grid[0, 2:])
    corner.axis("off")
    return corner


def _trajectory_legend(ax: Axes, history: Sequence[Mapping[str, Any]], warmup: bool) -> None:
    """One legend of the ops drawn (and the warm-up shading), in the free corner of the first triangle."""
    alive = {
        op
        for entry in history
        for cell in CELL_TYPES
        for edge in entry["op_probabilities"][cell]
        for op in edge
    }
    handles: list[Any] = [
        Line2D([], [], color=OP_COLOURS[op], linestyle=_OP_LINESTYLES.get(op, "-"), lw=2, label=op)
        for op in PRIMITIVES
        if op in alive
    ]
    if warmup:
        handles.append(_warmup_handle())
    legend = {"loc": "center", "ncol": 3, "frameon": False, "fontsize": 10, "handlelength": 3}
    ax.legend(handles=handles, title="op (alive in this stage)", title_fontsize=10, **legend)


def op_trajectories(history: Sequence[Mapping[str, Any]], title: str, path: str | Path) -> Path:
    """Draws, per cell type, every edge's op probabilities over the epochs (one small panel per edge, one
    line per op in its fixed colour) from a search history's ``op_probabilities``; writes the PNG ``path``.

    Raises:
        PdartsError: if no epoch of ``history`` has ``op_probabilities``.
    """
    with report_style():
        kept = _op_probabilities(history)
        epochs = _epochs(kept, "op_trajectories")
        spans = _warmup_spans(history)
        figure = Figure(figsize=(12.5, 15.0), dpi=DPI)
        corners = [_cell_trajectories(figure, epochs, kept, spans, cell) for cell in CELL_TYPES]
        _trajectory_legend(corners[0], kept, warmup=bool(spans))
        figure.suptitle(title, fontsize=14, y=0.995)
        return save_figure(figure, path)


# --- loss, accuracy and schedules -------------------------------------------------------------------------


def _curve_panel(ax: Axes, epochs, history, lines: Sequence[tuple[str, str, str]], ylabel: str, scale=1.0):
    """Draws the ``(key, label, colour)`` lines whose key the history records (``scale`` times the values)."""
    drawn = [key for key, _, _ in lines if any(entry.get(key) is not None for entry in history)]
    for key, label, colour in lines:
        if key in drawn:
            _plot(ax, epochs, _series(history, key) * scale, color=colour, label=label)
    if not drawn:
        ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center", color="#666666")
    ax.set_ylabel(ylabel)
    ax.set_title(ylabel.split(" (")[0])


def _rate_panel(ax: Axes, epochs, history, key: str, ylabel: str, colour: str) -> None:
    """One schedule (a rate), its axis from 0 so that a rate held at 0 reads as 0."""
    _curve_panel(ax, epochs, history, [(key, ylabel, colour)], ylabel)
    values = _series(history, key)
    top = float(np.nanmax(values)) if not np.isnan(values).all() else 0.0
    span = top if top > 0 else 1.0
    ax.set_ylim(-0.03 * span, 1.08 * span)  # a line at 0 stays visible above the axis


def _finish_panels(axes: Sequence[Axes], epochs: np.ndarray, spans) -> None:
    for ax in axes:
        _epoch_axis(ax, epochs, spans)
        ax.grid(alpha=0.3)


_SPLITS = ("#0072B2", "#D55E00")  # weights split, architecture split


_SEARCH_SPLITS = [
    ("train", "weights split (train)", _SPLITS[0]),
    ("arch", "architecture split (arch)", _SPLITS[1]),
]


def _search_row(axes: Sequence[Axes], history: Sequence[Mapping[str, Any]], spans) -> np.ndarray:
    """One search history on a row of 4 axes: loss, accuracy, learning rate, skip-dropout rate."""
    epochs = _epochs(history, "search_curves")
    loss, acc, lr, skip = axes
    _curve_panel(loss, epochs, history, [(f"{k}_loss", label, c) for k, label, c in _SEARCH_SPLITS], "loss")
    _curve_panel(
        acc, epochs, history, [(f"{k}_acc", label, c) for k, label, c in _SEARCH_SPLITS], "accuracy (%)", 100
    )
    _rate_panel(lr, epochs, history, "lr", "learning rate", "#009E73")
    _rate_panel(skip, epochs, history, "skip_dropout", "skip-connect dropout rate", "#000000")
    _finish_panels(axes, epochs, spans)
    return epochs


def _search_legend(figure: Figure, ax: Axes, warmup: bool) -> None:
    handles = ax.get_legend_handles_labels()[0] + ([_warmup_handle()] if warmup else [])
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)


def search_curves(history: Sequence[Mapping[str, Any]], title: str, path: str | Path) -> Path:
    """Draws a search history in one row: loss and accuracy on the weights split (train) and the
    architecture split (arch, absent in warm-up), the learning rate and the skip-connect dropout rate;
    writes the PNG ``path``."""
    with report_style():
        spans = _warmup_spans(history)
        figure = Figure(figsize=(16.0, 4.2), dpi=DPI, layout="constrained")
        axes = figure.subplots(1, 4)
        _search_row(axes, history, spans)
        _search_legend(figure, axes[0], bool(spans))
        figure.suptitle(title, fontsize=12)
        return save_figure(figure, path)


def stages_curves(histories: Mapping[str, Sequence[Mapping[str, Any]]], title: str, path: str | Path) -> Path:
    """Every search stage's curves, one row per stage (named by the keys of ``histories``, in order),
    the columns sharing their y axis so the stages compare at a glance; writes the PNG ``path``."""
    if not histories:
        raise PdartsError("stages_curves: no search stage to draw")
    with report_style():
        figure = Figure(figsize=(16.0, 0.6 + 3.3 * len(histories)), dpi=DPI, layout="constrained")
        grid = figure.subplots(len(histories), 4, sharey="col", squeeze=False)
        warmup = False
        for row, (name, history) in zip(grid, histories.items()):
            spans = _warmup_spans(history)
            warmup |= bool(spans)
            _search_row(row, history, spans)
            row[0].set_ylabel(f"{name}\nloss")
        _search_legend(figure, grid[0][0], warmup)
        figure.suptitle(title, fontsize=12)
        return save_figure(figure, path)


def training_curves(history: Sequence[Mapping[str, Any]], title: str, path: str | Path) -> Path:
    """Draws a training history: loss, accuracy, learning rate and, where recorded, the drop-path rate
    (validation or test lines too where the history has them); writes the PNG ``path``."""
    with report_style():
        epochs = _epochs(history, "training_curves")
        has_drop_path = any("drop_path" in entry for entry in history)
        figure = Figure(figsize=(4.0 * (3 + has_drop_path), 4.2), dpi=DPI, layout="constrained")
        axes = figure.subplots(1, 3 + has_drop_path)
        splits = [
            ("train", "train", _SPLITS[0]),
            ("valid", "validation", _SPLITS[1]),
            ("test", "test", "#009E73"),
        ]
        _curve_panel(axes[0], epochs, history, [(f"{k}_loss", label, c) for k, label, c in splits], "loss")
        _curve_panel(
            axes[1], epochs, history, [(f"{k}_acc", label, c) for k, label, c in splits], "accuracy (%)", 100
        )
        _rate_panel(axes[2], epochs, history, "lr", "learning rate", "#009E73")
        if has_drop_path:
            _rate_panel(axes[3], epochs, history, "drop_path", "drop-path rate", "#000000")
        _finish_panels(axes, epochs, [])
        axes[0].legend(loc="best")
        figure.suptitle(title, fontsize=12)
        return save_figure(figure, path)
