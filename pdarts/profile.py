"""Model size and cost: parameter counts and forward multiply-adds (docs/algorithm.md#evaluation-metrics).

Multiply-adds are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass
(convolutions and matrix products; a multiply-add is 2 of its flops), not by a formula kept by
hand. That counter gives 543M for the PDARTS ImageNet network where the paper reports 557M, a
counting-convention difference (docs/algorithm.md#evaluation-metrics).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["EVALUATION_NETWORKS", "MOBILE_MACS", "count_parameters", "count_macs", "network_summary"]

#: The mobile setting's budget: fewer than 600M multiply-adds per 224x224 image.
MOBILE_MACS = 600_000_000

#: dataset -> (network family, classes, the settings section whose defaults are the paper's network)
EVALUATION_NETWORKS: dict[str, tuple[str, int, str]] = {
    "cifar10": ("cifar", 10, "train"),
    "cifar100": ("cifar", 100, "train"),
    "imagenet": ("imagenet", 1000, "transfer"),
}


def count_parameters(model: nn.Module, exclude_auxiliary: bool = True) -> int:
    """Number of parameters of ``model``.

    Args:
        model: any module; an ``auxiliary_head`` attribute (module or None) marks the auxiliary head.
        exclude_auxiliary: leave the auxiliary head out (the papers' convention: it is dropped
            after training).
    """
    excluded: set[int] = set()
    head = getattr(model, "auxiliary_head", None)
    if exclude_auxiliary and isinstance(head, nn.Module):
        excluded = {id(p) for p in head.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in excluded)


def count_macs(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Forward multiply-adds for one image of ``input_size`` (channels, height, width), in eval mode.

    The model's training mode is restored afterwards; the image is zeros on the model's device
    (the count does not depend on values).
    """
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    image = torch.zeros((1, *input_size), device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(image)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def network_summary(genotype, dataset: str, cells: int | None = None, channels: int | None = None) -> dict:
    """Size and cost of a genotype's evaluation network for ``dataset``: parameters (the auxiliary
    head apart) and multiply-adds of one image. Cells and channels default to the paper's network
    (the schema's defaults of the ``train`` or ``transfer`` section)."""
    from .errors import PdartsError
    from .networks import FAMILIES
    from .settings import schema_defaults

    family, num_classes, section = EVALUATION_NETWORKS[dataset]
    paper = schema_defaults(section)
    cells = paper["cells"] if cells is None else cells
    channels = paper["init_channels"] if channels is None else channels
    size = paper.get("image_size", 32)  # CIFAR images are 32x32
    if family == "imagenet" and channels % 2:
        raise PdartsError(
            f"--channels must be even for ImageNet (the stem's first conv gives C/2), got {channels}"
        )
    network = FAMILIES[family](genotype, cells, channels, num_classes)
    params = count_parameters(network)
    summary = {
        "dataset": dataset,
        "cells": cells,
        "channels": channels,
        "num_classes": num_classes,
        "input_size": [3, size, size],
        "params": params,
        "params_auxiliary": count_parameters(network, exclude_auxiliary=False) - params,
        "macs": count_macs(network, (3, size, size)),
    }
    if family == "imagenet":
        summary["mobile_setting"] = summary["macs"] < MOBILE_MACS
    return summary
