import json

import pytest

from pdarts.errors import PdartsError
from pdarts.genotype import (
    GENOTYPES,
    genotype_from_dict,
    genotype_to_dict,
    load_genotype,
    resolve_genotype,
)


def test_named_genotypes_include_pdarts_and_darts_v2():
    pdarts = GENOTYPES["PDARTS"]
    assert pdarts.normal[:2] == (("skip_connect", 0), ("dil_conv_3x3", 1))
    assert pdarts.reduce[-1] == ("dil_conv_5x5", 3)
    assert "DARTS_V2" in GENOTYPES
    assert resolve_genotype("DARTS_V2") is GENOTYPES["DARTS_V2"]


def test_pairs_are_ordered_by_node_then_input():
    for genotype in GENOTYPES.values():
        for pairs in (genotype.normal, genotype.reduce):
            for node in range(4):
                inputs = [src for _, src in pairs[2 * node : 2 * node + 2]]
                assert inputs == sorted(inputs) and max(inputs) < 2 + node


def test_json_round_trip(tmp_path):
    path = tmp_path / "g.json"
    data = genotype_to_dict(GENOTYPES["PDARTS"])
    assert set(data) == {"normal", "normal_concat", "reduce", "reduce_concat"}
    assert data["normal"][0] == ["skip_connect", 0] and data["reduce_concat"] == [2, 3, 4, 5]
    path.write_text(json.dumps(data))
    assert load_genotype(path) == GENOTYPES["PDARTS"]
    assert resolve_genotype(str(path)) == GENOTYPES["PDARTS"]


def _with(**changes):
    data = genotype_to_dict(GENOTYPES["PDARTS"])
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a JSON object"),
        ({"normal": []}, "missing field"),
        (_with(normal=[["sep_conv_3x3", 0]] * 7), "expected 8"),
        (_with(normal=[["conv_9x9", 0]] + [["sep_conv_3x3", 1]] * 7), "unknown op 'conv_9x9'"),
        (_with(normal=[["none", 0]] + [["sep_conv_3x3", 1]] * 7), "unknown op 'none'"),
        (_with(normal=[["sep_conv_3x3", 2]] + [["sep_conv_3x3", 1]] * 7), r"input must be .* 0\.\.1"),
        (_with(normal=[["sep_conv_3x3", "0"]] + [["sep_conv_3x3", 1]] * 7), "input must be an integer"),
        (_with(normal=[["sep_conv_3x3", True]] + [["sep_conv_3x3", 1]] * 7), "input must be an integer"),
        (_with(normal=[["sep_conv_3x3"]] * 8), r"expected \[op, input\]"),
        (_with(reduce_concat=[2, 3, 4]), "reduce_concat"),
        (_with(extra=1), "unknown field"),
    ],
)
def test_invalid_genotypes_are_refused(data, message):
    with pytest.raises(PdartsError, match=message):
        genotype_from_dict(data)


def test_bad_files_and_names_are_refused(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PdartsError, match="not valid JSON"):
        load_genotype(tmp_path / "bad.json")
    with pytest.raises(PdartsError, match="neither a registered genotype"):
        resolve_genotype("NO_SUCH_NAME")


def test_names_in_any_case_even_beside_a_folder_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pdarts").mkdir()  # as in a clone of this repository
    assert resolve_genotype("pdarts") is GENOTYPES["PDARTS"]
    assert resolve_genotype("darts_v2") is GENOTYPES["DARTS_V2"]
