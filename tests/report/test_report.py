"""``pdarts report`` on a finished run's files (the committed default run, copied): every file the
pages name exists, the page is self-contained, the headline metrics are the evaluations' numbers,
seconds come only from run records whose outputs are the files reported, bad inputs are refused in
one line and leave the old report whole."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest
import yaml

from pdarts.alphas import alphas_from_dict
from pdarts.cli import main
from pdarts.genotype import genotype_from_dict
from pdarts.runlog import file_md5
from pdarts.search.derivation import all_caps_record, count_skips, derive_all_caps
from pdarts.search_space import CELL_TYPES, EDGES

from ..conftest import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
STAGES = [stage["name"] for stage in PARAMS["search"]["stages"]]


def _alphas_of(history: list[dict]) -> dict:
    """A stage's alphas.json from its history's last op weights (alpha = log p, so softmax(alpha) = p):
    the search's alphas are DVC-cached, not in a clone; its histories are committed."""
    last = history[-1]["op_probabilities"]
    return {
        cell: [
            {"source": source, "target": node + 2, "ops": list(p), "alpha": [math.log(v) for v in p.values()],
             "weights": list(p.values())}
            for (node, source), p in zip(EDGES, last[cell])
        ]
        for cell in CELL_TYPES
    }  # fmt: skip


