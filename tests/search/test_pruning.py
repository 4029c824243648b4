import math

import pytest

from pdarts.search.pruning import edge_probabilities, prune_candidates, pruning_margin
from pdarts.search_space import PRIMITIVES


def _alphas(edge: dict[str, float]) -> dict:
    return {cell: [edge] * 14 for cell in ("normal", "reduce")}


def test_softmax_by_name():
    weights = edge_probabilities({"none": 0.0, "skip_connect": math.log(3.0)})
    assert weights == pytest.approx({"none": 0.25, "skip_connect": 0.75})


def test_keeps_the_heaviest_in_canonical_order():
    edge = dict(zip(PRIMITIVES, [0.9, 0.1, 0.2, 0.8, 0.3, 0.7, 0.0, -1.0]))
    pruned = prune_candidates(_alphas(edge), keep=3)
    # the three largest are none (0.9), skip (0.8), sep_conv_5x5 (0.7): none competes like any op
    assert pruned["normal"][0] == ("none", "skip_connect", "sep_conv_5x5")
    assert pruned["reduce"][13] == ("none", "skip_connect", "sep_conv_5x5")
    assert prune_candidates(_alphas(edge), keep=5)["normal"][0] == (
        "none",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
    )


def test_prunes_each_edge_on_its_own_weights():
    alphas = _alphas({"skip_connect": 1.0, "sep_conv_3x3": 0.0, "dil_conv_3x3": 0.5})
    alphas["normal"] = list(alphas["normal"])
    alphas["normal"][4] = {"skip_connect": -1.0, "sep_conv_3x3": 0.0, "dil_conv_3x3": 0.5}
    pruned = prune_candidates(alphas, keep=1)
    assert pruned["normal"][0] == ("skip_connect",)
    assert pruned["normal"][4] == ("dil_conv_3x3",)


def test_ties_keep_the_earlier_op():
    pruned = prune_candidates(_alphas(dict.fromkeys(PRIMITIVES, 0.0)), keep=2)
    assert pruned["normal"][0] == ("none", "max_pool_3x3")


def test_the_pruning_margin_is_the_smallest_gap_between_kept_and_dropped():
    edge = {"none": 0.0, "skip_connect": math.log(3.0), "sep_conv_3x3": math.log(2.0)}  # P = 1/6, 1/2, 1/3
    tight = {"none": 0.0, "skip_connect": 0.0, "sep_conv_3x3": 0.0}
    alphas = {"normal": [edge] * 14, "reduce": [edge] * 13 + [tight]}
    assert pruning_margin({"normal": [edge] * 14, "reduce": [edge] * 14}, 2) == pytest.approx(1 / 3 - 1 / 6)
    assert pruning_margin({"normal": [edge] * 14, "reduce": [edge] * 14}, 1) == pytest.approx(1 / 2 - 1 / 3)
    assert pruning_margin(alphas, 2) == 0.0  # a tie on one edge is the margin
    assert pruning_margin(alphas, 3) is None  # nothing dropped
