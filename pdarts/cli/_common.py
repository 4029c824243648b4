"""What the step commands share: output and checkpoint options, and running a step (in data-parallel
processes: ``pdarts.launch``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from ..checkpoints import remove_checkpoint
from ..launch import run_data_parallel
from .options import BooleanFlag


def add_output_options(parser, *names: str) -> None:
    """``--out-NAME PATH`` for each artifact a step writes (the workflow files name every path)."""
    for name in names:
        parser.add_argument(f"--out-{name}", required=True, metavar="PATH", help=f"{name} file to write")


KEEP_CHECKPOINTS_ENV = "PDARTS_KEEP_CHECKPOINTS"


def add_epoch_options(parser) -> None:
    """``--checkpoint PATH``, ``--keep-checkpoint`` and ``--out-live DIR`` for the steps that run epochs."""
    parser.add_argument("--out-live", metavar="DIR", help="also write per-epoch metrics there (dvclive)")
    parser.add_argument(
        "--checkpoint",
        help="resume state, saved after every epoch; a rerun continues from it (removed when the step "
        "is done, unless kept)",
    )
    parser.add_argument(
        "--keep-checkpoint", "--keep_checkpoint", dest="keep_checkpoint", action=BooleanFlag,
        default=os.environ.get(KEEP_CHECKPOINTS_ENV, "") not in ("", "0", "false", "no"),
        help=f"keep the checkpoint once the step is done (default: no; {KEEP_CHECKPOINTS_ENV}=1 sets "
        "it for a whole dvc repro / snakemake run without changing any step's command)",
    )  # fmt: skip


def run_step(args, settings, work: Callable[[Any], None]) -> int:
    """``launch.run_data_parallel`` with this command's arguments (relaunched as they are under
    torchrun); the step's checkpoint is removed once its artifacts are written, unless kept."""
    return run_data_parallel(
        settings, work, sys.argv[1:], lambda: remove_checkpoint(args.checkpoint, args.keep_checkpoint)
    )
