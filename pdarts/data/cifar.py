"""CIFAR-10/100 read from torchvision's python-pickle layout, and downloaded with torchvision.

The pickles are read with a restricted unpickler and checked field by field: torchvision's own loader
refuses any file whose MD5 is not the official one, so it cannot read the small files tests write. Every
problem a user can fix raises :class:`~pdarts.errors.PdartsError` naming the file and the fix.
"""

from __future__ import annotations

import builtins
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torchvision

from ..errors import PdartsError

if TYPE_CHECKING:
    from .registry import DatasetInfo

__all__ = ["CifarLayout", "CIFAR_LAYOUTS", "read_cifar", "download_cifar"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CifarLayout:
    """Where torchvision keeps one CIFAR variant's files, and the keys its pickles use."""

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
        """The fix named in every message about a bad or missing file of this variant."""
        return f"re-download {self.title} (python version) or set data.download: true"


CIFAR_LAYOUTS: dict[str, CifarLayout] = {
    "cifar10": CifarLayout(
        title="CIFAR-10",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key=b"labels",
        label_names_key=b"label_names",
        torchvision_class="CIFAR10",
    ),
    "cifar100": CifarLayout(
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


def read_cifar(
    info: DatasetInfo, layout: CifarLayout, root: Path, train: bool
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


def _check_cifar_meta(path: Path, layout: CifarLayout, num_classes: int) -> None:
    meta = _unpickle(path, f"a {layout.title} meta file", layout.fix)
    names = meta.get(layout.label_names_key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != num_classes:
        raise PdartsError(
            f"{path} is not a {layout.title} meta file (expected a dict whose {layout.label_names_key!r} "
            f"lists {num_classes} class names); {layout.fix}"
        )


def _read_cifar_batch(path: Path, layout: CifarLayout, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
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


def download_cifar(layout: CifarLayout, root: Path, train: bool) -> None:
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
