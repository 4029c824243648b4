"""Derivation with the skip cap on a hand-made stage-3 result
(docs/algorithm.md#genotype-derivation-and-the-skip-connect-cap)."""

import math

import pytest

from pdarts.errors import PdartsError
from pdarts.search.derivation import derive_all_caps, derive_genotype

SKIP, SEP, DIL, NONE = "skip_connect", "sep_conv_3x3", "dil_conv_3x3", "none"


def _edge(**p: float) -> dict[str, float]:
    """An edge whose softmax weights are exactly ``p`` (alpha = log P, P sums to 1)."""
    names = {"skip": SKIP, "sep": SEP, "dil": DIL, "none": NONE}
    assert sum(p.values()) == pytest.approx(1.0)
    return {names[k]: math.log(v) for k, v in p.items()}


# Stage-3 normal cell (3 ops per edge). Worked out by hand from the rules of
# docs/algorithm.md#genotype-derivation-and-the-skip-connect-cap:
#   uncapped kept edges: e0 skip .68, e1 sep .50 | e2 skip .70, e4 dil .55 | e5 skip .52, e6 dil .50 |
#   e9 skip .65, e12 dil .70  -> 4 skip-connects.
#   M=2: round 1 zeroes e5 (weakest kept skip .52): node 2 now keeps e6 (dil .50) and e7 (sep .48);
#        round 2 zeroes e9 (.65): node 3 keeps e12 (dil .70) and e13, whose skip (.50) ENTERS;
#        round 3 zeroes e13 (.50): node 3 keeps e12 and e10 (sep .45). Two skips remain.
NORMAL = [
    _edge(skip=0.68, sep=0.22, dil=0.10),  # e0  node0 <- 0
    _edge(skip=0.15, sep=0.50, dil=0.35),  # e1  node0 <- 1
    _edge(skip=0.70, sep=0.20, dil=0.10),  # e2  node1 <- 0
    _edge(skip=0.45, sep=0.40, dil=0.15),  # e3  node1 <- 1
    _edge(skip=0.05, sep=0.40, dil=0.55),  # e4  node1 <- 2
    _edge(skip=0.52, sep=0.38, dil=0.10),  # e5  node2 <- 0
    _edge(skip=0.20, sep=0.30, dil=0.50),  # e6  node2 <- 1
    _edge(skip=0.10, sep=0.48, dil=0.42),  # e7  node2 <- 2
    _edge(none=0.60, sep=0.25, dil=0.15),  # e8  node2 <- 3 (none is heaviest, never chosen)
    _edge(skip=0.65, sep=0.25, dil=0.10),  # e9  node3 <- 0
    _edge(skip=0.20, sep=0.45, dil=0.35),  # e10 node3 <- 1
    _edge(none=0.70, skip=0.20, sep=0.10),  # e11 node3 <- 2
    _edge(skip=0.10, sep=0.20, dil=0.70),  # e12 node3 <- 3
    _edge(skip=0.50, sep=0.30, dil=0.20),  # e13 node3 <- 4
]
# Reduce cell: skip-connects everywhere; the cap never applies to it.
REDUCE = [_edge(skip=0.6, sep=0.3, dil=0.1)] * 14
ALPHAS = {"normal": NORMAL, "reduce": REDUCE}


def _skips(pairs) -> int:
    return sum(op == SKIP for op, _ in pairs)


def test_uncapped_cell_has_four_skips():
    genotype = derive_genotype(ALPHAS, max_skip=8)
    assert genotype.normal == (
        (SKIP, 0),
        (SEP, 1),
        (SKIP, 0),
        (DIL, 2),
        (SKIP, 0),
        (DIL, 1),
        (SKIP, 0),
        (DIL, 3),
    )


def test_cap_two_rechooses_ops_and_edges():
    genotype = derive_genotype(ALPHAS, max_skip=2)
    assert genotype.normal == (
        (SKIP, 0),
        (SEP, 1),
        (SKIP, 0),
        (DIL, 2),
        (DIL, 1),
        (SEP, 2),
        (SEP, 1),
        (DIL, 3),
    )
    assert genotype.normal_concat == (2, 3, 4, 5)


def test_every_cap_from_zero_to_eight():
    caps = derive_all_caps(ALPHAS)
    assert sorted(caps) == list(range(9))
    assert [_skips(caps[m].normal) for m in range(9)] == [0, 1, 2, 3, 4, 4, 4, 4, 4]
    # M=3: only e5 loses its skip.
    assert caps[3].normal[4:6] == ((DIL, 1), (SEP, 2))
    # M=1: e0's op is re-chosen (node 0 has only two edges).
    assert caps[1].normal[:2] == ((SEP, 0), (SEP, 1))
    # M=0: removing e2's skip lets e3's skip in, which is removed in turn.
    assert caps[0].normal[2:4] == ((SEP, 1), (DIL, 2))
    assert caps[4] == caps[8] == derive_genotype(ALPHAS, max_skip=100)


def test_cap_never_touches_the_reduce_cell():
    for genotype in derive_all_caps(ALPHAS).values():
        assert _skips(genotype.reduce) == 8
        assert [src for _, src in genotype.reduce] == [0, 1, 0, 1, 0, 1, 0, 1]


def test_never_picks_none_even_when_it_dominates():
    edge = {NONE: 5.0, "max_pool_3x3": 0.0, SKIP: 0.1, SEP: 0.2}
    genotype = derive_genotype({"normal": [edge] * 14, "reduce": [edge] * 14}, max_skip=8)
    assert all(op != NONE for op, _ in genotype.normal + genotype.reduce)
    assert {op for op, _ in genotype.normal} == {SEP}


def test_edge_with_only_none_and_negative_cap_are_refused():
    bad = {"normal": [{NONE: 0.0}] + NORMAL[1:], "reduce": REDUCE}
    with pytest.raises(PdartsError, match="normal edge 0 has no op other than 'none'"):
        derive_genotype(bad, max_skip=2)
    with pytest.raises(PdartsError, match="max_skip must be >= 0"):
        derive_genotype(ALPHAS, max_skip=-1)


def test_the_derivation_margin_is_its_closest_decision():
    from pdarts.search.derivation import derivation_margin

    # NORMAL by hand: kept edges' best-op gaps are >= .14 (e5: .52 - .38); node 2's second and third
    # strongest edges are e6 (.50) and e7 (.48): .02, the smallest; nodes 1 and 3 give .10 and .15.
    assert derivation_margin({"normal": NORMAL, "reduce": NORMAL}) == pytest.approx(0.02)
    assert derivation_margin(ALPHAS) == pytest.approx(0.0)  # REDUCE's edges are all alike: a tie
