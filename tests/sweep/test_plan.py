"""What each method of the sweep searches, and that a plan changes only with what concerns it."""

import copy

import pytest

from pdarts.errors import PdartsError
from pdarts.search_space import PRIMITIVES
from pdarts.sweep.plan import method_plan, plan_from_dict

from ..helpers import SMOKE


def _plans(params):
    return {method: method_plan(params, method).to_dict() for method in ("pdarts", "darts", "random")}


def test_the_methods_plans():
    pdarts, darts, rand = (method_plan(SMOKE, m) for m in ("pdarts", "darts", "random"))
    assert [(s.name, s.cells, s.ops, s.skip_dropout) for s in pdarts.stages] == [
        (s["name"], s["cells"], s["ops"], s["skip_dropout"]) for s in SMOKE["search"]["stages"]
    ]
    assert pdarts.max_skip == SMOKE["derive"]["max_skip"]
    # DARTS: one stage over every op, no skip dropout, no cap, the same shared settings
    assert [(s.cells, s.ops, s.skip_dropout) for s in darts.stages] == [
        (SMOKE["sweep"]["darts_cells"], 8, 0.0)
    ]
    assert darts.max_skip == 8 and darts.ops == PRIMITIVES and darts.common == pdarts.common
    assert "seed" not in darts.common  # the sweep's seed replaces it
    assert rand.stages == () and rand.max_skip == SMOKE["derive"]["max_skip"]
    assert plan_from_dict(darts.to_dict()) == darts and plan_from_dict(rand.to_dict()) == rand


@pytest.mark.parametrize(
    ("section", "key", "value", "changed"),
    [
        ("train", "epochs", 7, set()),
        ("sweep", "seeds", [0, 1, 2, 3], set()),
        ("sweep", "transfer", ["darts"], set()),
        ("search.common", "seed", 5, set()),
        ("search.common", "epochs", 3, {"pdarts", "darts"}),
        ("search.stages.1", "skip_dropout", 0.2, {"pdarts"}),
        ("sweep", "darts_cells", 4, {"darts"}),
        ("derive", "max_skip", 1, {"pdarts", "random"}),
    ],
)
def test_a_plan_changes_only_with_what_decides_its_genotype(section, key, value, changed):
    params = copy.deepcopy(SMOKE)
    node = params
    for part in section.split("."):
        node = node[int(part)] if part.isdigit() else node[part]
    node[key] = value
    before, after = _plans(SMOKE), _plans(params)
    assert {method for method in before if before[method] != after[method]} == changed


def test_a_damaged_plan_is_refused_with_the_fix():
    plan = method_plan(SMOKE, "darts").to_dict()
    with pytest.raises(PdartsError, match="not a sweep plan.*rewrite it with pdarts sweep-plan"):
        plan_from_dict({**plan, "stages": [{"name": "x"}]}, "p.json")
    with pytest.raises(PdartsError, match="p.json: .*batch_size.*rewrite it"):
        plan_from_dict({**plan, "common": {**plan["common"], "batch_size": 0}}, "p.json")


def test_only_methods_of_the_sweep_can_be_transferred():
    from pdarts.settings import SweepSettings

    with pytest.raises(PdartsError, match=r"sweep.transfer: \['random'\] not in sweep.methods"):
        SweepSettings.from_dict({**SMOKE["sweep"], "methods": ["pdarts"], "transfer": ["random"]})
