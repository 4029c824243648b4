"""Data manifests: what the prepare steps checked once, and the datasets the other steps read through them.

``prepare-data`` writes an *arrays* manifest (a dataset of the registry, its size and the SHA-256 of
each split, so that a changed file is noticed); ``prepare-transfer`` a folder whose ``manifest.json``
describes an *imagefolder* tree (classes and image counts of ``train/`` and ``val/``). The search,
train, transfer and evaluate steps open their data only through a manifest (see docs/workflow.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import PdartsError
from .io import read_json, write_json
from .settings import DataSettings, TransferDataSettings

__all__ = [
    "ARRAYS_FORMAT",
    "IMAGEFOLDER_FORMAT",
    "MANIFEST_NAME",
    "array_digest",
    "evaluation_set",
    "load_split",
    "manifest_path",
    "num_classes",
    "read_manifest",
    "training_set",
    "write_arrays_manifest",
    "write_transfer_folder",
]

log = logging.getLogger("pdarts.manifest")

ARRAYS_FORMAT = "arrays"
IMAGEFOLDER_FORMAT = "imagefolder"
MANIFEST_NAME = "manifest.json"  # inside the folder prepare-transfer writes
MANIFEST_KEYS = {  # what the steps read from a manifest of each format
    ARRAYS_FORMAT: ("dataset", "root", "sha256"),
    IMAGEFOLDER_FORMAT: ("dataset", "root", "classes"),
}


def array_digest(*arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(array.tobytes())
    return digest.hexdigest()


def manifest_path(path: str | Path) -> Path:
    """A manifest file, or the ``manifest.json`` of a prepared data folder."""
    path = Path(path)
    return path / MANIFEST_NAME if path.is_dir() else path


def _has_digests(manifest: dict[str, Any]) -> bool:
    digests = manifest.get("sha256")
    return isinstance(digests, dict) and all(isinstance(digests.get(s), str) for s in ("train", "test"))


def read_manifest(path: str | Path, *formats: str) -> dict[str, Any]:
    """A data manifest written by a prepare step (or its folder), of one of ``formats`` (default: any).

    Refuses a file of another kind or one that lacks what the steps read, naming the step that
    writes it.
    """
    formats = formats or (ARRAYS_FORMAT, IMAGEFOLDER_FORMAT)
    path = manifest_path(path)
    manifest = read_json(path, "data manifest")
    if not isinstance(manifest, dict) or manifest.get("format") not in formats:
        if len(formats) > 1:
            raise PdartsError(
                f"{path} is not a data manifest; pass the one prepare-data or prepare-transfer wrote"
            )
        raise PdartsError(
            f"{path} is not an {formats[0]} data manifest; pass the file the prepare step wrote"
        )
    kind = manifest["format"]
    missing = [key for key in MANIFEST_KEYS[kind] if key not in manifest]
    if missing or (kind == ARRAYS_FORMAT and not _has_digests(manifest)):
        raise PdartsError(
            f"{path} is an incomplete data manifest (no {', '.join(missing) or 'sha256 train/test'}); "
            "rerun the prepare_data step (or prepare_transfer for an image folder)"
        )
    return manifest


def num_classes(manifest: dict[str, Any]) -> int:
    """Classes of the manifest's dataset."""
    return max(manifest.get("num_classes", 0), len(manifest.get("classes", [])))


def _arrays(settings: DataSettings, train: bool):
    from .data import load_arrays

    images, labels = load_arrays(settings.dataset, settings.root, train=train, download=settings.download)
    if settings.subset:
        images, labels = images[: settings.subset], labels[: settings.subset]
    return images, labels


def write_arrays_manifest(settings: DataSettings, out: str | Path) -> dict[str, Any]:
    """Reads both splits of the dataset once (downloading if asked) and writes their manifest."""
    from .data import DATASETS

    info = DATASETS[settings.dataset]
    splits, sizes = {}, {}
    for split, train in (("train", True), ("test", False)):
        images, labels = _arrays(settings, train)
        splits[split] = array_digest(images, labels)
        sizes[split] = len(labels)
    manifest = {
        "format": ARRAYS_FORMAT,
        "dataset": info.name,
        "root": settings.root,
        "subset": settings.subset,
        "num_classes": info.num_classes,
        "in_channels": info.in_channels,
        "image_size": info.image_size,
        "train": sizes["train"],
        "test": sizes["test"],
        "sha256": splits,
    }
    write_json(out, manifest)
    log.info("%s: %d train / %d test images checked", info.name, sizes["train"], sizes["test"])
    return manifest


