"""Cell diagrams of a genotype, drawn like the cell figures of the DARTS and P-DARTS papers.

``cell_drawing`` turns one cell's 8 ``(op, input)`` pairs into a ``CellDrawing``: the states, where they
sit, and every drawn edge with its op label, its curvature and where its label goes (pure data, no
matplotlib). ``draw_cell`` draws exactly that description into ``stem.png`` and ``stem.svg``: inputs on
the left (green), the 4 intermediate nodes in the middle (blue), the output on the right (yellow), each
op edge in its op's colour (``figures.OP_COLOURS``). The same genotype always gives the same bytes.

Geometry is in data units of half an inch, drawn at equal aspect, so a curve computed here (matplotlib's
``arc3``: a quadratic Bezier whose control point is the chord's midpoint moved ``rad`` times the chord
length to its right) is the curve on the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

from ..errors import PdartsError
from ..genotype import PAIRS_PER_NODE, Genotype
from ..search_space import CELL_TYPES, NUM_NODES
from .figures import CELL_TITLES, DPI, OP_COLOURS, math_label, node_label, report_style, save_figure

__all__ = ["DrawnEdge", "CellDrawing", "OUTPUT", "cell_drawing", "draw_cell"]

OUTPUT = "c_{k}"
FIGSIZE = (9.0, 5.0)  # inches
_UNIT = 0.5  # inches per data unit
_AXES = (0.01, 0.13, 0.98, 0.76)  # left, bottom, width, height of the drawing area (figure fractions)
XLIM = (0.0, FIGSIZE[0] * _AXES[2] / _UNIT)  # 17.64 units
YLIM = (0.0, FIGSIZE[1] * _AXES[3] / _UNIT)  # 7.6 units

#: Where the states sit: inputs left, nodes 0..3 zig-zagging left to right, output right.
_POSITIONS = {
    "c_{k-2}": (1.0, 5.1),
    "c_{k-1}": (1.0, 2.5),
    "0": (5.0, 6.7),
    "1": (7.6, 0.9),
    "2": (10.5, 6.7),
    "3": (13.1, 0.9),
    OUTPUT: (16.5, 3.8),
}
_INPUT_SIZE, _NODE_SIZE, _OUTPUT_SIZE = (1.5, 0.8), (0.8, 0.8), (1.2, 0.8)  # width, height in units
_FILL = {"c_{k-2}": "#b8e0b0", "c_{k-1}": "#7fc97f", OUTPUT: "#f5e08a"}
_NODE_FILL = "#a6cee3"
_CONCAT_COLOUR = "#8c8c8c"

LABEL_FONTSIZE = 8.5
_CHAR_WIDTH = 0.6 * LABEL_FONTSIZE / 72 / _UNIT  # DejaVu Sans, op names: about 0.6 em a character
_LABEL_HEIGHT = 1.9 * LABEL_FONTSIZE / 72 / _UNIT  # text plus the box's padding
_LABEL_PAD = 0.25  # units added to the label width for the box's padding
_RADS = (0.0, 0.15, -0.15, 0.3, -0.3, 0.45, -0.45, 0.6, -0.6)  # curvatures tried, straightest first
_LABEL_TS = (0.5, 0.42, 0.58, 0.34, 0.66, 0.27, 0.73, 0.2, 0.8)  # label spots along an edge, middle first
_CLEARANCE = 0.15  # units kept free around a node a curve passes


@dataclass(frozen=True)
class DrawnEdge:
    """One arrow: from state ``source`` to ``target`` (labels), carrying the op name ``label`` ("" for an
    edge into the output, which concatenates the nodes), bent by ``rad`` (``arc3``), label centred at
    ``label_xy``."""

    source: str
    target: str
    label: str
    rad: float = 0.0
    label_xy: tuple[float, float] | None = None


@dataclass(frozen=True)
class CellDrawing:
    """Everything ``draw_cell`` draws: the states (``c_{k-2}``, ``c_{k-1}``, ``0``..``3``, ``c_{k}``),
    the edges (8 op edges, then 4 concat edges) and the state positions in data units."""

    cell_type: str
    nodes: tuple[str, ...]
    edges: tuple[DrawnEdge, ...]
    positions: dict[str, tuple[float, float]] = field(hash=False)

    def op_edges(self) -> set[tuple[str, str, str]]:
        """``(source, target, op)`` of every op edge."""
        return {(edge.source, edge.target, edge.label) for edge in self.edges if edge.label}


def _size(node: str) -> tuple[float, float]:
    if node == OUTPUT:
        return _OUTPUT_SIZE
    return _INPUT_SIZE if node.startswith("c_") else _NODE_SIZE


def _box(centre: Sequence[float], size: Sequence[float], grow: float = 0.0) -> tuple[float, ...]:
    """``(x0, y0, x1, y1)`` of a box of ``size`` around ``centre``, grown by ``grow`` on every side."""
    (x, y), (width, height) = centre, size
    return (x - width / 2 - grow, y - height / 2 - grow, x + width / 2 + grow, y + height / 2 + grow)


def _curve(start: Sequence[float], end: Sequence[float], rad: float, ts: Sequence[float]) -> np.ndarray:
    """Points at parameters ``ts`` of matplotlib's ``arc3`` curve from ``start`` to ``end``."""
    (x1, y1), (x2, y2) = start, end
    control = np.array([(x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)])
    t = np.asarray(ts, dtype=float)[:, None]
    return (1 - t) ** 2 * np.asarray(start) + 2 * t * (1 - t) * control + t**2 * np.asarray(end)