def _copy_run(tmp_path):
    """The committed run's files in a fresh folder (params.yaml, histories, evaluations: what git
    holds), with each stage's alphas and the genotypes at every cap made from them."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    for part in ["search", "train/history.json", "transfer/history.json", "evaluate"]:
        source, target = ROOT / "results" / part, tmp_path / "results" / part
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    for stage in STAGES:
        folder = tmp_path / "results" / "search" / stage
        alphas = _alphas_of(json.loads((folder / "history.json").read_text()))
        (folder / "alphas.json").write_text(json.dumps(alphas))
    by_cap = derive_all_caps(alphas_from_dict(alphas))  # the last stage's
    caps = tmp_path / "results" / "derive" / "genotypes.json"
    caps.parent.mkdir(parents=True)
    caps.write_text(json.dumps(all_caps_record(by_cap, PARAMS["derive"]["max_skip"])))
    return tmp_path


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A copy of the committed run as the working folder."""
    monkeypatch.chdir(_copy_run(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A copy of the committed run, reported once (no run records) for the tests that only read."""
    folder = _copy_run(tmp_path_factory.mktemp("reported"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        assert main([*REPORT_ARGS, "--logs", "logs"]) == 0
    return folder


REPORT_ARGS = [
    "report", "--params", "params.yaml", "--search", "results/search",
    "--genotypes", "results/derive/genotypes.json",
    "--train", "results/train/history.json", "results/evaluate/train.json",
    "--transfer", "results/transfer/history.json", "results/evaluate/transfer.json",
    "--out", "results/report", "--out-metrics", "results/metrics.json",
]  # fmt: skip


def test_report_writes_every_figure_and_pages_that_name_only_files_that_exist(reported):
    run = reported
    report = run / "results" / "report"
    expected = ["index.html", "summary.md", "normal.png", "normal.svg", "reduce.png", "reduce.svg",
                "train_curves.png", "transfer_curves.png"]  # fmt: skip
    expected.append("search/stages_curves.png")
    for stage in STAGES:
        expected += [f"search/{stage}_{kind}.png" for kind in ("alphas", "trajectories", "curves")]
    for name in expected:
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    page = (report / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(images) == sorted(n for n in expected if n.endswith(".png"))
    assert "http://" not in page and "https://" not in page and "<script" not in page and "<link" not in page
    markdown = (report / "summary.md").read_text()
    assert sorted(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)) == sorted(images)
    # The same numbers on both pages: the test errors of both networks, in percent.
    for name in ("train", "transfer"):
        error = json.loads((run / "results" / "evaluate" / f"{name}.json").read_text())["top1_err"]
        assert f"{100 * error:.2f} %" in page and f"{100 * error:.2f} %" in markdown


def test_the_page_states_the_margin_of_every_pruning_and_of_the_derivation(reported):
    from pdarts.search.derivation import derivation_margin
    from pdarts.search.pruning import pruning_margin

    page = (reported / "results" / "report" / "index.html").read_text()
    folder = reported / "results" / "search"
    alphas = {s: alphas_from_dict(json.loads((folder / s / "alphas.json").read_text())) for s in STAGES}
    for before, stage in zip(PARAMS["search"]["stages"], PARAMS["search"]["stages"][1:]):
        gap = pruning_margin(alphas[before["name"]], stage["ops"])
        assert (
            f"<td>pruning {before['name']} → {stage['name']} ({stage['ops']} ops kept)</td><td>{gap:.2g}</td>"
            in page
        )
    gap = derivation_margin(alphas[STAGES[-1]])
    assert f"<td>derivation from {STAGES[-1]}</td><td>{gap:.2g}</td>" in page


def test_headline_metrics_are_the_evaluations_and_the_chosen_genotype(reported):
    run = reported
    metrics = json.loads((run / "results" / "metrics.json").read_text())
    train = json.loads((run / "results" / "evaluate" / "train.json").read_text())
    transfer = json.loads((run / "results" / "evaluate" / "transfer.json").read_text())
    caps = json.loads((run / "results" / "derive" / "genotypes.json").read_text())
    chosen = genotype_from_dict(caps["caps"][caps["max_skip"]]["genotype"])
    assert metrics == {
        "top1_err": train["top1_err"],
        "params": train["params"],
        "macs": train["macs"],
        "transfer_err": transfer["top1_err"],
        "transfer_macs": transfer["macs"],
        "skips": count_skips(chosen.normal),
        **{f"{stage}_s": None for stage in STAGES},  # no run records: not recorded
    }
    assert all(not isinstance(value, (dict, list)) for value in metrics.values())  # flat columns


def _record(run, step: str, outputs: dict[str, str], **fields) -> None:
    path = run / "logs" / f"{step}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"command": "pdarts ...", **fields, "outputs": outputs}))


def test_seconds_come_only_from_records_of_the_files_reported(run):
    first, second = (f"results/search/{stage}/alphas.json" for stage in STAGES[:2])
    _record(run, f"search/{STAGES[0]}", {first: file_md5(first)}, seconds=12.34)
    _record(run, f"search/{STAGES[1]}", {second: "0" * 32}, seconds=99.0)  # another run's record
    evaluation = "results/evaluate/train.json"
    _record(run, "evaluate_train", {evaluation: file_md5(evaluation)}, seconds=3.0, latency_ms_batch1=4.5)
    assert main([*REPORT_ARGS, "--logs", "logs"]) == 0
    metrics = json.loads((run / "results" / "metrics.json").read_text())
    assert metrics[f"{STAGES[0]}_s"] == 12.3
    assert metrics[f"{STAGES[1]}_s"] is None
    page = (run / "results" / "report" / "index.html").read_text()
    assert "4.5 ms @ 1" in page and "99.0" not in page
    assert f"<td>search/{STAGES[0]}</td><td>12.3</td>" in page


def test_settings_files_merge_in_order_and_changes_from_the_paper_are_listed(run):
    (run / "over.yaml").write_text("train:\n  epochs: 7\n")
    assert main([*REPORT_ARGS[:3], "over.yaml", *REPORT_ARGS[3:]]) == 0
    page = (run / "results" / "report" / "index.html").read_text()
    assert "<td>train.epochs</td><td>7</td><td>600</td>" in page
    assert "<td>search.common.epochs</td>" in page  # the default run searches fewer epochs than the paper


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_same_inputs_give_byte_identical_reports(reported, run):
    assert main(REPORT_ARGS) == 0
    assert _files(run / "results" / "report") == _files(reported / "results" / "report")


def test_a_bad_input_is_refused_in_one_line_and_the_old_report_stays_whole(reported, run, capsys):
    shutil.copytree(reported / "results" / "report", run / "results" / "report")
    before = {p: p.read_bytes() for p in (run / "results").rglob("*") if p.is_file()}
    genotypes = run / "results" / "derive" / "genotypes.json"
    data = json.loads(genotypes.read_text())
    data["caps"][3]["skip_connects"] += 1
    genotypes.write_text(json.dumps(data))
    assert main(REPORT_ARGS) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("pdarts report: error: ") and "genotypes.json" in error and "cap 3" in error
    before[genotypes] = genotypes.read_bytes()
    assert {p: p.read_bytes() for p in (run / "results").rglob("*") if p.is_file()} == before
    assert not [p for p in (run / "results").iterdir() if p.name.startswith(".")]  # no staging left
