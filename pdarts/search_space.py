"""Candidate op names, the cell's edges, and the op names still searched per edge (PDARTS.md 2).

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
    "full_candidates",
    "validate_candidates",
    "canonical_order",
]

#: The candidate ops in their canonical order (PDARTS.md section 2); every op list follows it.
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


def validate_candidates(data: object, what: str = "candidates") -> Candidates:
    """Checks a candidates mapping read from JSON and returns it in canonical form.

    Raises:
        PdartsError: naming the first problem found.
    """
    if not isinstance(data, Mapping):
        raise PdartsError(f"{what}: expected an object with 'normal' and 'reduce', got {type(data).__name__}")
    result: Candidates = {}
    for cell in CELL_TYPES:
        if cell not in data:
            raise PdartsError(f"{what}: missing cell {cell!r} (expected keys 'normal' and 'reduce')")
        edges = data[cell]
        if not isinstance(edges, list) or len(edges) != NUM_EDGES:
            got = len(edges) if isinstance(edges, list) else type(edges).__name__
            raise PdartsError(f"{what}: {cell!r} must list {NUM_EDGES} edges, got {got}")
        cell_ops = []
        for index, ops in enumerate(edges):
            where = f"{what}: {cell} edge {index}"
            if not isinstance(ops, (list, tuple)) or not ops:
                raise PdartsError(f"{where}: expected a non-empty list of op names")
            for op in ops:
                if op not in PRIMITIVES:
                    raise PdartsError(f"{where}: unknown op {op!r}; known ops: {', '.join(PRIMITIVES)}")
            if len(set(ops)) != len(ops):
                raise PdartsError(f"{where}: op names repeat in {list(ops)}")
            cell_ops.append(canonical_order(ops))
        result[cell] = cell_ops
    return result
