"""The in-memory array dataset: uint8 NHWC images and their labels as a torch ``Dataset``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .transforms import Transform

__all__ = ["ArrayDataset"]


class ArrayDataset(Dataset):
    """Images and labels held in memory as tensors.

    Each item is ``(transform(image), label)`` where ``image`` is the CHW uint8 tensor (returned as is
    without a transform) and ``label`` an int.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Transform | None = None) -> None:
        """Wraps uint8 NHWC ``images`` and their (N,) integer ``labels``."""
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"images must be a uint8 NHWC array, got {images.dtype} of shape {images.shape}")
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
        # One NHWC -> NCHW copy here keeps __getitem__ a view plus the transform.
        self.images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])
