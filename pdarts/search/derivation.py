"""Deriving the discrete genotype from the last stage, with the skip-connect cap.

Works on op weights P (softmax of the alphas, by op name per edge). ``none`` is never chosen:
its weight is set to 0 without renormalising. In the normal cell, while more than M kept edges
carry ``skip_connect``, the weakest of them loses its skip (P set to 0) and ops and edges are
chosen again; the cap only ever reduces the number of skips. See
docs/algorithm.md#genotype-derivation-and-the-skip-connect-cap.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from ..errors import PdartsError
from ..genotype import CONCAT, Genotype
from ..search_space import EDGES, NUM_NODES
from .pruning import CellAlphas, edge_probabilities

__all__ = [
    "MAX_CAP",
    "all_caps_record",
    "cap_skip_connections",
    "count_skips",
    "derive_all_caps",
    "derive_cell",
    "derive_genotype",
    "derivation_margin",
]

log = logging.getLogger(__name__)

#: A normal cell has 8 kept edges, so M >= 8 means no cap; the per-cap genotypes run 0..8.
MAX_CAP = 8
SKIP = "skip_connect"

Weights = Sequence[Mapping[str, float]]  # per edge: op name -> P


def _best_op(weights: Mapping[str, float]) -> str:
    # max() returns the first maximal op: ties go to the earlier op in canonical order.
    return max((op for op in weights if op != "none"), key=lambda op: weights[op])


def derive_cell(weights: Weights) -> tuple[list[str], list[int]]:
    """One derivation: the best non-none op of every edge and the kept edges.

    Returns:
        ``best`` (op name per edge) and ``kept`` (indices of the 2 strongest incoming edges of
        every node, ascending).
    """
    best = [_best_op(w) for w in weights]
    kept: list[int] = []
    for node in range(NUM_NODES):
        incoming = [e for e, (target, _) in enumerate(EDGES) if target == node]
        strongest = sorted(incoming, key=lambda e: -weights[e][best[e]])[:2]
        kept += sorted(strongest)
    return best, kept


def _to_pairs(best: list[str], kept: list[int]) -> tuple[tuple[str, int], ...]:
    return tuple((best[e], EDGES[e][1]) for e in kept)


def cap_skip_connections(weights: Weights, max_skip: int) -> tuple[tuple[str, int], ...]:
    """Derives a cell with at most ``max_skip`` skip-connects among its kept edges (iterative).

    Each round removes one positive skip weight, so the loop ends; if the remaining kept skips have
    no alternative op left the cap cannot be met and the cell is returned as it stands (logged).
    """
    weights = [dict(w) for w in weights]
    best, kept = derive_cell(weights)
    while True:
        skips = [e for e in kept if best[e] == SKIP and weights[e][SKIP] > 0]
        if sum(best[e] == SKIP for e in kept) <= max_skip:
            break
        if not skips:
            log.warning("cannot cap skip-connects at %d: the remaining skip edges have no other op", max_skip)
            break
        weakest = min(skips, key=lambda e: weights[e][SKIP])
        weights[weakest][SKIP] = 0.0
        best, kept = derive_cell(weights)
    return _to_pairs(best, kept)


def _cell_weights(alphas: CellAlphas, cell: str) -> list[dict[str, float]]:
    weights = []
    for edge in alphas[cell]:
        w = edge_probabilities(edge)
        if "none" in w:
            # never chosen, not renormalised: docs/algorithm.md#genotype-derivation-and-the-skip-connect-cap
            w["none"] = 0.0
        weights.append(w)
    return weights


def derive_genotype(alphas: CellAlphas, max_skip: int) -> Genotype:
    """The genotype of the last stage's alphas; the skip cap ``max_skip`` (M) applies to the normal cell.

    Raises:
        PdartsError: if ``max_skip`` is negative or an edge has no op other than ``none``.
    """
    if max_skip < 0:
        raise PdartsError(f"max_skip must be >= 0 (8 or more means no cap), got {max_skip}")
    for cell in ("normal", "reduce"):
        for index, edge in enumerate(alphas[cell]):
            if not set(edge) - {"none"}:
                raise PdartsError(
                    f"{cell} edge {index} has no op other than 'none'; a genotype "
                    "needs a real op on every edge: keep more ops in the last stage"
                )
    normal = cap_skip_connections(_cell_weights(alphas, "normal"), max_skip)
    best, kept = derive_cell(_cell_weights(alphas, "reduce"))
    return Genotype(normal, CONCAT, _to_pairs(best, kept), CONCAT)


def derivation_margin(alphas: CellAlphas) -> float | None:
    """How far the uncapped derivation is from a tie, over both cell types: the smallest gap between
    a kept edge's best op and its second-best op, and between each node's second-strongest and
    third-strongest incoming edge (node 0 has only two). None if no edge has two real ops."""
    gaps = []
    for cell in ("normal", "reduce"):
        weights = _cell_weights(alphas, cell)
        best, kept = derive_cell(weights)
        for e in kept:
            ranked = sorted((p for op, p in weights[e].items() if op != "none"), reverse=True)
            if len(ranked) > 1:
                gaps.append(ranked[0] - ranked[1])
        for node in range(1, NUM_NODES):
            incoming = [e for e, (target, _) in enumerate(EDGES) if target == node]
            strengths = sorted((weights[e][best[e]] for e in incoming), reverse=True)
            gaps.append(strengths[1] - strengths[2])
    return min(gaps) if gaps else None


def derive_all_caps(alphas: CellAlphas) -> dict[int, Genotype]:
    """The genotype for every cap M = 0..8 (M = 8: uncapped)."""
    return {m: derive_genotype(alphas, m) for m in range(MAX_CAP + 1)}


def count_skips(pairs) -> int:
    """Skip-connects among a cell's ``(op, input)`` pairs."""
    return sum(op == SKIP for op, _ in pairs)


def all_caps_record(by_cap: dict[int, Genotype], max_skip: int) -> dict:
    """The genotype at every cap with its skip-connects in the normal cell, and the cap chosen."""
    from ..genotype import genotype_to_dict

    caps = [
        {"max_skip": m, "skip_connects": count_skips(g.normal), "genotype": genotype_to_dict(g)}
        for m, g in by_cap.items()
    ]
    return {"max_skip": max_skip, "caps": caps}
