"""The pipeline's step commands refuse bad input with one line, exit status 2 and no artifact; their
artifacts depend on the settings and inputs only (what varies goes to the run record beside ``--log``).

(The happy path of every step runs in tests/pipeline/test_workflow.py, under DVC and Snakemake.)
"""

import json

import pytest
import torch
import yaml

from ..conftest import ROOT
from ..helpers import SMOKE, TRAIN_OUTS, flags, outs, save, search_args, train_args


def _assert_refused(proc, message, out_paths=()):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert message in lines[0]
    for path in out_paths:
        assert not path.exists(), path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A digits manifest, the initial space and a genotype, made by the real commands."""
    import subprocess
    import sys

    base = tmp_path_factory.mktemp("prepared")

    def run(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "pdarts", *map(str, args)], cwd=base, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    run("prepare-data", *flags(SMOKE["data"]), "--out", "dataset.json")
    run("prepare-space", *flags(SMOKE["search"]["space"]), "--out", "space.json")
    (base / "genotype.json").write_text(
        json.dumps(
            {
                "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 4,
                "normal_concat": [2, 3, 4, 5],
                "reduce": [["max_pool_3x3", 0], ["skip_connect", 1]] * 4,
                "reduce_concat": [2, 3, 4, 5],
            }
        )
    )
    return base


def test_prepared_manifest_and_space(prepared):
    manifest = json.loads((prepared / "dataset.json").read_text())
    assert manifest["format"] == "arrays" and manifest["dataset"] == "digits"
    assert (manifest["train"], manifest["test"], manifest["subset"]) == (64, 64, 64)
    assert manifest["num_classes"] == 10 and manifest["in_channels"] == 1
    space = json.loads((prepared / "space.json").read_text())
    assert len(space["normal"]) == 14 and space["reduce"][0]["alpha"] == [0.0] * 8


def test_prune_keeps_all_from_the_space_and_refuses_growth(prepared, run_pdarts, tmp_path):
    out = tmp_path / "candidates.json"
    proc = run_pdarts(
        "prune", "--alphas", prepared / "space.json", "--keep", 8, "--stage", "s1", "--out", out
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["normal"][0] == SMOKE["search"]["space"]["ops"] and data["stage"] == "s1"
    proc = run_pdarts(
        "prune",
        "--alphas",
        prepared / "space.json",
        "--keep",
        9,
        "--stage",
        "s2",
        "--out",
        tmp_path / "more.json",
    )
    _assert_refused(proc, "would keep 9 ops per edge", [tmp_path / "more.json"])


def test_search_refuses_bad_candidates_and_settings(prepared, run_pdarts, tmp_path):
    bad = tmp_path / "candidates.json"
    bad.write_text(json.dumps({"normal": [["conv_9x9"]] * 14, "reduce": [["skip_connect"]] * 14}))
    out = tmp_path / "stage"
    _assert_refused(run_pdarts(*search_args(prepared, bad, out)), "unknown op 'conv_9x9'", [out])
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"normal": [["skip_connect"]] * 14, "reduce": [["skip_connect"]] * 14}))
    _assert_refused(
        run_pdarts(*search_args(prepared, good, out, epochs=0)),
        "search.common.epochs: 0 is less than the minimum of 1",
        [out],
    )
    _assert_refused(
        run_pdarts(*search_args(prepared, good, out, weight_lr="fast")),
        "--weight_lr/--weight-lr: invalid float value: 'fast'",
        [out],
    )
    _assert_refused(
        run_pdarts(*search_args(prepared, good, out), "--data", good),
        "is not an arrays data manifest",
        [out],
    )


def test_train_refuses_a_missing_or_bad_genotype(prepared, run_pdarts, tmp_path):
    out = tmp_path / "train"
    _assert_refused(run_pdarts(*train_args(prepared, tmp_path / "nope.json", out)), "nope.json", [out])
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"normal": [], "normal_concat": [2, 3, 4, 5], "reduce": [], "reduce_concat": [2, 3, 4, 5]})
    )
    _assert_refused(run_pdarts(*train_args(prepared, bad, out)), "expected 8 [op, input] pairs", [out])
    _assert_refused(
        run_pdarts(*train_args(prepared, prepared / "genotype.json", out, device="cuda:0")),
        "CUDA is not available",
        [out],
    )


def test_train_then_evaluate_and_refuse_a_corrupt_model(prepared, run_pdarts, tmp_path):
    out = tmp_path / "train"
    proc = run_pdarts(*train_args(prepared, prepared / "genotype.json", out))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert len(history) == SMOKE["train"]["epochs"] and metrics["params"] > 0
    result = tmp_path / "eval.json"
    evaluate = ["evaluate", "--data", prepared / "dataset.json", *flags(SMOKE["evaluate"])]
    log = tmp_path / "logs" / "evaluate.log"
    proc = run_pdarts("--log", log, *evaluate, "--model", out / "model.pt", "--out", result)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(result.read_text())
    assert scores["samples"] == 64 and 0 <= scores["top1_err"] <= 1 and scores["params"] == metrics["params"]
    # what varies from run to run is in the run record beside the log, not in the metrics
    run = json.loads(log.with_suffix(".json").read_text())
    for batch_size in SMOKE["evaluate"]["latency_batch_sizes"]:
        assert run[f"latency_ms_batch{batch_size}"] > 0 and f"latency_ms_batch{batch_size}" not in scores
    assert run["evaluate_seconds"] >= 0 and run["precision"] and run["environment"]["device"] == "cpu"
    assert not {"seconds", "precision", "device"} & scores.keys()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((out / "model.pt").read_bytes()[:1000])
    _assert_refused(
        run_pdarts(*evaluate, "--model", truncated, "--out", tmp_path / "e2.json"),
        "is not a readable pdarts checkpoint",
        [tmp_path / "e2.json"],
    )


def test_train_twice_writes_byte_identical_artifacts_and_a_run_record(prepared, run_pdarts, tmp_path):
    """Equal settings give equal files (models included); timings and versions go to the run record."""
    settings = {"epochs": 2, "device": "cpu"}
    runs = []
    for name in ("a", "b"):
        log = tmp_path / "logs" / f"{name}.log"
        args = train_args(prepared, prepared / "genotype.json", tmp_path / name, **settings)
        proc = run_pdarts("--log", log, *args)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(log.with_suffix(".json").read_text()))
    for file in ("model.pt", "metrics.json", "history.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["a.json", "a.log", "b.json", "b.log"]
    history = json.loads((tmp_path / "a" / "history.json").read_text())
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert len(history) == 2 and not any("seconds" in epoch for epoch in history)
    assert not {"seconds", "processes", "precision", "checkpoint_seconds", "checkpoint_mb"} & metrics.keys()
    model = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    assert "environment" not in model and model["settings"]["epochs"] == 2
    for run, name in zip(runs, "ab"):
        assert run["seconds"] > 0 and len(run["epoch_seconds"]) == 2
        assert all(seconds > 0 for seconds in run["epoch_seconds"])
        assert sum(run["epoch_seconds"]) <= run["seconds"]
        assert {"pdarts", "torch", "python", "device", "threads"} <= run["environment"].keys()
        assert run["environment"]["device"] == "cpu" and run["processes"] == 1 and run["precision"]
        assert run["command"].startswith("pdarts --log ") and f"{name}/model.pt" in run["command"]


def test_transfer_and_evaluate_read_the_prepared_folder(prepared, run_pdarts, tmp_path):
    """prepare-transfer takes the transfer_data settings; transfer and evaluate take its folder."""
    for split, count in (("train", 2), ("val", 1)):
        for label in ("cat", "dog"):
            for i in range(count):
                save(tmp_path / "images" / split / label / f"{i}.png", (12, 10), seed=len(split) + i)
    data = tmp_path / "transfer_data"
    transfer_data = {"dataset": "imagefolder", "root": tmp_path / "images", "verify_images": True}
    proc = run_pdarts("prepare-transfer", *flags(transfer_data), "--out", data)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["format"] == "imagefolder" and (manifest["train"], manifest["val"]) == (4, 2)
    out = tmp_path / "transfer"
    settings = {"epochs": 1, "warmup_epochs": 0, "batch_size": 2, "precision": "fp32", "device": "cpu"}
    settings = {**SMOKE["transfer"], **settings}
    transfer = ["transfer", "--genotype", prepared / "genotype.json", "--data", data, *flags(settings)]
    proc = run_pdarts(*transfer, *outs(out, *TRAIN_OUTS), "--out-live", tmp_path / "live")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["history.json", "metrics.json", "model.pt"]
    live = sorted(str(p.relative_to(tmp_path / "live")) for p in (tmp_path / "live").rglob("*.*"))
    tsv = [f"plots/metrics/{name}.tsv" for name in ("drop_path", "lr", "train_acc", "train_loss")]
    assert live == ["metrics.json", *tsv]  # the per-epoch metrics, written with dvclive
    metrics = json.loads((out / "metrics.json").read_text())
    evaluate = [
        "evaluate",
        "--model",
        out / "model.pt",
        *flags(SMOKE["evaluate"]),
        "--latency_batch_sizes",
        1,
    ]
    result = tmp_path / "eval.json"
    proc = run_pdarts(*evaluate, "--data", data, "--out", result)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(result.read_text())
    assert scores["params"] == metrics["params"] and scores["samples"] == 2


def test_prepare_refuses_missing_data(run_pdarts, tmp_path):
    out = tmp_path / "dataset.json"
    proc = run_pdarts(
        "prepare-data",
        "--dataset",
        "cifar10",
        "--root",
        tmp_path / "nowhere",
        "--no-download",
        "--subset",
        0,
        "--out",
        out,
    )
    _assert_refused(proc, "cifar-10-batches-py", [out])
    proc = run_pdarts(
        "prepare-transfer",
        "--dataset",
        "imagefolder",
        "--root",
        tmp_path / "nowhere",
        "--verify_images",
        "--out",
        tmp_path / "transfer",
    )
    _assert_refused(proc, "nowhere", [tmp_path / "transfer"])
    assert [p.name for p in tmp_path.iterdir()] == []


def test_check_params_and_yaml_agree_on_smoke(tmp_path, run_pdarts):
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(SMOKE))
    assert run_pdarts("check-params", path).returncode == 0


def test_check_params_out_is_written_only_for_valid_files(tmp_path, run_pdarts):
    out = tmp_path / "results" / "params.ok"
    proc = run_pdarts("check-params", ROOT / "params.yaml", ROOT / "configs" / "smoke.yaml", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text()) == {"valid": True}
    first = out.read_bytes()
    assert run_pdarts("check-params", ROOT / "params.yaml", "--out", out).returncode == 0
    assert out.read_bytes() == first  # constant: passing the check changes nothing downstream

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SMOKE, "train": {**SMOKE["train"], "epochs": 0}}))
    other = tmp_path / "other.ok"
    # one bad file among good ones: refused, nothing written
    _assert_refused(
        run_pdarts("-q", "check-params", ROOT / "params.yaml", bad, "--out", other),
        "train.epochs: 0 is less than the minimum of 1",
        [other],
    )
