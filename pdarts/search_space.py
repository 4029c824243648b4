"""Candidate op names, the cell's edges, and the op names searched per edge (docs/algorithm.md#search-space).

A cell has 2 inputs and ``NUM_NODES`` = 4 intermediate nodes; node ``j`` takes every earlier state,
so there are 14 edges, in DARTS order: node0 <- {0,1}; node1 <- {0,1,2}; node2 <- {0..3};
node3 <- {0..4}. Search state is kept by name: for each cell type a list of 14 tuples of op names,
always in the canonical ``PRIMITIVES`` order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import PdartsError

__all__ = [
    "PRIMITIVES",
    "NUM_NODES",
    "CELL_TYPES",
    "EDGES",
    "NUM_EDGES",
    "Candidates",
    "canonical_order",
    "cell_edge_lists",
    "check_op_names",
    "full_candidates",
    "initial_alphas",
    "validate_candidates",
]

#: The candidate ops in canonical order (docs/algorithm.md#candidate-operations); every op list follows it.
PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

NUM_NODES = 4
CELL_TYPES: tuple[str, str] = ("normal", "reduce")

#: (node, input) for every edge in DARTS order; input 0 = c_{k-2}, 1 = c_{k-1}, 2.. = earlier nodes.
EDGES: tuple[tuple[int, int], ...] = tuple(
    (node, source) for node in range(NUM_NODES) for source in range(2 + node)
)
NUM_EDGES = len(EDGES)  # 14

#: cell type -> per edge, the op names searched on it (canonical order).
Candidates = dict[str, list[tuple[str, ...]]]


def canonical_order(ops: Sequence[str]) -> tuple[str, ...]:
    """Returns ``ops`` sorted into the canonical ``PRIMITIVES`` order."""
    return tuple(sorted(ops, key=PRIMITIVES.index))


def full_candidates(ops: Sequence[str] = PRIMITIVES) -> Candidates:
    """The search space of stage 1: the same ``ops`` on every edge of both cell types."""
    edge_ops = canonical_order(ops)
    return {cell: [edge_ops] * NUM_EDGES for cell in CELL_TYPES}


def initial_alphas(ops: Sequence[str]) -> dict[str, list[dict]]:
    """The search space as an alphas file: ``ops`` on every edge, all alphas zero (uniform)."""
    ops = canonical_order(ops)
    return {
        cell: [
            {"source": source, "target": node + 2, "ops": list(ops), "alpha": [0.0] * len(ops)}
            for node, source in EDGES
        ]
        for cell in CELL_TYPES
    }


def check_op_names(ops: Sequence[str], where: str) -> None:
    """Refuses an op name that is not a candidate op, or one given twice."""
    for op in ops:
        if op not in PRIMITIVES:
            raise PdartsError(f"{where}: unknown op {op!r}; known ops: {', '.join(PRIMITIVES)}")
    if len(set(ops)) != len(ops):
        raise PdartsError(f"{where}: op names repeat in {list(ops)}")


def cell_edge_lists(data: object, what: str, order_note: str = "") -> dict[str, list]:
    """The edge list of each cell type in a mapping read from JSON (candidates, alphas), checked to
    hold both cell types with ``NUM_EDGES`` edges each; the edges themselves are the caller's."""
    if not isinstance(data, Mapping):
        raise PdartsError(f"{what}: expected an object with 'normal' and 'reduce', got {type(data).__name__}")
    lists = {}
    for cell in CELL_TYPES:
        if cell not in data:
            raise PdartsError(f"{what}: missing cell {cell!r} (expected keys 'normal' and 'reduce')")
        edges = data[cell]
        if not isinstance(edges, list) or len(edges) != NUM_EDGES:
            got = len(edges) if isinstance(edges, list) else type(edges).__name__
            raise PdartsError(f"{what}: {cell!r} must list {NUM_EDGES} edges{order_note}, got {got}")
        lists[cell] = edges
    return lists


def validate_candidates(data: object, what: str = "candidates") -> Candidates:
    """Checks a candidates mapping read from JSON and returns it in canonical form.

    Raises:
        PdartsError: naming the first problem found.
    """
    result: Candidates = {}
    for cell, edges in cell_edge_lists(data, what).items():
        cell_ops = []
        for index, ops in enumerate(edges):
            where = f"{what}: {cell} edge {index}"
            if not isinstance(ops, (list, tuple)) or not ops:
                raise PdartsError(f"{where}: expected a non-empty list of op names")
            check_op_names(ops, where)
            cell_ops.append(canonical_order(ops))
        result[cell] = cell_ops
    return result
