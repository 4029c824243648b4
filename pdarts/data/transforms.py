"""Augmentations and normalization: Cutout, array-dataset transforms and ImageNet transforms.

Array-dataset transforms take a CHW uint8 tensor; ImageNet transforms take a PIL image. Both end in a
normalized float tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torchvision.transforms import v2

from .registry import DatasetInfo

__all__ = [
    "Transform",
    "Cutout",
    "train_transform",
    "eval_transform",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "imagenet_train_transform",
    "imagenet_eval_transform",
]

#: A transform: any callable from one image (tensor or PIL) to the transformed image.
Transform = Callable[[Any], Any]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class Cutout:
    """Zeroes one ``length`` x ``length`` square of a CHW tensor (DeVries & Taylor 2017).

    The centre is uniform over the whole image, so near a border only part of the square lies inside
    (it is clipped, as in the original and in DARTS). Applied after normalization, the square takes the
    mean colour. Uses torch's generator, which the data loader seeds per worker.
    """

    def __init__(self, length: int) -> None:
        """Cuts squares of side ``length`` pixels."""
        if length <= 0:
            raise ValueError(f"cutout length must be positive, got {length}")
        self.length = length

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        centre_y = int(torch.randint(height, (1,)))
        centre_x = int(torch.randint(width, (1,)))
        # For even lengths this is the original centre +- length/2; odd lengths keep the full side.
        top, left = centre_y - self.length // 2, centre_x - self.length // 2
        image = image.clone()
        image[..., max(top, 0) : top + self.length, max(left, 0) : left + self.length] = 0
        return image

    def __repr__(self) -> str:
        return f"{type(self).__name__}(length={self.length})"


def train_transform(info: DatasetInfo, cutout: int = 0) -> v2.Compose:
    """Training augmentation for a CHW uint8 tensor of an array dataset.

    Random crop after ``info.crop_padding`` zero padding, horizontal flip if ``info.hflip``, scaling to
    float in [0, 1], per-channel normalization, then Cutout of ``cutout`` pixels if positive (see
    docs/algorithm.md).
    """
    if cutout < 0:
        raise ValueError(f"cutout must be >= 0, got {cutout}")
    steps: list[Transform] = []
    if info.crop_padding > 0:
        steps.append(v2.RandomCrop(info.image_size, padding=info.crop_padding))
    if info.hflip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(info.mean), list(info.std))]
    if cutout > 0:
        steps.append(Cutout(cutout))
    return v2.Compose(steps)


def eval_transform(info: DatasetInfo) -> v2.Compose:
    """Evaluation transform for a CHW uint8 tensor: scaling to float in [0, 1] and normalization."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(info.mean), list(info.std))])


def imagenet_train_transform(size: int) -> v2.Compose:
    """ImageNet training augmentation of a PIL image: random resized crop to ``size``, flip, colour jitter.

    Works for images smaller than ``size`` too (the crop is resized up).
    """
    return v2.Compose(
        [
            v2.RandomResizedCrop(size),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2),
            *_to_normalized_tensor(),
        ]
    )


def imagenet_eval_transform(size: int) -> v2.Compose:
    """ImageNet evaluation transform of a PIL image: resize the short side to size / 0.875, centre crop."""
    return v2.Compose([v2.Resize(round(size / 0.875)), v2.CenterCrop(size), *_to_normalized_tensor()])


def _to_normalized_tensor() -> list[Transform]:
    return [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
        v2.ToPureTensor(),
    ]
