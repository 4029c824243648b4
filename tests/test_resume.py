"""A search stage killed with SIGKILL mid-run resumes from its last epoch and ends identical."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pdarts.config import load_params

from .conftest import ROOT
from .test_cli_steps import _flags

SMOKE = load_params(ROOT / "configs" / "smoke.yaml")
COMMON = {**SMOKE["search"]["common"], "epochs": 6, "warmup_epochs": 2, "init_channels": 4}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    for args in (
        ["prepare-data", *_flags(SMOKE["data"]), "--out", base / "dataset.json"],
        ["prepare-space", *_flags(SMOKE["search"]["space"]), "--out", base / "space.json"],
        ["prune", "--alphas", base / "space.json", "--keep", 8, "--out", base / "candidates.json"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "pdarts", *map(str, args)], cwd=ROOT, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
    return base


def _command(inputs, out, checkpoint):
    return [
        sys.executable,
        "-m",
        "pdarts",
        "search",
        "--stage",
        "s1",
        "--cells",
        "3",
        "--skip_dropout",
        "0.3",
        "--candidates",
        str(inputs / "candidates.json"),
        "--data",
        str(inputs / "dataset.json"),
        *map(str, _flags(COMMON)),
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(out),
    ]


def test_killed_stage_resumes_identically(inputs, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = subprocess.run(
        _command(inputs, tmp_path / "ref", tmp_path / "ref.pt"), capture_output=True, text=True, env=env
    )
    assert reference.returncode == 0, reference.stderr
    assert not (tmp_path / "ref.pt").exists()  # removed once the stage is done

    checkpoint, out = tmp_path / "ckpt.pt", tmp_path / "run"
    victim = subprocess.Popen(
        _command(inputs, out, checkpoint), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere inside a later epoch
    assert victim.poll() is None, "the stage finished before it could be killed; make it longer"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert checkpoint.exists() and not (out / "alphas.json").exists()

    resumed = subprocess.run(_command(inputs, out, checkpoint), capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    assert (out / "alphas.json").read_bytes() == (tmp_path / "ref" / "alphas.json").read_bytes()
    history = json.loads((out / "history.json").read_text())
    reference_history = json.loads((tmp_path / "ref" / "history.json").read_text())
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(history) == strip(reference_history) and len(history) == 6
    assert not checkpoint.exists()


def test_checkpoint_of_other_settings_or_truncated_is_refused(inputs, tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    from pdarts.cli._common import save_checkpoint

    save_checkpoint(checkpoint, {"fingerprint": "something else", "state": {"history": []}})
    proc = subprocess.run(_command(inputs, tmp_path / "c", checkpoint), capture_output=True, text=True)
    assert proc.returncode == 2 and "was written for other settings" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "c").exists()
    checkpoint.write_bytes(b"PK\x03\x04 truncated")
    proc = subprocess.run(_command(inputs, tmp_path / "d", checkpoint), capture_output=True, text=True)
    assert proc.returncode == 2 and "is unreadable" in proc.stderr and not (tmp_path / "d").exists()
