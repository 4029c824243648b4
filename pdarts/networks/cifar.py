"""The CIFAR evaluation network: a stem, L cells (the paper: 20, C = 36), auxiliary head, drop-path.

The same class serves any small-image data set (``in_channels``, ``num_classes``): at 8x8 inputs
the feature map at the auxiliary head is 2x2, which the head handles by adaptive pooling. See
docs/algorithm.md#cifar-evaluation-network.
"""

from __future__ import annotations

import torch
from torch import nn

from ..genotype import Genotype
from .cell import CellStack, EvalNetwork, image_stem
from .heads import AuxiliaryHead, cifar_auxiliary_head

__all__ = ["CifarNetwork"]


class CifarNetwork(EvalNetwork):
    """Stem (3x3 conv to ``stem_multiplier * C``, BN), the cells, global average pool, linear.

    Args:
        genotype: the architecture of every cell.
        num_cells: L; reduction cells at L//3 and 2L//3.
        init_channels: C, the node channels of the first cells.
        num_classes: classifier outputs.
        in_channels: image channels.
        auxiliary: whether to build the auxiliary head (read after cell 2L//3, in training only).
        stem_multiplier: the stem gives ``stem_multiplier * C`` channels.

    ``drop_path_prob`` (default 0) sets the drop-path rate of every cell; change it per epoch.
    """

    def __init__(
        self,
        genotype: Genotype,
        num_cells: int,
        init_channels: int,
        num_classes: int = 10,
        in_channels: int = 3,
        auxiliary: bool = True,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        c_stem = stem_multiplier * init_channels
        self.stem = image_stem(in_channels, c_stem)
        self.cells = CellStack(genotype, num_cells, c_stem, c_stem, init_channels)
        self.auxiliary_head: AuxiliaryHead | None = (
            cifar_auxiliary_head(self.cells.auxiliary_channels, num_classes) if auxiliary else None
        )
        self.classifier = nn.Linear(self.cells.out_channels, num_classes)

    def stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.stem(x)
        return s, s
