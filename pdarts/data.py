"""Datasets, the fixed search split, augmentations and loaders (PDARTS.md sections 3 and 6).

Three kinds of data:

- **array datasets** held in memory as uint8 NHWC images: scikit-learn's bundled 8x8 digits (the
  offline default) and CIFAR-10/100, read straight from torchvision's python-pickle layout with a
  restricted unpickler and checked field by field (torchvision's own loader refuses any file whose MD5
  is not the official one, so it cannot read the small files tests write);
- **image folders** (ImageNet or any ``root/{train,val}/<class>/<image>`` tree), checked up front so that
  a corrupt image fails before training instead of deep inside a loader worker;
- the **search split**: the training set cut into two fixed halves, one for the network weights and one
  for the architecture parameters (section 3).

Every problem a user can fix raises :class:`~pdarts.errors.PdartsError` with a one-line message that
names the file and the fix.
"""

from __future__ import annotations

import builtins
import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension, make_dataset
from torchvision.transforms import v2

from .errors import PdartsError

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

logger = logging.getLogger(__name__)

Transform = Callable[[Any], Any]


# --------------------------------------------------------------------------------------------------
# Array datasets


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
    layout = _CIFAR_LAYOUTS[name]
    try:
        return _read_cifar(info, layout, Path(root), train)
    except PdartsError:
        if not download:
            raise
    _download_cifar(layout, Path(root), train)
    return _read_cifar(info, layout, Path(root), train)


def search_halves(num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The two fixed halves of the training set used during search (PDARTS.md 3).

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


# --------------------------------------------------------------------------------------------------
# CIFAR in torchvision's python-pickle layout


@dataclass(frozen=True)
class _CifarLayout:
    title: str  # as the user knows it, for messages
    folder: str  # torchvision's base_folder inside root
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: bytes
    label_names_key: bytes
    torchvision_class: str  # name in torchvision.datasets, looked up when downloading

    @property
    def fix(self) -> str:
        return f"re-download {self.title} (python version) or set data.download: true"


_CIFAR_LAYOUTS: dict[str, _CifarLayout] = {
    "cifar10": _CifarLayout(
        title="CIFAR-10",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key=b"labels",
        label_names_key=b"label_names",
        torchvision_class="CIFAR10",
    ),
    "cifar100": _CifarLayout(
        title="CIFAR-100",
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_key=b"fine_labels",  # the 100 classes; b"coarse_labels" holds the 20 superclasses
        label_names_key=b"fine_label_names",
        torchvision_class="CIFAR100",
    ),
}

_CIFAR_PIXELS = 3 * 32 * 32  # one image per row: the red, green and blue planes, each 32 rows of 32


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Python 3 pickles bytes at protocols < 3 as _codecs.encode(text, "latin1"); allow only that.
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


# Everything a CIFAR pickle may reference: numpy array reconstruction (numpy 1 and 2 module names,
# pickle protocols 2 to 5), byte strings, and a few harmless builtin types. Never eval, exec,
# getattr, __import__ or any other callable. The numpy functions are taken from numpy's own pickling,
# so they are the real ones whichever module (numpy.core or numpy._core) this numpy version uses.
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    **{
        (module, name): function
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name, function in (
            ("_reconstruct", np.zeros(0).__reduce__()[0]),
            ("scalar", np.int64(0).__reduce__()[0]),
        )
    },
    **{
        (module, "_frombuffer"): np.zeros(1).__reduce_ex__(5)[0]
        for module in ("numpy.core.numeric", "numpy._core.numeric")
    },
    **{
        (module, name): getattr(builtins, name)
        for module in ("builtins", "__builtin__")
        for name in ("set", "frozenset", "bytearray", "complex")
    },
}


class _ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle referenced a class or function outside ``_SAFE_GLOBALS``."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise _ForbiddenGlobal(f"{module}.{name}") from None


def _unpickle(path: Path, what: str, fix: str) -> Any:
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise PdartsError(f"{path} is missing; {fix}") from None
    except OSError as exc:
        raise PdartsError(f"cannot read {path} ({exc.strerror}); {fix}") from None
    with handle:
        try:
            return _RestrictedUnpickler(handle, encoding="bytes").load()
        except _ForbiddenGlobal as exc:
            raise PdartsError(
                f"{path} is not {what}: it references {exc}, which is not allowed in one; {fix}"
            ) from None
        except Exception:  # a damaged pickle can fail in a dozen ways (EOFError, ValueError, ...)
            raise PdartsError(f"{path} is truncated or not {what}; {fix}") from None


