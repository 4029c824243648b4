"""The train step in 2 data-parallel processes on the CPU (torchrun + gloo), through the real command."""

import json

import torch

from pdarts.config import load_params

from .conftest import ROOT
from .test_cli_steps import _flags

SMOKE = load_params(ROOT / "configs" / "smoke.yaml")


def test_two_process_training_writes_once_and_agrees(tmp_path, run_pdarts):
    data = tmp_path / "dataset.json"
    proc = run_pdarts("prepare-data", *_flags(SMOKE["data"]), "--out", data)
    assert proc.returncode == 0, proc.stderr
    genotype = tmp_path / "genotype.json"
    genotype.write_text(
        json.dumps(
            {
                "normal": [["sep_conv_3x3", 0], ["skip_connect", 1]] * 4,
                "normal_concat": [2, 3, 4, 5],
                "reduce": [["max_pool_3x3", 0], ["dil_conv_3x3", 1]] * 4,
                "reduce_concat": [2, 3, 4, 5],
            }
        )
    )
    settings = {**SMOKE["train"], "epochs": 2, "processes": 2, "device": "cpu", "precision": "fp32"}
    out = tmp_path / "train"
    resume = ["--checkpoint", tmp_path / "train.pt", "--keep-checkpoint"]
    proc = run_pdarts(
        "train", "--genotype", genotype, "--data", data, *_flags(settings), *resume, "--out", out
    )
    assert proc.returncode == 0, proc.stderr
    # two workers ran, and only rank 0 wrote (one "artifacts written" line, one set of files)
    assert proc.stderr.count("on cpu x 2") == 1
    assert proc.stderr.count("artifacts written to") == 1
    assert sorted(p.name for p in out.iterdir()) == ["history.json", "metrics.json", "model.pt"]
    metrics = json.loads((out / "metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    manifest = json.loads(data.read_text())
    assert metrics["processes"] == 2 and len(history) == 2
    # metrics are reduced over both processes: every training image counted once per epoch
    assert all(epoch["samples"] == manifest["train"] for epoch in history)
    assert (
        metrics["train_acc"] == history[-1]["train_acc"]
        and metrics["train_loss"] == history[-1]["train_loss"]
    )
    checkpoint = torch.load(out / "model.pt", weights_only=True)
    params = sum(
        v.numel()
        for k, v in checkpoint["state_dict"].items()
        if not k.startswith("auxiliary_head.") and "running" not in k and "num_batches" not in k
    )
    assert params == metrics["params"]
    assert not any(k.startswith("module.") for k in checkpoint["state_dict"])  # saved unwrapped from DDP

    # The kept checkpoint has each process's random streams; a rerun resumes it in both processes
    # (nothing left to train) and writes the same weights.
    state = torch.load(tmp_path / "train.pt", weights_only=True)["state"]
    assert len(state["rng"]) == 2 and len(state["history"]) == 2
    again = tmp_path / "again"
    proc = run_pdarts(
        "train", "--genotype", genotype, "--data", data, *_flags(settings), *resume, "--out", again
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("resuming from") == 2  # both processes
    resumed = torch.load(again / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(resumed[k], v) for k, v in checkpoint["state_dict"].items())
