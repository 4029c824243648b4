from collections import Counter

import pytest

from pdarts.errors import PdartsError
from pdarts.genotype import genotype_from_dict, genotype_to_dict
from pdarts.search.derivation import count_skips
from pdarts.search.sampling import random_genotype
from pdarts.search_space import PRIMITIVES


def test_a_random_genotype_is_a_valid_cell_with_two_distinct_inputs_per_node():
    for seed in range(50):
        genotype = random_genotype(PRIMITIVES, 2, seed)
        assert genotype_from_dict(genotype_to_dict(genotype)) == genotype  # passes the strict reader
        for cell in (genotype.normal, genotype.reduce):
            assert all(op != "none" for op, _ in cell)
            for node in range(4):
                sources = [source for _, source in cell[2 * node : 2 * node + 2]]
                assert len(set(sources)) == 2 and all(0 <= s < node + 2 for s in sources)
        assert count_skips(genotype.normal) <= 2


def test_the_draw_is_seeded_and_seeds_differ():
    assert random_genotype(PRIMITIVES, 2, 7) == random_genotype(PRIMITIVES, 2, 7)
    assert len({random_genotype(PRIMITIVES, 2, seed) for seed in range(10)}) == 10


def test_ops_are_drawn_uniformly_and_the_cap_applies_to_the_normal_cell_only():
    drawn = [random_genotype(PRIMITIVES, 0, seed) for seed in range(400)]
    assert all(count_skips(g.normal) == 0 for g in drawn)
    reduce_ops = Counter(op for g in drawn for op, _ in g.reduce)
    assert set(reduce_ops) == set(PRIMITIVES) - {"none"}
    share = reduce_ops["skip_connect"] / sum(reduce_ops.values())
    assert abs(share - 1 / 7) < 0.02  # 3,200 draws: 1/7 within about 3 standard errors


def test_a_space_that_cannot_meet_the_cap_is_refused():
    with pytest.raises(PdartsError, match="max_skip"):
        random_genotype(["none", "skip_connect"], 2, 0)
    with pytest.raises(PdartsError, match="other than 'none'"):
        random_genotype(["none"], 8, 0)