def _write_digits_tree(tmp: Path) -> None:
    from .data import DATASETS, load_arrays, write_image_folder

    classes = [str(c) for c in range(DATASETS["digits"].num_classes)]
    for split, train in (("train", True), ("val", False)):
        images, labels = load_arrays("digits", "", train=train)
        write_image_folder(images, labels, tmp, split, classes)


def write_transfer_folder(settings: TransferDataSettings, out: str | Path) -> dict[str, Any]:
    """Checks the transfer ImageFolder tree (or writes the digits one) and its manifest into ``out``.

    The folder appears whole or not at all: it is built beside ``out`` and renamed.
    """
    from .data import check_image_folder

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if settings.dataset == "digits":
            _write_digits_tree(tmp)
            summary = check_image_folder(tmp, verify_images=False)
            root = str(out)
        else:
            summary = check_image_folder(settings.root, verify_images=settings.verify_images)
            root = settings.root
        manifest = {"format": IMAGEFOLDER_FORMAT, "dataset": settings.dataset, "root": root, **summary}
        write_json(tmp / MANIFEST_NAME, manifest)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    counts = (len(summary["classes"]), summary["train"], summary["val"])
    log.info("transfer data %s: %d classes, %d train / %d val images", root, *counts)
    return manifest


def load_split(manifest: dict[str, Any], train: bool):
    """The arrays of a prepared dataset, checked against the manifest's digest."""
    from .data import load_arrays

    split = "train" if train else "test"
    images, labels = load_arrays(manifest["dataset"], manifest["root"], train=train)
    if manifest.get("subset"):
        images, labels = images[: manifest["subset"]], labels[: manifest["subset"]]
    if array_digest(images, labels) != manifest["sha256"][split]:
        raise PdartsError(
            f"the {manifest['dataset']} {split} data under {manifest['root']!r} changed since it was "
            "prepared; "
            "rerun the prepare_data step (dvc repro -f prepare_data / snakemake -R prepare_data)"
        )
    return images, labels


def training_set(manifest: dict[str, Any], cutout: int = 0, image_size: int | None = None):
    """The training split of a manifest's data with its training transform.

    Returns:
        ``(dataset, num_classes, in_channels, record)``; ``record`` describes the data in model files.
    """
    from . import data

    if manifest["format"] == ARRAYS_FORMAT:
        info = data.dataset_info(manifest["dataset"])
        images, labels = load_split(manifest, train=True)
        dataset = data.ArrayDataset(images, labels, data.train_transform(info, cutout))
        return dataset, info.num_classes, info.in_channels, {"dataset": info.name}
    transform = data.imagenet_train_transform(image_size)
    dataset = data.image_folder(manifest["root"], "train", transform)
    record = {"dataset": manifest["dataset"], "image_size": image_size}
    return dataset, len(dataset.classes), 3, record


def evaluation_set(manifest: dict[str, Any], model_file: dict[str, Any], names: tuple[str, str]):
    """The test split of a manifest's data (``val/`` of an image folder) and its input size (C, H, W),
    for the network of ``model_file``; refuses data with another number of classes than it was
    trained for (``names``: the model file's and the data's paths, for the message).

    An image folder is evaluated at the image size the network was trained at (the model file's
    record of its data).
    """
    from . import data

    trained_for, classes = model_file["network"]["num_classes"], num_classes(manifest)
    if trained_for != classes:
        raise PdartsError(
            f"{names[0]} was trained for {trained_for} classes, but {names[1]} has {classes}; "
            "evaluate it on the data it was trained on"
        )
    data_record = model_file.get("data")

    if manifest["format"] == ARRAYS_FORMAT:
        images, labels = load_split(manifest, train=False)
        dataset = data.ArrayDataset(
            images, labels, data.eval_transform(data.dataset_info(manifest["dataset"]))
        )
        return dataset, (images.shape[3], images.shape[1], images.shape[2])
    size = data_record.get("image_size") if isinstance(data_record, dict) else None
    if not isinstance(size, int):
        raise PdartsError(
            "the model file records no image size (it was not trained by transfer); "
            "evaluate it on the data it was trained on"
        )
    return data.image_folder(manifest["root"], "val", data.imagenet_eval_transform(size)), (3, size, size)
