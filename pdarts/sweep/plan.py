"""What each method of the sweep searches, as a plan file: one per method, written from the settings.

A plan holds exactly what decides a method's genotype apart from the seed, so that a setting that
does not concern a method leaves its plan's bytes, and therefore its steps, alone (DVC compares the
file's hash; Snakemake the rule's parameters)::

    pdarts  the progressive stages of ``search.stages``, ``search.common``, the cap ``derive.max_skip``
    darts   DARTS (first order) as this engine's special case: one stage of ``sweep.darts_cells``
            cells over all of ``search.space.ops``, no skip dropout, no cap; ``search.common``
    random  a genotype drawn uniformly over ``search.space.ops`` with the same cap (no search)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import PdartsError
from ..search.derivation import MAX_CAP
from ..search_space import canonical_order, check_op_names
from ..settings import SearchSettings, Stage

__all__ = ["METHODS", "SearchPlan", "StagePlan", "method_plan", "plan_from_dict"]

METHODS = ("pdarts", "darts", "random")


@dataclass(frozen=True)
class StagePlan:
    """One search stage of a plan: the ops kept per edge before it, its cells and skip dropout."""

    name: str
    cells: int
    ops: int
    skip_dropout: float

    def stage(self) -> Stage:
        return Stage(self.name, self.cells, self.skip_dropout)


@dataclass(frozen=True)
class SearchPlan:
    """A method's search: its ops, stages (none for random) and cap; ``common`` without the seed."""

    method: str
    ops: tuple[str, ...]
    max_skip: int
    stages: tuple[StagePlan, ...] = ()
    common: Mapping[str, Any] | None = None

    def settings(self, seed: int) -> SearchSettings:
        """The stages' shared settings with the sweep's seed."""
        return SearchSettings.from_dict({**self.common, "seed": seed})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ops": list(self.ops), "stages": [asdict(s) for s in self.stages]}


def method_plan(params: Mapping[str, Any], method: str) -> SearchPlan:
    """The plan of ``method`` under the settings ``params`` (a checked params.yaml)."""
    search = params["search"]
    ops = canonical_order(search["space"]["ops"])
    common = {key: value for key, value in search["common"].items() if key != "seed"}
    if method == "pdarts":
        stages = tuple(
            StagePlan(s["name"], s["cells"], s["ops"], float(s["skip_dropout"])) for s in search["stages"]
        )
        return SearchPlan(method, ops, params["derive"]["max_skip"], stages, common)
    if method == "darts":
        stage = StagePlan("darts", params["sweep"]["darts_cells"], len(ops), 0.0)
        return SearchPlan(method, ops, MAX_CAP, (stage,), common)
    if method == "random":
        return SearchPlan(method, ops, params["derive"]["max_skip"])
    raise PdartsError(f"sweep.methods: unknown method {method!r}; the methods are {', '.join(METHODS)}")


def plan_from_dict(data: Any, source: str = "plan") -> SearchPlan:
    """A plan read back from its JSON file, checked.

    Raises:
        PdartsError: naming the file and the first problem (rewrite it with ``pdarts sweep-plan``).
    """
    try:
        if data["method"] not in METHODS:
            raise ValueError(f"unknown method {data['method']!r}")
        check_op_names(data["ops"], source)
        stages = tuple(StagePlan(**stage) for stage in data["stages"])
        plan = SearchPlan(data["method"], tuple(data["ops"]), int(data["max_skip"]), stages, data["common"])
        if plan.stages:
            plan.settings(0)  # the shared settings, checked against the schema
    except PdartsError as exc:
        raise PdartsError(f"{source}: {exc}; rewrite it with pdarts sweep-plan") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise PdartsError(f"{source}: not a sweep plan ({exc}); rewrite it with pdarts sweep-plan") from None
    return plan
