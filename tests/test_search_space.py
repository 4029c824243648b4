import pytest

from pdarts.errors import PdartsError
from pdarts.search_space import EDGES, NUM_EDGES, PRIMITIVES, full_candidates, validate_candidates


def test_fourteen_edges_in_darts_order():
    assert NUM_EDGES == 14
    assert EDGES[:5] == ((0, 0), (0, 1), (1, 0), (1, 1), (1, 2))
    assert EDGES[-1] == (3, 4)


def test_full_candidates_and_validation_round_trip():
    cands = full_candidates()
    assert cands["normal"][0] == PRIMITIVES and len(cands["reduce"]) == 14
    shuffled = {cell: [list(reversed(ops)) for ops in edges] for cell, edges in cands.items()}
    assert validate_candidates(shuffled) == cands


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"normal": [["skip_connect"]] * 14}, "missing cell 'reduce'"),
        ({"normal": [["skip_connect"]] * 13, "reduce": [["skip_connect"]] * 14}, "14 edges"),
        ({"normal": [["conv_7x7"]] * 14, "reduce": [["skip_connect"]] * 14}, "unknown op"),
        ({"normal": [[]] * 14, "reduce": [["skip_connect"]] * 14}, "non-empty"),
    ],
)
def test_bad_candidates_are_refused(data, message):
    with pytest.raises(PdartsError, match=message):
        validate_candidates(data)
