"""Shared fixtures: the repository root and a helper that runs the real ``pdarts`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_pdarts():
    """Runs ``python -m pdarts ARGS`` from the repository root and returns the completed process."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pdarts", *map(str, args)],
            cwd=cwd or ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def _threads_per_worker() -> int | None:
    """Under pytest-xdist, each worker's share of the cores (at least one thread); None otherwise."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers <= 1:
        return None
    return max(1, len(os.sched_getaffinity(0)) // workers)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "workflow: runs the real dvc and snakemake on the smoke pipeline in temporary git repos"
    )
    # Two workers with torch's default of one thread per core each put twice as many threads as cores
    # to work, and OpenMP's threads spin at each barrier while the one they wait for is descheduled: on
    # 2 cores a search test took 254 s in CI and 2.9 s alone (100 s against 2.6 s beside a 2-thread torch
    # process, 2026-12-05). So each worker, and the processes it starts, keeps to its share.
    threads = _threads_per_worker()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
