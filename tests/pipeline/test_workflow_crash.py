"""Pipeline runs that collide or crash, under the real ``dvc`` and ``snakemake``.

For each tool, in a temporary git repository on the smoke settings (with a longer stage 1): a run
is started; while its search stage is in its second epoch a second run is started in the same
workspace and must fail fast, naming the lock, without disturbing the first; the first is then
killed with SIGKILL (the tool and the step under it), and a rerun (with the tool's documented
recovery flags) resumes the stage from its checkpoint and finishes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from ..helpers import Repo

pytestmark = pytest.mark.workflow

TARGET = {
    "dvc": (["dvc", "repro", "search@0"], []),  # foreach over a list: stages by index
    # After a SIGKILL Snakemake keeps its lock and marks the job's outputs incomplete: `--unlock`
    # and `--rerun-incomplete` are its documented recovery (the README says so).
    "snakemake": (
        ["snakemake", "--cores", "1", "results/search/stage1/alphas.json"],
        [["snakemake", "--cores", "1", "--unlock"]],
    ),
}
# What the second run says. Snakemake: the lock, or, first, the running step's live folder, which
# exists while the step runs and which the first run marked incomplete (both refuse at once).
LOCK_WORDS = {"dvc": ("lock",), "snakemake": ("cannot be locked", "incomplete files")}


def _wait_for(path, text: str, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        assert process.poll() is None, f"the run ended before {text!r} appeared in {path}"
        time.sleep(0.05)
    pytest.fail(f"{text!r} did not appear in {path} within {timeout} s")


@pytest.mark.parametrize("tool", ["dvc", "snakemake"])
def test_second_run_fails_fast_and_killed_run_resumes(tmp_path, tool):
    repo = Repo(tmp_path / "repo")
    params = repo.params
    params["search"]["common"].update(epochs=8, warmup_epochs=2, init_channels=4)
    repo.params = params
    repo.git("commit", "-qam", "longer stage 1")
    command, recovery = TARGET[tool]
    log = repo.path / "logs" / "search" / "stage1.log"
    checkpoint = repo.path / "checkpoints" / "search" / "stage1.pt"

    first = subprocess.Popen(
        command,
        cwd=repo.path,
        env=repo.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the tool and the step under it
    )
    try:
        _wait_for(log, "epoch 2/8", first)
        started = time.monotonic()
        second = repo.run(*command, check=False)
        assert second.returncode != 0, second.stdout
        assert any(words in second.stdout.lower() for words in LOCK_WORDS[tool]), second.stdout
        assert time.monotonic() - started < 60
        assert first.poll() is None  # the first run goes on

        _wait_for(log, "epoch 3/8", first)
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert checkpoint.exists() and not (repo.path / "results/search/stage1/alphas.json").exists()

    for step in recovery:
        repo.run(*step)
    rerun = repo.run(*command, *(["--rerun-incomplete"] if tool == "snakemake" else []))
    text = log.read_text()
    assert "resuming from" in text and "epoch 8/8" in text and "epoch 1/8" not in text, text
    assert (repo.path / "results/search/stage1/alphas.json").exists(), rerun.stdout
    assert not checkpoint.exists()
