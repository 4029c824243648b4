"""Layers of the cells: drop-path (stochastic depth per sample) in evaluation cells
(docs/algorithm.md#cifar-evaluation-network), and ``dense_gradient`` for every cell's nodes.

A functional op and its module wrapper, as in timm's ``layers/drop.py``: each sample of the batch
keeps its whole tensor with probability ``1 - drop_prob`` (scaled by ``1 / (1 - drop_prob)``) or is
zeroed. Works on any device; does nothing in eval mode or at rate 0.
"""

from __future__ import annotations

import torch
from torch import nn

from . import fast_ops

__all__ = ["dense_gradient", "drop_path", "DropPath"]


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """Zeroes whole samples of ``x`` with probability ``drop_prob`` and rescales the kept ones.

    Args:
        x: a batch, samples along dimension 0.
        drop_prob: the probability of dropping a sample, in [0, 1].
        training: drop only when true; otherwise ``x`` is returned as is.

    Returns:
        ``x`` itself when nothing is dropped, else a new tensor (``x`` is never modified).
    """
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep_prob)
    if keep_prob > 0.0:
        mask.div_(keep_prob)
    return x * mask


class DropPath(nn.Module):
    """``drop_path`` as a module; the rate is the attribute ``drop_prob``, changeable at any time."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    @property
    def drop_prob(self) -> float:
        return self._drop_prob

    @drop_prob.setter
    def drop_prob(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"drop_prob must be in [0, 1], got {value}")
        self._drop_prob = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


class _DenseGradient(torch.autograd.Function):
    """The identity; its backward pass hands on the gradient dense, in the memory layout of the input.

    A cell node's gradient arrives as a channel slice of the cell output's gradient (the backward pass
    of ``torch.cat``), strided; BatchNorm's backward kernels run 2-3x slower on such gradients than
    on dense ones in the input's layout (CPU, measured). One copy per node, where it is needed,
    serves every op whose output was summed into the node.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.memory_format = fast_ops.memory_layout(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=ctx.memory_format)


def dense_gradient(x: torch.Tensor) -> torch.Tensor:
    """``x``, whose gradient reaches what computed it dense, in ``x``'s memory layout
    (``_DenseGradient``); ``x`` itself when it needs no gradient or is small (``MIN_ELEMENTS``)."""
    return _DenseGradient.apply(x) if x.requires_grad and x.numel() >= fast_ops.MIN_ELEMENTS else x
