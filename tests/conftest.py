"""Shared fixtures: the repository root and a helper that runs the real ``pdarts`` command."""

from __future__ import annotations

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


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "workflow: runs the real dvc and snakemake on the smoke pipeline in temporary git repos"
    )
