"""The seeds sweep under the real ``dvc`` and ``snakemake``, in real clones, on the smoke settings.

One clone per tool: DVC's with configs/smoke.yaml as params.yaml (``dvc repro sweep/dvc.yaml``),
Snakemake's with the default params.yaml and ``snakemake sweep --configfile configs/smoke.yaml``, as
the README gives them. Each runs the sweep, then again with a seed added; the two run at once, one
thread per step, so that both compute the same numbers. Which steps ran is read from the tools' output.
"""

from __future__ import annotations

import re
import shlex
import threading

import pytest
import yaml

from ..conftest import ROOT
from ..helpers import Repo
from .test_workflow import GATE, dvc_dry_commands, dvc_ran, dvc_stages, snakemake_jobs

pytestmark = pytest.mark.workflow

SMOKE = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
METHODS, TRANSFERRED = SMOKE["sweep"]["methods"], SMOKE["sweep"]["transfer"]
# The sweeps start from the smoke config's first seed alone, and a second is added: every step of a
# sweep and of adding a seed, in two thirds of the time of the config's two seeds and a third.
SEEDS = SMOKE["sweep"]["seeds"][:1]
ADDED = max(SEEDS) + 1
SEEDS_LINE = re.compile(r"seeds: \[[0-9, ]+\]")
RUN_STEPS = ("sweep_search", "sweep_train", "sweep_evaluate")
TRANSFER_STEPS = ("sweep_transfer", "sweep_evaluate_transfer")  # for the methods of sweep.transfer


def _run_files(repo: Repo, seeds) -> dict[tuple[str, int], dict]:
    return {
        (method, seed): repo.json(f"results/sweep/runs/{method}/seed{seed}/genotype.json")
        for method in METHODS
        for seed in seeds
    }


def _smk_steps(output: str) -> set[tuple[str, str | None, str | None]]:
    steps = set()
    for job in snakemake_jobs(output):
        wildcards = dict(w.split("=", 1) for w in job.fields.get("wildcards", "").split(", ") if w)
        steps.add((job.rule, wildcards.get("method"), wildcards.get("seed")))
    return steps


def _dvc_steps(names) -> set[tuple[str, str | None, str | None]]:
    steps = set()
    for name in names:
        stage, _, key = name.split(":")[-1].partition("@")
        method, _, seed = key.partition("-")
        steps.add((stage, method or None, seed or None))
    return steps


def _runs(seeds) -> set:
    runs = {(step, method, str(seed)) for step in RUN_STEPS for method in METHODS for seed in seeds}
    return runs | {
        (step, method, str(seed)) for step in TRANSFER_STEPS for method in TRANSFERRED for seed in seeds
    }


def _added_seed_steps() -> set:
    return _runs([ADDED]) | {("sweep", None, None)}


def _dvc_sequence(repo: Repo, info: dict) -> None:
    params = repo.params
    params["sweep"]["seeds"] = SEEDS
    repo.params = params
    info["first"] = _dvc_steps(dvc_ran(repo.run("dvc", "repro", "sweep/dvc.yaml").stdout))
    info["summary"] = repo.json("results/sweep/summary.json")
    info["genotypes"] = _run_files(repo, SEEDS)
    info["second"] = _dvc_steps(dvc_ran(repo.run("dvc", "repro", "sweep/dvc.yaml").stdout))
    params["sweep"]["seeds"] = [*SEEDS, ADDED]
    repo.params = params
    info["added"] = _dvc_steps(dvc_ran(repo.run("dvc", "repro", "sweep/dvc.yaml").stdout))
    info["genotypes"].update(_run_files(repo, [ADDED]))
    info["added_summary"] = repo.json("results/sweep/summary.json")
    params["train"]["epochs"] += 1
    repo.params = params
    info["train"] = _dvc_steps(dvc_ran(repo.run("dvc", "repro", "--dry", "sweep/dvc.yaml").stdout))
    # The pipeline's own search at its seed: the same genotype as the sweep's P-DARTS run at that seed.
    repo.run("dvc", "repro", "derive")
    info["pipeline_genotype"] = repo.json("results/derive/genotype.json")


