"""The array-dataset registry: what each dataset is, how to load it, and the fixed search split.

Array datasets are held in memory as uint8 NHWC images: scikit-learn's bundled 8x8 digits (the offline
default) and CIFAR-10/100 (read by :mod:`pdarts.data.cifar`). During search the training set is cut into
two fixed halves, one for the network weights and one for the architecture parameters
(docs/algorithm.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import numpy as np

from ..errors import PdartsError
from .cifar import CIFAR_LAYOUTS, download_cifar, read_cifar

__all__ = ["DatasetInfo", "DATASETS", "dataset_info", "load_arrays", "search_halves"]


@dataclass(frozen=True)
class DatasetInfo:
    """What networks and transforms need to know about an array dataset.

    Attributes:
        name: key in :data:`DATASETS`.
        num_classes: number of labels, ``0 .. num_classes - 1``.
        in_channels: image channels (1 for digits, 3 for CIFAR).
        image_size: height and width in pixels (the images are square).
        mean: per-channel mean of the training images, scaled to [0, 1].
        std: per-channel standard deviation of the training images, scaled to [0, 1].
        crop_padding: zero padding added on every side before the random crop back to ``image_size``.
        hflip: whether a random horizontal flip keeps the label (not for handwritten digits).
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    hflip: bool


#: The supported array datasets by name. Digits statistics are those of the fixed training split (a
#: test checks them); the CIFAR ones are the usual values (DARTS / P-DARTS).
DATASETS: Mapping[str, DatasetInfo] = MappingProxyType(
    {
        "digits": DatasetInfo(
            name="digits",
            num_classes=10,
            in_channels=1,
            image_size=8,
            mean=(0.3054,),
            std=(0.3760,),
            crop_padding=1,
            hflip=False,  # a mirrored digit is not the same digit
        ),
        "cifar10": DatasetInfo(
            name="cifar10",
            num_classes=10,
            in_channels=3,
            image_size=32,
            mean=(0.4914, 0.4822, 0.4465),
            std=(0.2470, 0.2435, 0.2616),
            crop_padding=4,
            hflip=True,
        ),
        "cifar100": DatasetInfo(
            name="cifar100",
            num_classes=100,
            in_channels=3,
            image_size=32,
            mean=(0.5071, 0.4865, 0.4409),
            std=(0.2673, 0.2564, 0.2762),
            crop_padding=4,
            hflip=True,
        ),
    }
)


def dataset_info(name: str) -> DatasetInfo:
    """Returns the registry entry for ``name``; an unknown name raises, listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise PdartsError(f"unknown dataset {name!r}; known array datasets: {known}") from None


def load_arrays(
    name: str, root: str | Path, train: bool, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Loads one split of an array dataset.

    Args:
        name: a key of :data:`DATASETS`.
        root: folder holding torchvision's CIFAR folders (``cifar-10-batches-py``,
            ``cifar-100-python``); ignored for digits, which ship with scikit-learn.
        train: the training split if true, else the test split.
        download: if the CIFAR files are missing or unreadable, fetch the official archive with
            torchvision (which checks its MD5) and read it again.

    Returns:
        ``(images, labels)``: uint8 images of shape (N, H, W, C) and int64 labels of shape (N,).
    """
    info = dataset_info(name)
    if name == "digits":
        return _load_digits(train)
    layout = CIFAR_LAYOUTS[name]
    try:
        return read_cifar(info, layout, Path(root), train)
    except PdartsError:
        if not download:
            raise
    download_cifar(layout, Path(root), train)
    return read_cifar(info, layout, Path(root), train)


def search_halves(num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The two fixed halves of the training set used during search (docs/algorithm.md).

    As in the authors' code, the first half of the index range trains the network weights and the
    second half the architecture parameters; an odd last sample is dropped so both halves have the
    same size.

    Returns:
        ``(weight_indices, alpha_indices)``, disjoint int64 index arrays of length ``num_samples // 2``.
    """
    half = num_samples // 2
    if half < 1:
        raise PdartsError(f"the search split needs at least 2 training samples, got {num_samples}")
    return np.arange(half, dtype=np.int64), np.arange(half, 2 * half, dtype=np.int64)


@lru_cache(maxsize=1)
def _digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # Imported here: scikit-learn is slow to import and only the digits dataset needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # Pixels are counts 0..16 (on-pixels in 4x4 blocks of a 32x32 bitmap): spread them over uint8.
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., np.newaxis]
    labels = digits.target.astype(np.int64)
    train, test = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0
    )  # 1,437 / 360 images
    return images[train], labels[train], images[test], labels[test]


def _load_digits(train: bool) -> tuple[np.ndarray, np.ndarray]:
    train_images, train_labels, test_images, test_labels = _digits_split()
    if train:
        return train_images.copy(), train_labels.copy()
    return test_images.copy(), test_labels.copy()
