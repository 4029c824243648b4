"""The random baseline: a genotype drawn uniformly from the search space (docs/workflow.md#the-seeds-sweep).

Every node takes 2 distinct inputs among the states before it, each with an op other than ``none``,
all uniformly, as a derived genotype would; the normal cell is drawn again until it has at most
``max_skip`` skip-connects, which samples uniformly among the cells the cap allows.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..errors import PdartsError
from ..genotype import CONCAT, Genotype, Pair
from ..search_space import NUM_NODES, canonical_order
from .derivation import SKIP, count_skips

__all__ = ["random_genotype"]


def _random_cell(rng: random.Random, ops: Sequence[str]) -> tuple[Pair, ...]:
    pairs: list[Pair] = []
    for node in range(NUM_NODES):
        for source in sorted(rng.sample(range(node + 2), 2)):
            pairs.append((rng.choice(ops), source))
    return tuple(pairs)


def random_genotype(ops: Sequence[str], max_skip: int, seed: int) -> Genotype:
    """A uniformly drawn genotype over ``ops`` with at most ``max_skip`` skip-connects in the normal cell.

    Raises:
        PdartsError: if ``ops`` has no op other than ``none``, or only ``skip_connect`` with a cap below 8.
    """
    real = [op for op in canonical_order(ops) if op != "none"]
    if not real:
        raise PdartsError("search.space.ops: a random genotype needs an op other than 'none'")
    if real == [SKIP] and max_skip < 2 * NUM_NODES:
        raise PdartsError(f"derive.max_skip: {max_skip} cannot be met when skip_connect is the only op")
    rng = random.Random(seed)
    normal = _random_cell(rng, real)
    while count_skips(normal) > max_skip:
        normal = _random_cell(rng, real)
    return Genotype(normal, CONCAT, _random_cell(rng, real), CONCAT)
