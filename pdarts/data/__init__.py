"""Datasets, the fixed search split, augmentations and loaders (docs/algorithm.md).

Three kinds of data:

- **array datasets** held in memory as uint8 NHWC images: scikit-learn's bundled 8x8 digits (the
  offline default) and CIFAR-10/100, read straight from torchvision's python-pickle layout with a
  restricted unpickler and checked field by field (torchvision's own loader refuses any file whose MD5
  is not the official one, so it cannot read the small files tests write);
- **image folders** (ImageNet or any ``root/{train,val}/<class>/<image>`` tree), checked up front so that
  a corrupt image fails before training instead of deep inside a loader worker;
- the **search split**: the training set cut into two fixed halves, one for the network weights and one
  for the architecture parameters.

Every problem a user can fix raises :class:`~pdarts.errors.PdartsError` with a one-line message that
names the file and the fix.

Modules: :mod:`~pdarts.data.registry` (the array datasets, loading them, the search split),
:mod:`~pdarts.data.cifar` (the CIFAR pickle reader), :mod:`~pdarts.data.dataset` (the in-memory
dataset), :mod:`~pdarts.data.transforms` (augmentations), :mod:`~pdarts.data.imagefolder` (image
folders) and :mod:`~pdarts.data.loaders` (seeded data loaders).
"""

from __future__ import annotations

from .dataset import ArrayDataset
from .imagefolder import check_image_folder, image_folder, write_image_folder
from .loaders import make_loader
from .registry import DATASETS, DatasetInfo, dataset_info, load_arrays, search_halves
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Cutout,
    eval_transform,
    imagenet_eval_transform,
    imagenet_train_transform,
    train_transform,
)

__all__ = [
    "DatasetInfo",
    "DATASETS",
    "dataset_info",
    "load_arrays",
    "search_halves",
    "ArrayDataset",
    "Cutout",
    "train_transform",
    "eval_transform",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "check_image_folder",
    "image_folder",
    "imagenet_train_transform",
    "imagenet_eval_transform",
    "write_image_folder",
    "make_loader",
]
