"""The sweep's aggregate and its report, on runs written by hand."""

import json
import re
import statistics

import pytest

from pdarts.errors import PdartsError
from pdarts.genotype import genotype_to_dict
from pdarts.io import write_json
from pdarts.search.sampling import random_genotype
from pdarts.search_space import PRIMITIVES
from pdarts.sweep.summary import run_folder, summarize

ERRORS = {"pdarts": [0.10, 0.12, 0.14], "random": [0.20, 0.30, 0.25]}


def _write_runs(runs, seeds=(0, 1, 2)):
    for method, errors in ERRORS.items():
        for index, seed in enumerate(seeds):
            folder = run_folder(runs, method, seed)
            genotype = random_genotype(PRIMITIVES, 2, seed if method == "random" else 0)
            write_json(folder / "genotype.json", genotype_to_dict(genotype))
            write_json(folder / "evaluate.json", {"top1_err": errors[index], "params": 1000 + seed})
            stages = (
                [{"pruning_margin": None}, {"pruning_margin": 0.01 * (seed + 1)}]
                if method == "pdarts"
                else []
            )
            search = {
                "search_seconds": 10.0 * seed,
                "skip_connects": seed % 2,
                "derivation_margin": 0.5,
                "stages": stages,
            }
            write_json(folder / "search.json", search)
            if method == "pdarts":  # sweep.transfer: [pdarts]
                write_json(folder / "transfer_evaluate.json", {"top1_err": 0.5 + 0.1 * index})


def test_mean_std_values_and_choice_counts(tmp_path):
    _write_runs(tmp_path)
    summary = summarize(tmp_path, ["pdarts", "random"], [0, 1, 2], transfer=["pdarts"])
    pdarts = summary["methods"]["pdarts"]
    assert (
        pdarts["transfer_err"]["values"] == [0.5, 0.6, 0.7]
        and "transfer_err" not in summary["methods"]["random"]
    )
    assert pdarts["seeds"] == [0, 1, 2] and pdarts["top1_err"]["values"] == ERRORS["pdarts"]
    assert pdarts["top1_err"]["mean"] == pytest.approx(0.12)
    assert pdarts["top1_err"]["std"] == pytest.approx(statistics.stdev(ERRORS["pdarts"]))  # n - 1
    assert pdarts["params"]["values"] == [1000, 1001, 1002]
    assert pdarts["search_seconds"]["mean"] == pytest.approx(10.0)
    assert pdarts["skip_connects"]["values"] == [0, 1, 0]
    assert pdarts["margin"]["values"] == pytest.approx([0.01, 0.02, 0.03])  # the smallest decision each
    # pdarts wrote seed 0's genotype three times: each of its 8 edges per cell chosen by all 3 seeds
    normal = pdarts["choices"]["normal"]
    assert sum(sum(ops.values()) for ops in normal.values()) == 3 * 8
    assert all(list(ops.values()) == [3] for ops in normal.values())
    first = random_genotype(PRIMITIVES, 2, 0).normal[0]
    edge = ("c_{k-2}", "c_{k-1}")[first[1]] + "→0"
    assert normal[edge] == {first[0]: 3}
    rand = summary["methods"]["random"]["choices"]["reduce"]
    assert sum(sum(ops.values()) for ops in rand.values()) == 3 * 8
    assert summary["methods"]["random"]["margin"] == {"mean": 0.5, "std": 0.0, "values": [0.5, 0.5, 0.5]}
    json.dumps(summary, allow_nan=False)


def test_a_missing_run_is_named(tmp_path):
    _write_runs(tmp_path)
    (run_folder(tmp_path, "random", 1) / "evaluate.json").unlink()
    with pytest.raises(PdartsError, match=r"random/seed1/evaluate.json"):
        summarize(tmp_path, ["pdarts", "random"], [0, 1, 2])


def test_the_report_page_names_only_images_it_has(tmp_path):
    from pdarts.report.sweep import write_sweep_report

    _write_runs(tmp_path / "runs")
    summary = summarize(tmp_path / "runs", ["pdarts", "random"], [0, 1, 2], transfer=["pdarts"])
    write_sweep_report(summary, tmp_path / "report")
    page = (tmp_path / "report" / "index.html").read_text()
    images = re.findall(r'src="([^"]+)"', page)
    assert sorted(images) == ["choices.png", "errors.png"]
    assert all((tmp_path / "report" / image).stat().st_size > 10_000 for image in images)
    assert "http" not in page and "<script" not in page and "<link" not in page  # opens offline
    assert "12.00 ± 2.00" in page  # pdarts: mean ± sample std of 10, 12, 14 (%)
    assert "60.00 ± 10.00" in page  # its transfer errors 50, 60, 70 (%)
    markdown = (tmp_path / "report" / "summary.md").read_text()
    assert "| random | 25.00 ± 5.00 | 20.00, 30.00, 25.00 |" in markdown
