"""Starting a step in several data-parallel processes with torchrun (no torch import here: the step
commands decide whether to relaunch before they import torch)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["launched", "relaunch", "launched_argv"]

log = logging.getLogger(__name__)


def launched() -> bool:
    """Whether this process was started by torchrun."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


ARGV_ENV = "PDARTS_ARGV"  # the relaunched command's arguments, as JSON


def relaunch(processes: int, argv: Sequence[str]) -> int:
    """Runs ``python -m pdarts ARGV`` in ``processes`` processes under torchrun; returns its status.

    The arguments travel in the environment (``launched_argv`` reads them): torchrun's own parser
    would take pdarts's ``--log`` for an abbreviation of its ``--log-dir`` options and refuse it.
    """
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "-m",
        "pdarts",
    ]
    log.info("starting %d processes: %s %s", processes, " ".join(command), " ".join(argv))
    return subprocess.call(command, env={**os.environ, ARGV_ENV: json.dumps(list(argv))})


def launched_argv() -> list[str] | None:
    """The arguments ``relaunch`` gave this process (None if it was not started that way)."""
    if not launched() or ARGV_ENV not in os.environ:
        return None
    return json.loads(os.environ[ARGV_ENV])
