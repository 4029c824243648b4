"""Data-parallel training across processes (torchrun / DistributedDataParallel).

A step command started with ``processes > 1`` relaunches itself under ``torch.distributed.run``
(``torchrun --standalone``, which picks a free port, so two jobs on one host do not collide; see
``pdarts.launch``); each
process then trains on its shard of every batch, gradients are all-reduced by DDP, metrics are
summed across processes, and only rank 0 writes artifacts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .errors import PdartsError
from .launch import launched

__all__ = [
    "Context",
    "resolve_device",
    "setup",
    "teardown",
    "all_reduce_sum",
    "all_gather_objects",
    "average_gradients",
    "ShardedRandomSampler",
]

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else CPU; anything else as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PdartsError(
            f"device {name!r} asked for, but CUDA is not available here; set device: auto or cpu"
        )
    return device


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

    @classmethod
    def current(cls) -> Context:
        """This process's place in the process group it has joined (one process if none)."""
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        on_gpu = dist.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


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


def average_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Averages the parameters' gradients over the processes (one collective; a no-op in one process).

    The search updates the weights and the alphas in two separate steps, each with the gradients of
    its own parameters only, so it averages those explicitly rather than through DDP's hooks.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


class ShardedRandomSampler(torch.utils.data.Sampler[int]):
    """This process's share of a shuffled order that every process draws alike.

    All processes draw the same permutation from identically seeded generators (the loader's), and
    process r takes positions r, r + N, r + 2N ...: with a per-process batch of B / N, the N shards of
    a step together are exactly the batch that one process with batch B would take. The tail that
    does not split evenly is dropped, so every process runs the same number of steps.
    """

    def __init__(self, size: int, rank: int, world_size: int, generator: torch.Generator) -> None:
        self.size, self.rank, self.world_size, self.generator = size, rank, world_size, generator

    def __len__(self) -> int:
        return self.size // self.world_size

    def __iter__(self):
        order = torch.randperm(self.size, generator=self.generator)
        yield from order[self.rank : len(self) * self.world_size : self.world_size].tolist()
