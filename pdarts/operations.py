"""Candidate operations of the P-DARTS / DARTS search space (docs/algorithm.md#candidate-operations).

One table, ``OPS``, maps every op name to a builder with the same signature
``(channels, stride, affine) -> nn.Module``. The search supernet builds every op with
``affine=False``; evaluation networks build them with ``affine=True``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .fast_ops import BatchNorm2d, depthwise_conv2d, pointwise_batch_norm, scaled_batch_norm, subsample
from .search_space import PRIMITIVES

__all__ = [
    "PRIMITIVES",
    "OPS",
    "Zero",
    "FactorizedReduce",
    "ReLUConvBN",
    "SepConv",
    "DilConv",
    "build_op",
]


class Zero(nn.Module):
    """The ``none`` op: zeros with the shape of a stride-``stride`` output."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution, BatchNorm: the cell input preprocessing."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            BatchNorm2d(c_out, affine=affine),
        )

    def forward_activated(self, x: torch.Tensor) -> torch.Tensor:
        """Convolution and BatchNorm of an input already through the ReLU (a network computes one ReLU
        of each cell output for the two cells that read it)."""
        _, conv, bn = self
        return bn(conv(x))


class DilConv(nn.Sequential):
    """ReLU, dilated depthwise kxk conv, pointwise 1x1 conv, BatchNorm."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                c_in,
                c_in,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=c_in,
                bias=False,
            ),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            BatchNorm2d(c_out, affine=affine),
        )
        # With stride 2, dilation 2 and even padding, the depthwise conv reads only the pixels at
        # even coordinates: it equals an undilated stride-1 conv of those pixels with half the
        # padding. Same weights, same sums, 4-8x faster in oneDNN (measured on the CPU, fp32, both
        # layouts; its strided dilated kernels are slow).
        self._on_even_pixels = stride == 2 and dilation == 2 and padding % 2 == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_activated(self[0](x))

    def forward_activated(
        self, x: torch.Tensor, scale: torch.Tensor | None = None, relu: bool = False
    ) -> torch.Tensor:
        """The op (times ``scale``, see ``scaled_batch_norm``) on an input already through its ReLU
        (a search cell shares one per state among all the convolutions that read it); with ``relu``,
        through a ReLU after it too, in BatchNorm's kernel (``pointwise_batch_norm``)."""
        _, depthwise, pointwise, bn = self
        if self._on_even_pixels:
            padding = tuple(p // 2 for p in depthwise.padding)
            (x,) = subsample(x, 0)
            x = depthwise_conv2d(x, depthwise.weight, (1, 1), padding)
        else:
            x = depthwise_conv2d(x, depthwise.weight, depthwise.stride, depthwise.padding, depthwise.dilation)
        return pointwise_batch_norm(x, pointwise.weight, bn, scale, relu=relu)


class SepConv(nn.Sequential):
    """The separable block applied twice: the first with ``stride``, the second with stride 1."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True
    ) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel_size, stride, padding, dilation=1, affine=affine),
            DilConv(c_in, c_out, kernel_size, 1, padding, dilation=1, affine=affine),
        )
        # The second ReLU runs with the first block's BatchNorm: in its compiled kernel on the CPU
        # (``batch_norm_relu``), or in place on its output, a fresh tensor that BatchNorm's backward
        # pass does not need. Either way one activation less kept per op, the same numbers.
        self[1][0] = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_activated(self[0][0](x))

    def forward_activated(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """The op (times ``scale``) on an input already through its first ReLU."""
        return self[1].forward_activated(self[0].forward_activated(x, relu=True), scale)


class FactorizedReduce(nn.Module):
    """Halves the resolution with two 1x1 stride-2 convs, the second on the input shifted by one pixel.

    The shifted copy is padded at the bottom/right so that odd input sizes work too; for even
    sizes the padding is never sampled and the result equals plain ``x[:, :, 1:, 1:]``.

    A 1x1 conv of stride 2 is a 1x1 conv of the input's even pixels, so the input is subsampled
    first and the convs run with stride 1: bit-identical, and it keeps clear of oneDNN's strided
    1x1 backward kernel, which corrupts the heap on small channels_last batches on the CPU
    (torch 2.14; ``benchmarks/repro_channels_last_abort.py``).
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.bn = BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_activated(self.relu(x))

    def forward_activated(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """The op (times ``scale``) on an input already through its ReLU."""
        if x.shape[-2] % 2 == 0 and x.shape[-1] % 2 == 0:  # the padding is never sampled
            even, shifted = subsample(x, 0, 1)
        else:
            even, shifted = x[:, :, ::2, ::2], F.pad(x, (0, 1, 0, 1))[:, :, 1::2, 1::2]
        halves = torch.cat([self.conv_1(even), self.conv_2(shifted)], dim=1)
        return scaled_batch_norm(self.bn, halves, scale)


OpBuilder = Callable[[int, int, bool], nn.Module]

#: name -> builder(channels, stride, affine); see docs/algorithm.md#candidate-operations for each structure.
OPS: dict[str, OpBuilder] = {
    "none": lambda c, stride, affine: Zero(stride),
    "max_pool_3x3": lambda c, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda c, stride, affine: nn.AvgPool2d(
        3, stride=stride, padding=1, count_include_pad=False
    ),
    "skip_connect": lambda c, stride, affine: (
        nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine)
    ),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine=affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine=affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine=affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine=affine),
}
assert tuple(OPS) == PRIMITIVES


def build_op(name: str, channels: int, stride: int, affine: bool) -> nn.Module:
    """Builds the op ``name`` from the table; raises ``KeyError`` naming the known ops."""
    try:
        builder = OPS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}; known ops: {', '.join(PRIMITIVES)}") from None
    return builder(channels, stride, affine)
