"""Data-parallel training across processes (torchrun / DistributedDataParallel).

A step command started with ``processes > 1`` relaunches itself under ``torch.distributed.run``
(``torchrun --standalone``, which picks a free port, so two jobs on one host do not collide); each
process then trains on its shard of every batch, gradients are all-reduced by DDP, metrics are
summed across processes, and only rank 0 writes artifacts.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["Context", "launched", "relaunch", "setup", "teardown", "all_reduce_sum", "all_gather_objects"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """Where this process stands: rank, world size and its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """Whether this process was started by torchrun."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def relaunch(processes: int, argv: Sequence[str]) -> int:
    """Runs ``python -m pdarts ARGV`` in ``processes`` processes under torchrun; returns its status."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "-m",
        "pdarts",
        *argv,
    ]
    log.info("starting %d processes: %s", processes, " ".join(command))
    return subprocess.call(command)


def setup(device: torch.device) -> Context:
    """Joins the process group if started by torchrun (NCCL on CUDA, else gloo)."""
    if not launched():
        return Context(device=device)
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Context(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


def teardown(context: Context) -> None:
    if context.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(values: Sequence[float | torch.Tensor], context: Context) -> list[float]:
    """Sums numbers across processes (a no-op in one process)."""
    tensor = torch.tensor(
        [float(v) for v in values],
        dtype=torch.float64,
        device=context.device if context.device.type == "cuda" else "cpu",
    )
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def all_gather_objects(value: Any, context: Context) -> list[Any]:
    """``value`` of every process, in rank order (``[value]`` in one process)."""
    if not context.distributed:
        return [value]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered
