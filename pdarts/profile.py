"""Model size and cost: parameter counts and forward multiply-adds (PDARTS.md section 6).

Multiply-adds are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass
(convolutions and matrix products; a multiply-add is 2 of its flops), not by a formula kept by
hand. That counter gives 543M for the PDARTS ImageNet network where the paper reports 557M, a
counting-convention difference (WORKFLOW-NOTES.md).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_macs"]


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
