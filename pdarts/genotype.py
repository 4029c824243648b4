"""Genotypes as data: the discrete cell a search finds.

A genotype lists, for each of the 4 nodes of a cell, its 2 incoming ``(op, input)`` pairs, ordered
by node and then by input. On disk it is JSON with DARTS's fields::

    {"normal": [[op, input], ... 8 pairs], "normal_concat": [2, 3, 4, 5],
     "reduce": [...], "reduce_concat": [2, 3, 4, 5]}

Reading validates strictly; published genotypes are looked up by name in ``GENOTYPES``. See
docs/algorithm.md#genotype-derivation-and-the-skip-connect-cap and docs/algorithm.md#published-genotypes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .errors import PdartsError
from .search_space import CELL_TYPES, NUM_NODES, PRIMITIVES

__all__ = [
    "Genotype",
    "GENOTYPES",
    "CONCAT",
    "genotype_from_dict",
    "genotype_to_dict",
    "load_genotype",
    "resolve_genotype",
]

#: Every intermediate node is concatenated into the cell output.
CONCAT: tuple[int, ...] = tuple(range(2, 2 + NUM_NODES))
PAIRS_PER_NODE = 2

Pair = tuple[str, int]


class Genotype(NamedTuple):
    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]


def _validate_cell(pairs: object, cell: str) -> tuple[Pair, ...]:
    expected = NUM_NODES * PAIRS_PER_NODE
    if not isinstance(pairs, (list, tuple)) or len(pairs) != expected:
        got = len(pairs) if isinstance(pairs, (list, tuple)) else type(pairs).__name__
        raise PdartsError(f"genotype {cell!r}: expected {expected} [op, input] pairs, got {got}")
    result: list[Pair] = []
    for index, pair in enumerate(pairs):
        node = index // PAIRS_PER_NODE
        where = f"genotype {cell!r} pair {index} (node {node})"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise PdartsError(f"{where}: expected [op, input], got {pair!r}")
        op, source = pair
        if op not in PRIMITIVES or op == "none":
            allowed = ", ".join(p for p in PRIMITIVES if p != "none")
            raise PdartsError(f"{where}: unknown op {op!r}; allowed: {allowed}")
        if isinstance(source, bool) or not isinstance(source, int) or not 0 <= source < 2 + node:
            raise PdartsError(f"{where}: input must be an integer in 0..{1 + node}, got {source!r}")
        result.append((op, source))
    # Pairs are ordered by node, then by input (the sum over a node's inputs does not depend on it).
    ordered = []
    for node in range(NUM_NODES):
        ordered += sorted(result[PAIRS_PER_NODE * node : PAIRS_PER_NODE * (node + 1)], key=lambda p: p[1])
    return tuple(ordered)


def _validate_concat(concat: object, cell: str) -> tuple[int, ...]:
    if not isinstance(concat, (list, tuple)) or tuple(concat) != CONCAT:
        raise PdartsError(f"genotype {cell}_concat: expected {list(CONCAT)}, got {concat!r}")
    return CONCAT


def genotype_from_dict(data: object) -> Genotype:
    """Validates a genotype read from JSON.

    Raises:
        PdartsError: naming the first problem (missing field, unknown op, input out of range...).
    """
    if not isinstance(data, Mapping):
        raise PdartsError(f"genotype: expected a JSON object, got {type(data).__name__}")
    fields = {}
    for cell in CELL_TYPES:
        for key in (cell, f"{cell}_concat"):
            if key not in data:
                raise PdartsError(
                    f"genotype: missing field {key!r} (fields: normal, normal_concat, reduce, reduce_concat)"
                )
        fields[cell] = _validate_cell(data[cell], cell)
        fields[f"{cell}_concat"] = _validate_concat(data[f"{cell}_concat"], cell)
    extra = set(data) - set(Genotype._fields)
    if extra:
        raise PdartsError(f"genotype: unknown field(s) {sorted(extra)}")
    return Genotype(**fields)


def genotype_to_dict(genotype: Genotype) -> dict[str, Any]:
    """The JSON form: pairs as ``[op, input]`` lists."""
    return {
        "normal": [list(p) for p in genotype.normal],
        "normal_concat": list(genotype.normal_concat),
        "reduce": [list(p) for p in genotype.reduce],
        "reduce_concat": list(genotype.reduce_concat),
    }


def load_genotype(path: str | Path) -> Genotype:
    """Reads and validates a genotype JSON file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PdartsError(f"cannot read genotype file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PdartsError(f"{path} is not valid JSON (not UTF-8 text); write a genotype as JSON") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise PdartsError(f"{path} is not valid JSON ({exc}); write a genotype as JSON") from None
    try:
        return genotype_from_dict(data)
    except PdartsError as exc:
        raise PdartsError(f"{path}: {exc}") from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _named(normal: Sequence[Pair], reduce: Sequence[Pair]) -> Genotype:
    return genotype_from_dict(
        {"normal": normal, "normal_concat": CONCAT, "reduce": reduce, "reduce_concat": CONCAT}
    )


#: Published genotypes, by name (pairs stored in node/input order).
GENOTYPES: dict[str, Genotype] = {
    # P-DARTS, searched on CIFAR-10 (Chen et al., ICCV 2019); docs/algorithm.md#published-genotypes.
    "PDARTS": _named(
        normal=[
            ("skip_connect", 0),
            ("dil_conv_3x3", 1),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 3),
            ("sep_conv_3x3", 0),
            ("dil_conv_5x5", 4),
        ],
        reduce=[
            ("avg_pool_3x3", 0),
            ("sep_conv_5x5", 1),
            ("sep_conv_3x3", 0),
            ("dil_conv_5x5", 2),
            ("max_pool_3x3", 0),
            ("dil_conv_3x3", 1),
            ("dil_conv_3x3", 1),
            ("dil_conv_5x5", 3),
        ],
    ),
    # DARTS, first order (Liu et al., ICLR 2019).
    "DARTS_V1": _named(
        normal=[
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("skip_connect", 2),
        ],
        reduce=[
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("avg_pool_3x3", 0),
        ],
    ),
    # DARTS, second order (Liu et al., ICLR 2019).
    "DARTS_V2": _named(
        normal=[
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("skip_connect", 0),
            ("dil_conv_3x3", 2),
        ],
        reduce=[
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
        ],
    ),
}


def resolve_genotype(name_or_path: str) -> Genotype:
    """A registered genotype by name (in any case), or else a genotype JSON file by path."""
    if name_or_path in GENOTYPES:
        return GENOTYPES[name_or_path]
    path = Path(name_or_path)
    if path.is_file():
        return load_genotype(path)
    names = {name.lower(): name for name in GENOTYPES}
    if name_or_path.lower() in names:  # `pdarts`, even beside a folder of that name
        return GENOTYPES[names[name_or_path.lower()]]
    what = "a folder" if path.is_dir() else "no such file"
    raise PdartsError(
        f"{name_or_path!r} is neither a registered genotype ({', '.join(GENOTYPES)}) "
        f"nor a genotype JSON file ({what})"
    )
