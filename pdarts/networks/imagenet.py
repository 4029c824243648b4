"""The ImageNet evaluation network, mobile setting: 14 cells, C = 48.

The stem reduces 224x224 images 8 times with three stride-2 3x3 convs (as DARTS's
NetworkImageNet): ``stem0`` gives the first cell's input 0 at 56x56, ``stem1`` its input 1 at
28x28, so the first cell's input 0 goes through a ``FactorizedReduce``. See
docs/algorithm.md#imagenet-transfer-network.
"""

from __future__ import annotations

import torch
from torch import nn

from ..fast_ops import BatchNorm2d
from ..genotype import Genotype
from .cell import CellStack, EvalNetwork
from .heads import AuxiliaryHead, imagenet_auxiliary_head

__all__ = ["ImageNetNetwork"]


class ImageNetNetwork(EvalNetwork):
    """Two-stage stride-8 stem, the cells, global average pool, linear.

    Args:
        genotype: the architecture of every cell.
        num_cells: L; reduction cells at L//3 and 2L//3.
        init_channels: C (even: the stem's first conv gives C/2).
        num_classes: classifier outputs.
        in_channels: image channels.
        auxiliary: whether to build the auxiliary head (read after cell 2L//3, in training only).

    ``drop_path_prob`` (default 0, the paper's ImageNet setting) sets the drop-path rate of every cell.
    """

    def __init__(
        self,
        genotype: Genotype,
        num_cells: int,
        init_channels: int,
        num_classes: int = 1000,
        in_channels: int = 3,
        auxiliary: bool = True,
    ) -> None:
        if init_channels < 2 or init_channels % 2:
            raise ValueError(f"init_channels must be even for the ImageNet stem, got {init_channels}")
        super().__init__()
        c = init_channels
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, c // 2, 3, stride=2, padding=1, bias=False),
            BatchNorm2d(c // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False),
            BatchNorm2d(c),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False),  # stem0's output is also the first cell's input 0: keep it intact
            nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
            BatchNorm2d(c),
        )
        self.cells = CellStack(genotype, num_cells, c, c, c, reduction_prev=True)
        self.auxiliary_head: AuxiliaryHead | None = (
            imagenet_auxiliary_head(self.cells.auxiliary_channels, num_classes) if auxiliary else None
        )
        self.classifier = nn.Linear(self.cells.out_channels, num_classes)

    def stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)