def _smk_sequence(repo: Repo, info: dict) -> None:
    args = [
        "snakemake",
        "--cores",
        "2",
        "--max-threads",
        "1",
        "-p",
        "sweep",
        "--configfile",
        "configs/smoke.yaml",
    ]
    smoke = repo.path / "configs" / "smoke.yaml"
    smoke.write_text(SEEDS_LINE.sub(f"seeds: {SEEDS}", smoke.read_text(), count=1))
    info["first"] = _smk_steps(repo.run(*args).stdout)
    info["genotypes"] = _run_files(repo, SEEDS)
    info["second"] = _smk_steps(repo.run(*args).stdout)
    smoke.write_text(SEEDS_LINE.sub(f"seeds: {[*SEEDS, ADDED]}", smoke.read_text(), count=1))
    info["added"] = _smk_steps(repo.run(*args).stdout)
    info["genotypes"].update(_run_files(repo, [ADDED]))
    info["added_summary"] = repo.json("results/sweep/summary.json")
    smoke.write_text(smoke.read_text().replace("  epochs: 1\n", "  epochs: 2\n", 1))  # train.epochs
    assert yaml.safe_load(smoke.read_text())["train"]["epochs"] == 2
    info["train"] = _smk_steps(repo.run(*args[:-3], "-n", *args[-3:]).stdout)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    repos = {
        "dvc": Repo(tmp_path_factory.mktemp("sweep-dvc") / "repo"),
        "snakemake": Repo(tmp_path_factory.mktemp("sweep-smk") / "repo", params=ROOT / "params.yaml"),
    }
    infos = {tool: {} for tool in repos}
    errors = {}

    def run(tool, sequence):
        try:
            sequence(repos[tool], infos[tool])
        except BaseException as exc:  # pytest.fail raises a BaseException
            errors[tool] = exc

    threads = [
        threading.Thread(target=run, args=("dvc", _dvc_sequence)),
        threading.Thread(target=run, args=("snakemake", _smk_sequence)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return repos, infos, errors


def _info(sweeps, tool) -> dict:
    _, infos, errors = sweeps
    if tool in errors:
        pytest.fail(f"{tool} sweep failed: {errors[tool]}")
    return infos[tool]


def test_both_tools_run_the_same_commands_on_the_same_files(sweeps):
    repo = sweeps[0]["dvc"]
    dvc_cmds = dvc_dry_commands(repo.run("dvc", "repro", "--dry", "--force", "sweep/dvc.yaml").stdout)
    resolved = dvc_stages(repo, "sweep/dvc.yaml")
    smk = {}
    for job in snakemake_jobs(
        repo.run("snakemake", "-n", "-p", "--forceall", "--cores", "1", "sweep").stdout
    ):
        wildcards = dict(w.split("=", 1) for w in job.fields.get("wildcards", "").split(", ") if w)
        smk[(job.rule, wildcards.get("method"), wildcards.get("seed"))] = job
    sweep_names = {name for name in dvc_cmds if name.startswith("sweep/dvc.yaml:")}
    assert set(dvc_cmds) - sweep_names <= {
        GATE,
        "prepare_data",
        "prepare_transfer",
    }  # the pipeline's it needs
    keys = {next(iter(_dvc_steps([name]))): name for name in sweep_names}
    assert set(keys) == set(smk) - {("prepare_data", None, None), ("prepare_transfer", None, None)}
    seeds = repo.params["sweep"]["seeds"]  # the sequence has added one
    plans = {("sweep_plan", method, None) for method in METHODS}
    assert set(keys) == _runs(seeds) | plans | {("sweep", None, None)} and TRANSFERRED
    for key, name in keys.items():
        assert shlex.split(dvc_cmds[name]) == shlex.split(smk[key].shell), key
        stage = resolved[name]
        assert set(stage["outs"]) == smk[key].files("output"), key
        deps = {d for d in stage["deps"] if d != "results/params.ok"}
        if key[0] == "sweep":  # DVC: the runs' folder; Snakemake: every file of it the step reads
            assert deps == {"results/sweep/runs"}
            assert all(f.startswith("results/sweep/runs/") for f in smk[key].files("input"))
        else:
            assert deps == smk[key].files("input"), key


@pytest.mark.parametrize("tool", ["dvc", "snakemake"])
def test_the_sweep_runs_every_method_on_every_seed_once(sweeps, tool):
    info = _info(sweeps, tool)
    assert _runs(SEEDS) | {("sweep", None, None)} <= info["first"]
    assert {("sweep_plan", m, None) for m in METHODS} <= info["first"]
    assert info["second"] == set()  # a second run does nothing
    summary = info["added_summary"]
    assert summary["seeds"] == [*SEEDS, ADDED] and list(summary["methods"]) == METHODS
    for method, entry in summary["methods"].items():
        assert entry["seeds"] == [*SEEDS, ADDED]
        assert len(entry["top1_err"]["values"]) == len(SEEDS) + 1
        assert 0.0 <= entry["top1_err"]["mean"] <= 1.0 and entry["top1_err"]["std"] >= 0.0
        assert ("transfer_err" in entry) == (method in TRANSFERRED)
        assert all(sum(sum(ops.values()) for ops in cell.values()) == 8 * (len(SEEDS) + 1)
                   for cell in entry["choices"].values())  # fmt: skip
    assert summary["methods"]["random"]["search_seconds"]["mean"] == 0
    assert summary["methods"]["darts"]["search_seconds"]["mean"] > 0
    report = sweeps[0][tool].path / "results" / "sweep" / "report"
    assert {p.name for p in report.iterdir()} >= {"index.html", "summary.md", "errors.png", "choices.png"}


@pytest.mark.parametrize("tool", ["dvc", "snakemake"])
def test_a_new_seed_runs_only_its_own_steps(sweeps, tool):
    info = _info(sweeps, tool)
    ran = info["added"] - {(GATE, None, None)}  # DVC's gate rechecks the changed settings
    assert ran == _added_seed_steps()


@pytest.mark.parametrize("tool", ["dvc", "snakemake"])
def test_a_train_setting_reruns_every_seeds_training_and_no_search(sweeps, tool):
    info = _info(sweeps, tool)
    ran = info["train"] - {(GATE, None, None)}
    trains = {("sweep_train", m, str(s)) for m in METHODS for s in [*SEEDS, ADDED]}
    assert trains <= ran  # DVC's dry run lists the steps whose own inputs changed
    assert not {step for step in ran if step[0] in ("sweep_plan", "sweep_search")}
    assert ran <= trains | {("sweep_evaluate", m, str(s)) for m in METHODS for s in [*SEEDS, ADDED]} | {
        ("sweep", None, None)
    }


def test_the_two_tools_find_the_same_genotypes(sweeps):
    assert _info(sweeps, "dvc")["genotypes"] == _info(sweeps, "snakemake")["genotypes"]


def test_the_sweeps_pdarts_run_is_the_pipelines_search_at_its_seed(sweeps):
    info = _info(sweeps, "dvc")
    seed = SMOKE["search"]["common"]["seed"]
    assert info["genotypes"][("pdarts", seed)] == info["pipeline_genotype"]
    assert (
        info["genotypes"][("pdarts", seed)]
        != info["genotypes"][("pdarts", next(s for s in [*SEEDS, ADDED] if s != seed))]
    )
