"""Image-folder datasets (ImageNet or any ``root/{train,val}/<class>/<image>`` tree).

A folder is checked up front, every image decoded, so that a corrupt image fails before training instead
of deep inside a loader worker; :func:`write_image_folder` writes one atomically from arrays.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension, make_dataset

from ..errors import PdartsError
from .transforms import Transform

__all__ = ["check_image_folder", "image_folder", "write_image_folder"]

logger = logging.getLogger(__name__)

_SPLITS = ("train", "val")
_VERIFY_CHUNK = 4096  # images decoded per batch of thread-pool work; bounds the futures held at once


def _class_folders(directory: Path) -> list[str]:
    # Hidden folders (.ipynb_checkpoints, .Trash-1000, ...) are never classes.
    return sorted(
        entry.name for entry in os.scandir(directory) if entry.is_dir() and not entry.name.startswith(".")
    )


def _is_image_file(path: str) -> bool:
    # Hidden files are skipped too: macOS "._name.jpg" resource forks carry image extensions.
    return not os.path.basename(path).startswith(".") and has_file_allowed_extension(path, IMG_EXTENSIONS)


class _ImageFolder(ImageFolder):
    """torchvision's ImageFolder, seeing exactly the classes and files ``check_image_folder`` checks."""

    def __init__(self, root: str, transform: Transform | None) -> None:
        super().__init__(root, transform=transform, is_valid_file=_is_image_file)

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        classes = _class_folders(Path(directory))
        if not classes:
            raise FileNotFoundError(f"no class folders in {directory}")
        return classes, {name: index for index, name in enumerate(classes)}


def check_image_folder(root: str | Path, verify_images: bool = True) -> dict[str, Any]:
    """Checks an image-folder dataset before any training starts.

    ``root`` must hold ``train/<class>/<image>`` and ``val/<class>/<image>`` with the same class folder
    names (at least 2), none of them without images. With ``verify_images``, every image is opened and
    fully decoded with PIL (on a thread pool: decoding releases the GIL).

    Returns:
        ``{"classes": [...], "train": number of training images, "val": number of validation images}``.
    """
    root = Path(root)
    if not root.is_dir():
        raise PdartsError(
            f"{root} does not exist; expected an image folder with train/<class>/ and val/<class>/"
        )
    classes: dict[str, list[str]] = {}
    for split in _SPLITS:
        directory = root / split
        if not directory.is_dir():
            raise PdartsError(
                f"{directory} does not exist; put the {split} images in {directory}/<class>/, one folder per "
                "class, with the same class names in train and val"
            )
        classes[split] = _class_folders(directory)
        if len(classes[split]) < 2:
            raise PdartsError(
                f"{directory} has {len(classes[split])} class folder(s); classification needs at least 2 "
                "(one folder of images per class)"
            )
    if classes["train"] != classes["val"]:
        only_train = sorted(set(classes["train"]) - set(classes["val"]))
        only_val = sorted(set(classes["val"]) - set(classes["train"]))
        raise PdartsError(
            f"{root / 'val'} and {root / 'train'} have different class folders (only in train: "
            f"{_few(only_train)}; only in val: {_few(only_val)}); use the same class names in both"
        )
    class_to_index = {name: index for index, name in enumerate(classes["train"])}
    counts: dict[str, int] = {}
    for split in _SPLITS:
        samples = make_dataset(root / split, class_to_index, is_valid_file=_is_image_file, allow_empty=True)
        per_class = np.bincount([index for _, index in samples], minlength=len(class_to_index))
        for name, count in zip(classes[split], per_class):
            if count == 0:
                raise PdartsError(
                    f"{root / split / name} has no images ({'/'.join(IMG_EXTENSIONS)} files); "
                    "remove the folder or add images"
                )
        if verify_images:
            _verify_images([path for path, _ in samples])
        counts[split] = len(samples)
    logger.info(
        "%s: %d classes, %d train / %d val images", root, len(class_to_index), counts["train"], counts["val"]
    )
    return {"classes": classes["train"], "train": counts["train"], "val": counts["val"]}


def _few(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit]) or "none"
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _image_problem(path: str) -> str | None:
    try:
        with Image.open(path) as image:
            image.convert("RGB")  # decodes every pixel, as torchvision's loader will
    except Exception as exc:  # any decoder failure means the file cannot be trained on
        return " ".join(f"truncated or corrupt: {type(exc).__name__}: {exc}".split())
    return None


def _verify_images(paths: Sequence[str]) -> None:
    with ThreadPoolExecutor(max_workers=min(32, os.cpu_count() or 1)) as pool:
        for start in range(0, len(paths), _VERIFY_CHUNK):
            chunk = paths[start : start + _VERIFY_CHUNK]
            for path, problem in zip(chunk, pool.map(_image_problem, chunk)):
                if problem is not None:
                    raise PdartsError(f"{path} is not a readable image ({problem}): replace or delete it")


def image_folder(root: str | Path, split: str, transform: Transform | None) -> ImageFolder:
    """The ``split`` ("train" or "val") of an image folder as a torchvision ``ImageFolder``.

    Hidden folders and files are ignored, as in :func:`check_image_folder`; images load as RGB PIL
    images and pass through ``transform``.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    directory = Path(root) / split
    if not directory.is_dir():
        raise PdartsError(
            f"{directory} does not exist; expected {directory}/<class>/<image>, one folder per class"
        )
    try:
        return _ImageFolder(str(directory), transform)
    except FileNotFoundError as exc:
        raise PdartsError(
            f"{directory} is not a usable image folder ({' '.join(str(exc).split())}); "
            "add images or remove empty class folders"
        ) from None


def write_image_folder(
    images: np.ndarray, labels: np.ndarray, root: str | Path, split: str, class_names: Sequence[str]
) -> None:
    """Writes ``root/split/<class>/<index:05d>.png``, one PNG (grayscale or RGB) per image, atomically.

    The tree is written into a hidden temporary sibling and renamed into place, replacing any existing
    ``root/split``, so a crash never leaves a half-written tree (files are not fsynced: this guards
    against a crashed process, not a power cut). Every class gets a folder, even one without images.

    Args:
        images: uint8 array of shape (N, H, W, C), C = 1 or 3.
        labels: (N,) integers indexing ``class_names``.
        root: dataset folder.
        split: "train" or "val".
        class_names: folder name of each class.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must be uint8 (N, H, W, 1 or 3), got {images.dtype} of shape {images.shape}"
        )
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
    names = list(class_names)
    for name in names:
        if not name or name.startswith(".") or "/" in name or os.sep in name:
            raise ValueError(f"class name {name!r} cannot be a visible folder name")
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be unique, got {names}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise ValueError(f"labels must be in 0..{len(names) - 1}")

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for leftover in root.glob(f".{split}.*.tmp"):  # from an earlier crashed write
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{split}.", suffix=".tmp", dir=root))
    try:
        for name in names:
            (tmp / name).mkdir()
        for index, (image, label) in enumerate(zip(images, labels)):
            pixels = image[..., 0] if image.shape[-1] == 1 else image
            Image.fromarray(pixels).save(tmp / names[label] / f"{index:05d}.png")
        target = root / split
        if target.exists():
            # A directory cannot be renamed over a non-empty one: move the old tree aside first.
            old = tmp.with_name(tmp.name.removesuffix(".tmp") + ".old.tmp")
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old)
        else:
            os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote %d images into %s", len(images), root / split)
