"""Search-space approximation between stages (docs/algorithm.md#search-space-approximation).

After stage k, every edge keeps the ``keep`` op names with the largest softmax weight over its alive
ops, in the canonical order; ``none`` competes like any op.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import PdartsError
from ..search_space import CELL_TYPES, Candidates, canonical_order

__all__ = [
    "EdgeAlphas",
    "CellAlphas",
    "edge_probabilities",
    "prune_candidates",
    "pruning_margin",
    "candidates_record",
]

#: One edge's raw architecture parameters, by op name (canonical order).
EdgeAlphas = Mapping[str, float]
#: Per cell type, the 14 edges' alphas.
CellAlphas = Mapping[str, Sequence[EdgeAlphas]]


def edge_probabilities(alphas: EdgeAlphas) -> dict[str, float]:
    """softmax over one edge's alive ops, by op name (numerically stable)."""
    top = max(alphas.values())
    exps = {op: math.exp(a - top) for op, a in alphas.items()}
    total = sum(exps.values())
    return {op: e / total for op, e in exps.items()}


def _keep_heaviest(weights: Mapping[str, float], keep: int) -> tuple[str, ...]:
    # sorted() is stable: among equal weights the op earlier in canonical order wins.
    ordered = sorted(canonical_order(list(weights)), key=lambda op: -weights[op])
    return canonical_order(ordered[:keep])


def prune_candidates(alphas: CellAlphas, keep: int) -> Candidates:
    """The candidate lists of the next stage: the ``keep`` heaviest ops on every edge.

    Args:
        alphas: the finished stage's raw alphas per cell type and edge, by op name.
        keep: ops kept per edge (the next stage's ops searched).
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    return {
        cell: [_keep_heaviest(edge_probabilities(edge), keep) for edge in alphas[cell]] for cell in CELL_TYPES
    }


def pruning_margin(alphas: CellAlphas, keep: int) -> float | None:
    """How far the pruning to ``keep`` ops is from a tie: over every edge of both cell types, the
    smallest gap between the weakest kept op's and the strongest dropped op's softmax weight.

    None when nothing is dropped (``keep`` is at least every edge's number of ops). A gap of the
    size floating-point noise moves (another thread count, another memory layout) means the
    pruning is decided by rounding, not by the search.
    """
    gaps = []
    for cell in CELL_TYPES:
        for edge in alphas[cell]:
            weights = sorted(edge_probabilities(edge).values(), reverse=True)
            if keep < len(weights):
                gaps.append(weights[keep - 1] - weights[keep])
    return min(gaps) if gaps else None


def candidates_record(alphas: CellAlphas, keep: int, stage: str, source: str) -> dict[str, Any]:
    """The prune step's file: the candidates of ``stage``, the ``keep`` heaviest ops on every edge of
    the alphas read from ``source``. Refuses a ``keep`` those alphas cannot give: the ops searched
    must be at least 1 and must not grow across stages."""
    alive = min(len(edge) for cell in alphas.values() for edge in cell)
    if not 1 <= keep <= alive:
        raise PdartsError(
            f"stage {stage or '?'} would keep {keep} ops per edge, but {source} has only {alive} on some "
            "edge: ops searched must be >= 1 and must not grow across stages"
        )
    candidates = prune_candidates(alphas, keep)
    return {
        "stage": stage,
        "keep": keep,
        "pruned_from": source,
        **{cell: [list(ops) for ops in edges] for cell, edges in candidates.items()},
    }
