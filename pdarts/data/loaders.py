"""Data loaders whose order and worker random streams depend only on a seed."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["make_loader"]


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
    sampler: Sampler | None = None,
    shard: tuple[int, int] | None = None,
) -> DataLoader:
    """A data loader whose order and worker random streams depend only on ``seed``.

    Each pass over the loader draws a new order from a generator seeded with ``seed``, so a fresh
    loader with the same seed repeats the same sequence of epochs. The loader also draws each worker's
    base seed from that generator and seeds the worker's torch, numpy and ``random`` streams with it
    (PyTorch does this itself since 1.9), so random augmentations are reproducible too. Workers are
    started afresh each epoch, so that their seeds, too, come from the generator's state at the start
    of the epoch: a run resumed from a checkpoint draws exactly what the uninterrupted run drew.
    ``shard=(rank, processes)`` gives this process its share of every shuffled batch
    (:class:`~pdarts.distributed.ShardedRandomSampler`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    generator = torch.Generator()
    generator.manual_seed(seed)
    if shard is not None:
        from ..distributed import ShardedRandomSampler

        sampler = ShardedRandomSampler(len(dataset), *shard, generator=generator)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        generator=generator,
    )
