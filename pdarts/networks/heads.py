"""Auxiliary classifier heads, read after cell 2L//3 during training (docs/algorithm.md#evaluation-networks).

DARTS's heads assume the feature map at that point: 8x8 for CIFAR (32x32 images) and 7x7 for
ImageNet (224x224 images; DARTS's docstring says 14x14, but after the stem's three stride-2 convs
and two reduction cells it is 7x7). There both heads pool to 2x2, project to 128 channels, and a
2x2 conv makes a 1x1 map of 768 channels. Here the pooling adapts, so that small inputs work too
(the default pipeline's 8x8 digits leave a 2x2 map, 224/7 = 32px ImageNet inputs a 1x1 map): at
DARTS's sizes the layers and parameters are exactly DARTS's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AuxiliaryPool",
    "AuxiliaryHead",
    "cifar_auxiliary_head",
    "imagenet_auxiliary_head",
]

POOL_KERNEL = 5
HIDDEN_CHANNELS = 128
FEATURE_CHANNELS = 768


class AuxiliaryPool(nn.Module):
    """DARTS's ``AvgPool2d(5, stride, count_include_pad=False)`` where it gives at least 2x2, else an
    adaptive average pool to 2x2 (the size the head's 2x2 conv needs).
    """

    def __init__(self, stride: int, kernel_size: int = POOL_KERNEL) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The strided pool's output side, floor((n - k) / s) + 1, is >= 2 exactly when n >= k + s.
        if min(x.shape[-2:]) >= self.kernel_size + self.stride:
            return F.avg_pool2d(x, self.kernel_size, self.stride, padding=0, count_include_pad=False)
        return F.adaptive_avg_pool2d(x, 2)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, else adaptive to 2x2"


class AuxiliaryHead(nn.Module):
    """ReLU, pool to 2x2, 1x1 conv to 128, BN, ReLU, 2x2 conv to 768, [BN], ReLU, linear.

    Args:
        in_channels: channels of the cell output it reads.
        num_classes: classifier outputs.
        pool_stride: the stride of DARTS's 5x5 average pool (3 for CIFAR, 2 for ImageNet).
        feature_bn: whether a BatchNorm follows the 768-channel conv.
    """

    def __init__(self, in_channels: int, num_classes: int, pool_stride: int, feature_bn: bool = True) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),  # DARTS's in-place ReLU would also rectify the cell output it reads
            AuxiliaryPool(pool_stride),
            nn.Conv2d(in_channels, HIDDEN_CHANNELS, 1, bias=False),
            nn.BatchNorm2d(HIDDEN_CHANNELS),
            nn.ReLU(inplace=True),
            nn.Conv2d(HIDDEN_CHANNELS, FEATURE_CHANNELS, 2, bias=False),
            *([nn.BatchNorm2d(FEATURE_CHANNELS)] if feature_bn else []),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(FEATURE_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        # 1x1 at DARTS's sizes (then this is DARTS's flatten); averaged when inputs are larger.
        return self.classifier(x.mean(dim=(2, 3)))


def cifar_auxiliary_head(in_channels: int, num_classes: int) -> AuxiliaryHead:
    """DARTS's CIFAR head (an 8x8 map pooled 5x5 stride 3 to 2x2)."""
    return AuxiliaryHead(in_channels, num_classes, pool_stride=3, feature_bn=True)


def imagenet_auxiliary_head(in_channels: int, num_classes: int) -> AuxiliaryHead:
    """DARTS's ImageNet head (a 7x7 map pooled 5x5 stride 2 to 2x2).

    DARTS's code has no BatchNorm after the 768-channel conv (left out by mistake at first, then
    kept out to match the experiments of its paper), so neither has this head.
    """
    return AuxiliaryHead(in_channels, num_classes, pool_stride=2, feature_bn=False)
