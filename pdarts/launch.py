"""Running a step in one or several data-parallel processes; several are started with torchrun (no
torch import at the top: the step commands decide whether to relaunch before they import torch)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .runlog import RUN_RECORD, record, record_environment

__all__ = ["launched", "relaunch", "launched_argv", "run_data_parallel"]

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


def run_data_parallel(
    settings: Any, work: Callable[[Any], None], argv: Sequence[str], done: Callable[[], None] | None = None
) -> int:
    """Runs ``work(context)`` on ``settings.device`` in ``settings.processes`` data-parallel processes;
    once it is done, the first process records the environment and calls ``done`` (which removes the
    step's checkpoint, say).

    One process: here. More: the command ``argv`` relaunches itself under torchrun, and each process
    joins the group, works and leaves it. ``batch_size`` is the total over the processes (that it
    divides among them is a rule of the section, checked with its other settings).
    """
    from . import distributed

    device = distributed.resolve_device(settings.device)  # refused before any process starts
    if settings.processes > 1 and not launched():
        RUN_RECORD.enabled = False  # the first process under torchrun writes it
        return relaunch(settings.processes, argv)
    context = distributed.setup(device)
    RUN_RECORD.enabled = context.is_main
    record(processes=context.world_size)
    try:
        work(context)
    finally:
        distributed.teardown(context)
    if context.is_main:
        record_environment(context.device)
        if done is not None:
            done()
    return 0
