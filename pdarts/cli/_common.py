"""What the step commands share: output and checkpoint options, metrics files, and running a step
in data-parallel processes. Seconds and the environment go to the run record (``pdarts.runlog``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from ..checkpoints import CheckpointSaver, load_resume_state, remove_checkpoint
from ..io import write_json
from ..runlog import RUN_RECORD, record, record_environment
from .options import BooleanFlag

TIMING_KEYS = ("seconds",)  # per-epoch fields that go to the run record, not to history.json


def write_metrics(args, metrics: dict[str, Any], history: list[dict[str, Any]]) -> None:
    """Writes ``--out-metrics`` (for ``dvc metrics``) and ``--out-history`` (per epoch, for plots);
    the epochs' seconds go to the run record."""
    record(epoch_seconds=[round(epoch["seconds"], 3) for epoch in history if "seconds" in epoch])
    write_json(args.out_history, [{k: v for k, v in e.items() if k not in TIMING_KEYS} for e in history])
    write_json(args.out_metrics, metrics)


def add_output_options(parser, *names: str) -> None:
    """``--out-NAME PATH`` for each artifact a step writes (the workflow files name every path)."""
    for name in names:
        parser.add_argument(f"--out-{name}", required=True, metavar="PATH", help=f"{name} file to write")


def step_checkpoint(args, expected: str, keys: tuple[str, ...], is_main: bool):
    """The resume state of a step (None: start afresh) and its ``save_state`` callback (None: no
    checkpoints). Every process calls the callback, which gathers; the first one writes the file."""
    resume = load_resume_state(args.checkpoint, expected, keys)
    if not args.checkpoint:
        return resume, None
    saver = CheckpointSaver(args.checkpoint, expected) if is_main else None

    def save_state(state: dict[str, Any]) -> None:
        if saver is not None:
            saver(state)
            record(**saver.cost())

    return resume, save_state


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


def run_data_parallel(args, settings, work: Callable[[Any], None]) -> int:
    """Runs ``work(context)`` on ``settings.device`` in ``settings.processes`` data-parallel processes;
    once it is done, records the environment and removes the step's checkpoint (unless kept).

    One process: here. More: the same command relaunches itself under torchrun, and each process
    joins the group, works and leaves it. ``batch_size`` is the total over the processes (that it
    divides among them is a rule of the section, checked with its other settings).
    """
    from .. import distributed, launch

    device = distributed.resolve_device(settings.device)  # refused before any process starts
    if settings.processes > 1 and not launch.launched():
        RUN_RECORD.enabled = False  # the first process under torchrun writes it
        return launch.relaunch(settings.processes, sys.argv[1:])
    context = distributed.setup(device)
    RUN_RECORD.enabled = context.is_main
    record(processes=context.world_size)
    try:
        work(context)
    finally:
        distributed.teardown(context)
    if context.is_main:
        record_environment(context.device)
        remove_checkpoint(args.checkpoint, args.keep_checkpoint)
    return 0
