"""The alphas file: a search stage's architecture parameters, by op name per edge.

Format (what search stages write and ``pdarts derive --alphas`` reads)::

    {"normal": [{"ops": ["none", "skip_connect", ...], "alpha": [0.1, -0.3, ...], ...}, ... 14],
     "reduce": [...], ...}

Edges follow the DARTS order of ``search_space.EDGES``. Keys other than ``ops`` and ``alpha``, at
the top or in an edge (``weights``, ``source``, ``target``, stage settings...), are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .errors import PdartsError
from .io import check_finite_json, read_json
from .search_space import canonical_order, cell_edge_lists, check_op_names

__all__ = ["alphas_from_dict", "load_alphas"]

#: cell type -> per edge, op name -> raw alpha (canonical op order)
Alphas = dict[str, list[dict[str, float]]]


def _edge(edge: object, where: str) -> dict[str, float]:
    if not isinstance(edge, Mapping):
        raise PdartsError(f"{where}: expected an object with 'ops' and 'alpha'")
    for key in ("ops", "alpha"):
        if key not in edge:
            raise PdartsError(f"{where}: missing {key!r}")
    ops, alpha = edge["ops"], edge["alpha"]
    if not isinstance(ops, list) or not ops:
        raise PdartsError(f"{where}: 'ops' must be a non-empty list of op names")
    if not isinstance(alpha, list) or len(alpha) != len(ops):
        got = len(alpha) if isinstance(alpha, list) else type(alpha).__name__
        raise PdartsError(
            f"{where}: 'ops' has {len(ops)} names but 'alpha' has {got} values; give one alpha per op"
        )
    check_op_names(ops, where)
    values = {op: check_finite_json(a, f"{where} alpha of {op!r}") for op, a in zip(ops, alpha)}
    return {op: values[op] for op in canonical_order(ops)}


def alphas_from_dict(data: object, source: str = "alphas") -> Alphas:
    """Validates alphas read from JSON; returns them by op name per edge.

    Raises:
        PdartsError: naming the first problem found.
    """
    return {
        cell: [_edge(edge, f"{source}: {cell} edge {i}") for i, edge in enumerate(edges)]
        for cell, edges in cell_edge_lists(data, source, " in DARTS order").items()
    }


def load_alphas(path: str | Path) -> Alphas:
    """Reads and validates an alphas JSON file."""
    return alphas_from_dict(read_json(path, "alphas"), source=str(path))
