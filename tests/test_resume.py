"""Steps killed with SIGKILL at several points resume from their last epoch and end identical.

Each test runs a real ``pdarts`` step once uninterrupted, then again with SIGKILLs at several points
(as soon as an epoch is logged, i.e. while its checkpoint is being written; inside a later epoch;
while a resumed run loads its checkpoint), rerunning after each kill, and compares the artifacts.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from pdarts.config import load_params
from pdarts.genotype import GENOTYPES, genotype_to_dict

from .conftest import ROOT
from .helpers import SEARCH_OUTS, TRAIN_OUTS, flags, outs

SMOKE = load_params(ROOT / "configs" / "smoke.yaml")
COMMON = {**SMOKE["search"]["common"], "epochs": 6, "warmup_epochs": 2, "init_channels": 4}
TRAIN = {**SMOKE["train"], "epochs": 4, "batch_size": 8}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    for args in (
        ["prepare-data", *flags(SMOKE["data"]), "--out", base / "dataset.json"],
        ["prepare-space", *flags(SMOKE["search"]["space"]), "--out", base / "space.json"],
        ["prune", "--alphas", base / "space.json", "--keep", 8, "--out", base / "candidates.json"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "pdarts", *map(str, args)], cwd=ROOT, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
    (base / "genotype.json").write_text(json.dumps(genotype_to_dict(GENOTYPES["PDARTS"])))
    return base


def _search(inputs, out, checkpoint, *extra):
    return [
        *("pdarts", "--log", f"{out}.log", "search", "--stage", "s1", "--cells", "3"),
        *("--skip_dropout", "0.3", "--candidates", inputs / "candidates.json"),
        *("--data", inputs / "dataset.json", *flags(COMMON), *extra),
        *("--checkpoint", checkpoint, *outs(out, *SEARCH_OUTS)),
    ]


def _train(inputs, out, checkpoint, *extra):
    return [
        *("pdarts", "--log", f"{out}.log", "train", "--genotype", inputs / "genotype.json"),
        *("--data", inputs / "dataset.json", *flags(TRAIN), *extra),
        *("--checkpoint", checkpoint, *outs(out, *TRAIN_OUTS)),
    ]


def _run(command):
    command = [sys.executable, "-m", *map(str, command)]
    return subprocess.run(command, capture_output=True, text=True, env=ENV)


def _kill_at(command, log, marker: str, delay: float) -> None:
    """Starts ``command``, SIGKILLs it ``delay`` s after ``marker`` appears in its log."""
    log.unlink(missing_ok=True)
    victim = subprocess.Popen(
        [sys.executable, "-m", *map(str, command)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    deadline = time.monotonic() + 300
    while victim.poll() is None and time.monotonic() < deadline:
        if log.exists() and marker in log.read_text():
            break
        time.sleep(0.01)
    time.sleep(delay)
    assert victim.poll() is None, f"the step ended before {marker!r} + {delay} s; make it longer"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()


def _run_record(out):
    """The run record of a step run by ``_search``/``_train`` (its log is ``out.log``)."""
    return json.loads(out.with_suffix(".json").read_text())


# (log line to wait for, seconds after it): while the epoch's checkpoint is written; inside a later
# epoch; while a resumed run loads its checkpoint. Each kill is followed by a rerun of the step.
SEARCH_KILLS = [("epoch 1/6", 0.0), ("epoch 3/6", 0.3), ("resuming from", 0.0), ("epoch 5/6", 0.0)]
TRAIN_KILLS = [("train epoch 1/4", 0.0), ("train epoch 2/4", 0.2), ("resuming from", 0.0)]


@pytest.mark.parametrize(
    ("step", "command", "kills", "artifact"),
    [("search", _search, SEARCH_KILLS, "alphas.json"), ("train", _train, TRAIN_KILLS, "model.pt")],
)
def test_a_step_killed_at_several_points_resumes_identically(
    inputs, tmp_path, step, command, kills, artifact
):
    ref_live, run_live = tmp_path / "ref-live", tmp_path / "run-live"
    reference = _run(command(inputs, tmp_path / "ref", tmp_path / "ref.pt", "--out-live", ref_live))
    assert reference.returncode == 0, reference.stderr
    assert not (tmp_path / "ref.pt").exists()  # removed once the step is done

    checkpoint, out, live = tmp_path / "ckpt.pt", tmp_path / "run", ("--out-live", run_live)
    for marker, delay in kills:
        _kill_at(command(inputs, out, checkpoint, *live), tmp_path / "run.log", marker, delay)
        assert not (out / artifact).exists()
    resumed = _run(command(inputs, out, checkpoint, *live))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    assert not checkpoint.exists() and not list(tmp_path.glob(".ckpt.pt.*"))  # no leftovers
    # no timings in the artifacts: the resumed run's files are the uninterrupted run's, byte for byte
    for name in ("history.json", "metrics.json", artifact):
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
    record = _run_record(tmp_path / "ref")  # timings, costs and versions are in the run record
    assert record["checkpoint_mb"] > 0 and record["checkpoint_seconds"] > 0  # the cost, measured
    epochs = (COMMON if step == "search" else TRAIN)["epochs"]
    assert len(record["epoch_seconds"]) == epochs and all(s > 0 for s in record["epoch_seconds"])
    assert record["seconds"] > 0 and "torch" in record["environment"]
    assert "torch" in _run_record(out)["environment"]  # the resumed run's record
    # the live metrics folder too (the resumed run wrote the epochs of its checkpoint into it first)
    live = {str(p.relative_to(run_live)): p.read_bytes() for p in run_live.rglob("*") if p.is_file()}
    assert live == {str(p.relative_to(ref_live)): p.read_bytes() for p in ref_live.rglob("*") if p.is_file()}
    assert b"\n%d\t" % (epochs - 1) in live["plots/metrics/train_loss.tsv"]  # every epoch, the last too
    if step == "search":
        assert "environment" not in json.loads((out / artifact).read_text())
    else:
        got, want = (torch.load(d / artifact, weights_only=True) for d in (out, tmp_path / "ref"))
        assert got["state_dict"].keys() == want["state_dict"].keys()
        assert all(torch.equal(got["state_dict"][k], want["state_dict"][k]) for k in want["state_dict"])
        assert got["settings"] == want["settings"] and got["settings"]["seed"] == 0
        assert "environment" not in got


def test_keep_checkpoint_keeps_it_and_a_rerun_with_other_settings_refuses_it(inputs, tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    proc = _run(_train(inputs, tmp_path / "a", checkpoint, "--keep-checkpoint"))
    assert proc.returncode == 0, proc.stderr
    state = torch.load(checkpoint, weights_only=True)["state"]
    assert len(state["history"]) == TRAIN["epochs"]  # kept, complete
    proc = _run(_train(inputs, tmp_path / "b", checkpoint, "--seed", "1"))
    assert proc.returncode == 2 and "was written for other settings" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "b").exists()
    assert checkpoint.exists()  # never deleted by a refusal


def test_checkpoint_of_other_settings_or_truncated_is_refused(inputs, tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    from pdarts.checkpoints import CheckpointSaver

    CheckpointSaver(checkpoint, "something else")({"history": []})
    proc = _run(_search(inputs, tmp_path / "c", checkpoint))
    assert proc.returncode == 2 and "was written for other settings" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "c").exists()
    checkpoint.write_bytes(b"PK\x03\x04 truncated")
    proc = _run(_search(inputs, tmp_path / "d", checkpoint))
    assert proc.returncode == 2 and "is unreadable" in proc.stderr and not (tmp_path / "d").exists()


# The real command, with one fault injected: the images of the second weight batch of epoch 3 are NaN.
INJECT_NAN = """
import sys, torch
import pdarts.search.stage as stage
real, calls = stage.search_step, []
def search_step(model, weight_batch, *args):
    calls.append(1)
    if len(calls) == 2 * 2 + 2:  # epoch 3 (two steps per epoch), step 2
        weight_batch = (torch.full_like(weight_batch[0], float("nan")), weight_batch[1])
    return real(model, weight_batch, *args)
stage.search_step = search_step
from pdarts.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_non_finite_loss_names_epoch_and_step_and_keeps_the_last_checkpoint(inputs, tmp_path):
    checkpoint, out = tmp_path / "ckpt.pt", tmp_path / "nan"
    command = _search(inputs, out, checkpoint, "--batch_size", "16")[1:]  # 32 images: 2 steps per epoch
    proc = subprocess.run(
        [sys.executable, "-c", INJECT_NAN, *map(str, command)], capture_output=True, text=True, env=ENV
    )
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert "search loss is not finite at epoch 3, step 2;" in message and "weight_lr" in message
    assert "Traceback" not in proc.stderr and not out.exists()
    # The checkpoint holds the last good epoch, the one before the failure.
    assert len(torch.load(checkpoint, weights_only=True)["state"]["history"]) == 2