def _inside(points: np.ndarray, box: Sequence[float]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return (points[:, 0] > x0) & (points[:, 0] < x1) & (points[:, 1] > y0) & (points[:, 1] < y1)


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Area shared by two ``(x0, y0, x1, y1)`` boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(width, 0.0) * max(height, 0.0)


_SAMPLES = np.linspace(0.0, 1.0, 80)


def _route(source: str, target: str, taken: set[tuple[str, str, float]]) -> float:
    """The straightest curvature whose curve passes no other state (a clearly bent one for a second edge
    between the same two states); the least-crossing one if every curvature touches a state."""
    positions = _POSITIONS
    others = [_box(positions[n], _size(n), _CLEARANCE) for n in positions if n not in (source, target)]

    def hits(rad: float) -> int:
        points = _curve(positions[source], positions[target], rad, _SAMPLES)
        return sum(int(_inside(points, box).sum()) for box in others)

    twin = any(key[:2] == (source, target) for key in taken)  # a second edge between the same states
    free = [rad for rad in _RADS if (source, target, rad) not in taken and (not twin or abs(rad) >= 0.3)]
    return min(free, key=lambda rad: (hits(rad) > 0, hits(rad), free.index(rad)))


def _label_box(centre: Sequence[float], label: str) -> tuple[float, ...]:
    return _box(centre, (len(label) * _CHAR_WIDTH + _LABEL_PAD, _LABEL_HEIGHT))


def _place_label(
    edge: DrawnEdge, placed: list[tuple[float, ...]], curves: list[np.ndarray]
) -> tuple[float, float]:
    """The spot along ``edge`` whose label box overlaps the fewest labels already placed, states and other
    edges (in that order of weight), nearest the middle on a tie."""
    start, end = _POSITIONS[edge.source], _POSITIONS[edge.target]
    spots = _curve(start, end, edge.rad, _LABEL_TS)
    node_boxes = [_box(_POSITIONS[n], _size(n), 0.05) for n in _POSITIONS]

    def cost(index: int) -> float:
        box = _label_box(spots[index], edge.label)
        labels = sum(_overlap(box, other) for other in placed)
        states = sum(_overlap(box, other) for other in node_boxes)
        lines = sum(int(_inside(curve, box).sum()) for curve in curves)
        return 100 * labels + 100 * states + 0.02 * lines + 0.01 * index

    best = min(range(len(spots)), key=cost)
    return float(round(spots[best][0], 4)), float(round(spots[best][1], 4))


def _check_pairs(pairs: Sequence[Sequence], cell_type: str) -> None:
    if cell_type not in CELL_TYPES:
        raise PdartsError(f"cell type must be one of {', '.join(CELL_TYPES)}, got {cell_type!r}")
    if len(pairs) != NUM_NODES * PAIRS_PER_NODE:
        raise PdartsError(f"{cell_type} cell: expected {NUM_NODES * PAIRS_PER_NODE} (op, input) pairs")
    for index, (op, source) in enumerate(pairs):
        if op not in OP_COLOURS or not 0 <= source < 2 + index // PAIRS_PER_NODE:
            raise PdartsError(
                f"{cell_type} cell pair {index}: ({op!r}, {source!r}) is not an (op, input) pair"
            )


def cell_drawing(pairs: Sequence[Sequence], cell_type: str) -> CellDrawing:
    """The drawing of one cell from its genotype pairs: node ``k`` gets pairs ``2k`` and ``2k+1``; input 0
    is ``c_{k-2}``, 1 is ``c_{k-1}``, ``i >= 2`` is node ``i - 2``; every node feeds the output."""
    _check_pairs(pairs, cell_type)
    wanted = [
        (node_label(source), str(index // PAIRS_PER_NODE), op) for index, (op, source) in enumerate(pairs)
    ]
    wanted += [(str(node), OUTPUT, "") for node in range(NUM_NODES)]
    taken: set[tuple[str, str, float]] = set()
    routed = []
    for source, target, label in wanted:
        rad = _route(source, target, taken)
        taken.add((source, target, rad))
        routed.append(DrawnEdge(source, target, label, rad))
    curves = [_curve(_POSITIONS[e.source], _POSITIONS[e.target], e.rad, _SAMPLES) for e in routed]
    placed: list[tuple[float, ...]] = []
    edges = []
    for index, edge in enumerate(routed):
        if edge.label:
            others = curves[:index] + curves[index + 1 :]
            label_xy = _place_label(edge, placed, others)
            placed.append(_label_box(label_xy, edge.label))
            edge = DrawnEdge(edge.source, edge.target, edge.label, edge.rad, label_xy)
        edges.append(edge)
    return CellDrawing(cell_type, tuple(_POSITIONS), tuple(edges), dict(_POSITIONS))


def _draw_states(ax, drawing: CellDrawing) -> dict[str, FancyBboxPatch]:
    patches = {}
    for node in drawing.nodes:
        (x, y), (width, height) = drawing.positions[node], _size(node)
        patch = FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0,rounding_size=0.15",
            facecolor=_FILL.get(node, _NODE_FILL),
            edgecolor="black",
            lw=1.1,
            zorder=3,
        )
        patches[node] = ax.add_patch(patch)
        ax.text(x, y, math_label(node), ha="center", va="center", fontsize=12, zorder=4)
    return patches


def _draw_edge(ax, edge: DrawnEdge, drawing: CellDrawing, patches: dict[str, FancyBboxPatch]) -> None:
    colour = OP_COLOURS[edge.label] if edge.label else _CONCAT_COLOUR
    arrow = FancyArrowPatch(
        drawing.positions[edge.source],
        drawing.positions[edge.target],
        patchA=patches[edge.source],
        patchB=patches[edge.target],
        connectionstyle=f"arc3,rad={edge.rad}",
        arrowstyle="-|>",
        mutation_scale=13,
        shrinkA=0,
        shrinkB=1,
        color=colour,
        lw=1.6 if edge.label else 1.2,
        zorder=2 if edge.label else 1,
    )
    ax.add_patch(arrow)
    if edge.label:
        box = {
            "boxstyle": "round,pad=0.25",
            "facecolor": "white",
            "edgecolor": colour,
            "lw": 1.2,
            "alpha": 0.95,
        }
        x, y = edge.label_xy
        ax.text(x, y, edge.label, ha="center", va="center", fontsize=LABEL_FONTSIZE, bbox=box, zorder=5)


def _legend(figure: Figure) -> None:
    handles = [
        Patch(facecolor=_FILL["c_{k-2}"], edgecolor="black", label="input $c_{k-2}$: output of cell k−2"),
        Patch(facecolor=_FILL["c_{k-1}"], edgecolor="black", label="input $c_{k-1}$: output of cell k−1"),
        Patch(facecolor=_NODE_FILL, edgecolor="black", label="nodes 0–3: sum of their 2 op edges"),
        Patch(facecolor=_FILL[OUTPUT], edgecolor="black", label="output $c_{k}$: concat of nodes 0–3 (grey)"),
    ]
    figure.legend(
        handles=handles,
        loc="lower center",
        ncol=2,
        frameon=False,
        fontsize=8.5,
        handlelength=1.5,
        columnspacing=3.0,
    )


def draw_cell(genotype: Genotype, cell_type: str, stem: str | Path) -> CellDrawing:
    """Draws the ``cell_type`` cell of ``genotype`` into ``stem.png`` and ``stem.svg`` (written atomically,
    the same bytes for the same genotype) and returns the drawing it drew."""
    drawing = cell_drawing(getattr(genotype, cell_type) if cell_type in CELL_TYPES else (), cell_type)
    stem = Path(stem)
    with report_style():
        figure = Figure(figsize=FIGSIZE, dpi=DPI)
        ax = figure.add_axes(_AXES)
        ax.set(xlim=XLIM, ylim=YLIM, aspect="equal")
        ax.axis("off")
        patches = _draw_states(ax, drawing)
        for edge in drawing.edges:
            _draw_edge(ax, edge, drawing, patches)
        figure.suptitle(CELL_TITLES[cell_type], fontsize=15, y=0.975)
        _legend(figure)
        for suffix in ("png", "svg"):
            save_figure(figure, stem.parent / f"{stem.name}.{suffix}")
    return drawing
