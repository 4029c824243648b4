"""The train step in 2 data-parallel processes on the CPU (torchrun + gloo), through the real command."""

import json

import torch

from pdarts.config import load_params

from .conftest import ROOT
from .helpers import SEARCH_OUTS, TRAIN_OUTS, flags, outs

SMOKE = load_params(ROOT / "configs" / "smoke.yaml")


def _train_inputs(tmp_path, run_pdarts):
    """A digits manifest and a genotype."""
    data = tmp_path / "dataset.json"
    proc = run_pdarts("prepare-data", *flags(SMOKE["data"]), "--out", data)
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
    return data, genotype


SETTINGS = {**SMOKE["train"], "epochs": 2, "processes": 2, "device": "cpu", "precision": "fp32"}


def test_two_process_training_writes_once_and_agrees(tmp_path, run_pdarts):
    data, genotype = _train_inputs(tmp_path, run_pdarts)
    out = tmp_path / "train"
    resume = ["--checkpoint", tmp_path / "train.pt", "--keep-checkpoint"]
    train = ["train", "--genotype", genotype, "--data", data, *flags(SETTINGS), *resume]
    proc = run_pdarts(*train, *outs(out, *TRAIN_OUTS))
    assert proc.returncode == 0, proc.stderr
    # two workers ran, and only rank 0 wrote (one "artifacts written" line, one set of files)
    assert proc.stderr.count("on cpu x 2") == 1
    assert proc.stderr.count("artifacts written") == 1
    assert sorted(p.name for p in out.iterdir()) == ["history.json", "metrics.json", "model.pt"]
    metrics = json.loads((out / "metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    manifest = json.loads(data.read_text())
    assert len(history) == 2 and "processes" not in metrics  # the process count is in the run record
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
    proc = run_pdarts(*train, *outs(again, *TRAIN_OUTS))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("resuming from") == 2  # both processes
    resumed = torch.load(again / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(resumed[k], v) for k, v in checkpoint["state_dict"].items())


def test_sharded_sampler_splits_each_single_process_batch_between_the_processes():
    from pdarts.data import make_loader

    dataset = torch.utils.data.TensorDataset(torch.arange(21))
    single = make_loader(dataset, 6, shuffle=True, seed=3, shard=(0, 1))  # as one process does
    shards = [make_loader(dataset, 3, shuffle=True, seed=3, shard=(rank, 2)) for rank in range(2)]
    for _ in range(2):  # two epochs: each draws a new order, alike in every process
        whole = [batch[0].tolist() for batch in single]
        parts = [[batch[0].tolist() for batch in loader] for loader in shards]
        assert len(parts[0]) == len(parts[1])  # the same number of steps everywhere
        # The shards of each step are the single-process batch drawn from the same seed (the
        # 21st image, which does not split in two, is dropped).
        combined = [sorted(a + b) for a, b in zip(*parts, strict=True)]
        assert combined[:-1] == [sorted(batch) for batch in whole[:-1]]
        assert set(combined[-1]) < set(whole[-1]) and sum(map(len, combined)) == 20


def test_two_process_search_stage_writes_once_and_resumes(tmp_path, run_pdarts):
    data, space, candidates = tmp_path / "dataset.json", tmp_path / "space.json", tmp_path / "c.json"
    for args in (
        ["prepare-data", *flags(SMOKE["data"]), "--out", data],
        ["prepare-space", *flags(SMOKE["search"]["space"]), "--out", space],
        ["prune", "--alphas", space, "--keep", 8, "--out", candidates],
    ):
        assert run_pdarts(*args).returncode == 0
    common = {**SMOKE["search"]["common"], "batch_size": 16, "processes": 2, "device": "cpu"}
    stage = ["search", "--stage", "s1", "--cells", "2", "--skip_dropout", "0.2"]
    stage += ["--candidates", candidates, "--data", data, *flags(common)]
    keep = ["--checkpoint", tmp_path / "s1.pt", "--keep-checkpoint"]
    proc = run_pdarts(*stage, *keep, *outs(tmp_path / "s1", *SEARCH_OUTS))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("on cpu x 2") == 1 and proc.stderr.count("done in") == 1
    assert sorted(p.name for p in (tmp_path / "s1").iterdir()) == [
        "alphas.json",
        "history.json",
        "metrics.json",
    ]
    state = torch.load(tmp_path / "s1.pt", weights_only=True)["state"]
    assert len(state["rng"]) == 2 and len(state["history"]) == common["epochs"]
    # A rerun resumes (nothing left to do) in both processes and writes the same alphas.
    proc = run_pdarts(*stage, *keep, *outs(tmp_path / "again", *SEARCH_OUTS))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again" / "alphas.json").read_bytes() == (tmp_path / "s1" / "alphas.json").read_bytes()


def test_two_process_training_writes_one_run_record(tmp_path, run_pdarts):
    """As the pipeline runs it (``pdarts --log FILE train``): only rank 0 writes the run record."""
    data, genotype = _train_inputs(tmp_path, run_pdarts)
    log = tmp_path / "logs" / "train.log"
    settings = {**SETTINGS, "epochs": 1}
    train = ["train", "--genotype", genotype, "--data", data, *flags(settings)]
    proc = run_pdarts("--log", log, *train, *outs(tmp_path / "train", *TRAIN_OUTS))
    assert proc.returncode == 0, proc.stderr
    # one run record: neither the torchrun launcher nor rank 1 writes one
    assert sorted(p.name for p in log.parent.iterdir()) == ["train.json", "train.log"]
    record = json.loads(log.with_suffix(".json").read_text())
    assert record["processes"] == 2 and len(record["epoch_seconds"]) == 1 and record["seconds"] > 0
    assert record["environment"]["device"] == "cpu" and record["precision"] == "fp32"