def _read_cifar(
    info: DatasetInfo, layout: _CifarLayout, root: Path, train: bool
) -> tuple[np.ndarray, np.ndarray]:
    folder = root / layout.folder
    if not folder.is_dir():
        url = getattr(torchvision.datasets, layout.torchvision_class).url
        raise PdartsError(
            f"{folder} does not exist; expected {layout.title} in torchvision's python layout there: "
            f"set data.download: true or extract {url} into {root}"
        )
    names = layout.train_files if train else layout.test_files
    missing = [name for name in (*names, layout.meta_file) if not (folder / name).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise PdartsError(f"{folder / missing[0]} is missing{more}; {layout.fix}")
    _check_cifar_meta(folder / layout.meta_file, layout, info.num_classes)
    batches = [_read_cifar_batch(folder / name, layout, info.num_classes) for name in names]
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    logger.info("loaded %s %s split: %d images", layout.title, "train" if train else "test", len(labels))
    return images, labels


def _check_cifar_meta(path: Path, layout: _CifarLayout, num_classes: int) -> None:
    meta = _unpickle(path, f"a {layout.title} meta file", layout.fix)
    names = meta.get(layout.label_names_key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != num_classes:
        raise PdartsError(
            f"{path} is not a {layout.title} meta file (expected a dict whose {layout.label_names_key!r} "
            f"lists {num_classes} class names); {layout.fix}"
        )


def _read_cifar_batch(path: Path, layout: _CifarLayout, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    fix = layout.fix
    batch = _unpickle(path, "a CIFAR pickle batch", fix)
    if not isinstance(batch, dict):
        raise PdartsError(
            f"{path} is not a CIFAR pickle batch (expected a dict, found a {type(batch).__name__}); {fix}"
        )
    for key in (b"data", layout.label_key):
        if key not in batch:
            raise PdartsError(
                f"{path} has no {key!r} entry, so it is not a {layout.title} pickle batch; {fix}"
            )
    data = batch[b"data"]
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == _CIFAR_PIXELS
    ):
        found = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise PdartsError(f"{path}: b'data' is a {found}; expected a uint8 array of shape (N, 3072); {fix}")
    labels = np.asarray(batch[layout.label_key])
    if labels.size == 0:
        labels = labels.astype(np.int64)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise PdartsError(f"{path}: {layout.label_key!r} is not a list of integer labels; {fix}")
    if len(labels) != len(data):
        raise PdartsError(f"{path}: {len(labels)} labels for {len(data)} images; {fix}")
    out_of_range = labels[(labels < 0) | (labels >= num_classes)]
    if out_of_range.size:
        raise PdartsError(
            f"{path}: label {out_of_range[0]} is out of range 0..{num_classes - 1} for {layout.title}; {fix}"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # each row is C, H, W row-major -> NHWC
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _download_cifar(layout: _CifarLayout, root: Path, train: bool) -> None:
    dataset_class = getattr(torchvision.datasets, layout.torchvision_class)
    logger.info("downloading %s into %s", layout.title, root)
    try:
        # Fetches and MD5-checks the official archive, then extracts it into root/<folder>.
        dataset_class(str(root), train=train, download=True)
    except (OSError, RuntimeError) as exc:
        raise PdartsError(
            f"downloading {layout.title} into {root} failed ({exc}); check the network, or download "
            f"{dataset_class.url} by hand and extract it into {root}"
        ) from None


# --------------------------------------------------------------------------------------------------
# In-memory dataset and transforms


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
    float in [0, 1], per-channel normalization, then Cutout of ``cutout`` pixels if positive (section 6).
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


# --------------------------------------------------------------------------------------------------
# Image folders (ImageNet and custom data sets)

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

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


def imagenet_train_transform(size: int = 224) -> v2.Compose:
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


def imagenet_eval_transform(size: int = 224) -> v2.Compose:
    """ImageNet evaluation transform of a PIL image: resize the short side to size / 0.875, centre crop."""
    return v2.Compose([v2.Resize(round(size / 0.875)), v2.CenterCrop(size), *_to_normalized_tensor()])


def _to_normalized_tensor() -> list[Transform]:
    return [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
        v2.ToPureTensor(),
    ]


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


# --------------------------------------------------------------------------------------------------
# Loaders


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
    sampler: Sampler | None = None,
    shard: tuple[int, int] | None = None,
) -> DataLoader:
    """A data loader whose order and worker random streams depend only on ``seed``.

    Each pass over the loader draws a new order from a generator seeded with ``seed``, so a fresh
    loader with the same seed repeats the same sequence of epochs. The loader also draws each worker's
    base seed from that generator and seeds the worker's torch, numpy and ``random`` streams with it
    (PyTorch does this itself since 1.9), so random augmentations are reproducible too. Workers are
    started afresh each epoch, so that their seeds, too, come from the generator's state at the start
    of the epoch: a run resumed from a checkpoint draws exactly what the uninterrupted run drew.
    ``shard=(rank, processes)`` gives this process its share of every shuffled batch
    (:class:`~pdarts.distributed.ShardedRandomSampler`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    generator = torch.Generator()
    generator.manual_seed(seed)
    if shard is not None:
        from .distributed import ShardedRandomSampler

        sampler = ShardedRandomSampler(len(dataset), *shard, generator=generator)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        generator=generator,
    )
