"""Tests for pdarts.data: array datasets, CIFAR pickles, the search split, transforms, image folders, loaders.

CIFAR and ImageNet cannot be downloaded here: the tests write tiny files in the real formats.
"""

from __future__ import annotations

import io
import pickle
import shutil
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision.transforms import v2

from pdarts import data
from pdarts.data import (
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ArrayDataset,
    Cutout,
    check_image_folder,
    dataset_info,
    eval_transform,
    image_folder,
    imagenet_eval_transform,
    imagenet_train_transform,
    load_arrays,
    make_loader,
    search_halves,
    train_transform,
    write_image_folder,
)
from pdarts.errors import PdartsError

from ..helpers import (
    MakesAFolder,
    break_truncate,
    corrupt_jpeg,
    dumps_protocol2,
    rewrite_batch,
    save,
    write_cifar,
)

# --------------------------------------------------------------------------------------------------
# CIFAR files in torchvision's python layout


class _Py2Pickler(pickle._Pickler):
    """Writes every string as a Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), like the real files."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def _dumps_py2(obj: object) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    # Python 2's numpy named the array reconstructor numpy.core.multiarray (numpy 2: numpy._core).
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _as_nhwc(raw: np.ndarray) -> np.ndarray:
    # Written out index by index, independent of the reshape in the library.
    images = np.empty((len(raw), 32, 32, 3), dtype=np.uint8)
    for channel in range(3):
        for row in range(32):
            images[:, row, :, channel] = raw[:, channel * 1024 + row * 32 : channel * 1024 + row * 32 + 32]
    return images


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize(
    "dumps", [dumps_protocol2, _dumps_py2, pickle.dumps], ids=["py3-proto2", "py2", "default"]
)
def test_cifar_loads_in_the_real_layout(tmp_path, name, dumps):
    expected = write_cifar(tmp_path, name, dumps)
    for train, (raw, labels) in expected.items():
        images, loaded_labels = load_arrays(name, tmp_path, train=train)
        assert images.shape == (len(raw), 32, 32, 3) and images.dtype == np.uint8
        assert loaded_labels.dtype == np.int64
        np.testing.assert_array_equal(images, _as_nhwc(raw))
        np.testing.assert_array_equal(loaded_labels, labels)
    assert len(load_arrays(name, tmp_path, train=True)[0]) == (15 if name == "cifar10" else 3)


def test_py2_writer_writes_like_python_2():
    written = _dumps_py2({b"data": np.zeros((1, 3072), np.uint8), b"labels": [3]})
    assert written.startswith(b"\x80\x02}") and b"U\x04data" in written  # SHORT_BINSTRING keys
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in written and b"_codecs" not in written


BAD_CIFAR = {
    "missing batch": ("data_batch_3", "is missing", lambda folder: (folder / "data_batch_3").unlink()),
    "missing meta": ("batches.meta", "is missing", lambda folder: (folder / "batches.meta").unlink()),
    "truncated batch": ("data_batch_3", "truncated", break_truncate),
    "pickled list": (
        "data_batch_3",
        "expected a dict, found a list",
        lambda folder: (folder / "data_batch_3").write_bytes(pickle.dumps([1, 2, 3], protocol=2)),
    ),
    "not a pickle": (
        "data_batch_3",
        "truncated or not",
        lambda folder: (folder / "data_batch_3").write_text("hi"),
    ),
    "wrong data shape": (
        "data_batch_3",
        "(N, 3072)",
        lambda folder: rewrite_batch(folder, data=np.zeros((3, 1024), np.uint8)),
    ),
    "wrong data dtype": (
        "data_batch_3",
        "float32 array",
        lambda folder: rewrite_batch(folder, data=np.zeros((3, 3072), np.float32)),
    ),
    "label out of range": (
        "data_batch_3",
        "label 10 is out of range 0..9",
        lambda f: rewrite_batch(f, labels=[0, 10, 1]),
    ),
    "negative label": (
        "data_batch_3",
        "label -1 is out of range",
        lambda f: rewrite_batch(f, labels=[0, -1, 1]),
    ),
    "label count": (
        "data_batch_3",
        "2 labels for 3 images",
        lambda folder: rewrite_batch(folder, labels=[0, 1]),
    ),
    "missing labels": (
        "data_batch_3",
        "no b'labels' entry",
        lambda folder: rewrite_batch(folder, labels=None),
    ),
    "bad meta": (
        "batches.meta",
        "not a CIFAR-10 meta file",
        lambda folder: (folder / "batches.meta").write_bytes(
            pickle.dumps({b"label_names": [b"a"]}, protocol=2)
        ),
    ),
}


@pytest.mark.parametrize("case", list(BAD_CIFAR))
def test_bad_cifar_files_are_refused_naming_the_file(tmp_path, case):
    write_cifar(tmp_path, "cifar10")
    folder = tmp_path / "cifar-10-batches-py"
    file_name, expected, damage = BAD_CIFAR[case]
    damage(folder)
    with pytest.raises(PdartsError) as caught:
        load_arrays("cifar10", tmp_path, train=True)
    message = str(caught.value)
    assert f"{folder / file_name}" in message
    assert expected in message
    assert "re-download CIFAR-10" in message and "\n" not in message


def test_missing_cifar_folder_is_refused_with_the_fix(tmp_path):
    with pytest.raises(PdartsError, match="cifar-100-python does not exist.*data.download: true"):
        load_arrays("cifar100", tmp_path, train=False)


def test_cifar100_label_range_is_checked_against_100_classes(tmp_path):
    write_cifar(tmp_path, "cifar100")
    path = tmp_path / "cifar-100-python" / "test"
    batch = pickle.loads(path.read_bytes(), encoding="bytes")
    batch[b"fine_labels"][0] = 100
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(PdartsError, match=r"cifar-100-python/test: label 100 is out of range 0\.\.99"):
        load_arrays("cifar100", tmp_path, train=False)
    assert len(load_arrays("cifar100", tmp_path, train=True)[0]) == 3  # the train file is untouched


def test_pickles_cannot_run_code(tmp_path):
    write_cifar(tmp_path, "cifar10")
    target = tmp_path / "created-by-pickle"
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(
        pickle.dumps(MakesAFolder(target), protocol=2)
    )
    with pytest.raises(PdartsError, match=r"data_batch_1 is not a CIFAR pickle batch: it references .*mkdir"):
        load_arrays("cifar10", tmp_path, train=True)
    assert not target.exists()


def test_download_fetches_missing_files_with_torchvision(tmp_path, monkeypatch):
    calls = []

    class FakeCIFAR10:
        url = torchvision.datasets.CIFAR10.url

        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, train, download))
            write_cifar(Path(root), "cifar10")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    images, labels = load_arrays("cifar10", tmp_path, train=False, download=True)
    assert calls == [(str(tmp_path), False, True)]
    assert images.shape == (4, 32, 32, 3) and labels.shape == (4,)
    load_arrays("cifar10", tmp_path, train=True, download=True)
    assert len(calls) == 1  # files present: no second download


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    class OfflineCIFAR100:
        url = torchvision.datasets.CIFAR100.url

        def __init__(self, root: str, train: bool, download: bool) -> None:
            raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", OfflineCIFAR100)
    with pytest.raises(PdartsError, match="downloading CIFAR-100 into .* failed .*cifar-100-python.tar.gz"):
        load_arrays("cifar100", tmp_path, train=True, download=True)


# --------------------------------------------------------------------------------------------------
# Registry, digits, search halves


def test_registry_entries():
    assert sorted(DATASETS) == ["cifar10", "cifar100", "digits"]
    digits, cifar10, cifar100 = DATASETS["digits"], DATASETS["cifar10"], DATASETS["cifar100"]
    assert (digits.num_classes, digits.in_channels, digits.image_size) == (10, 1, 8)
    assert (digits.crop_padding, digits.hflip) == (1, False)
    assert (cifar10.num_classes, cifar10.in_channels, cifar10.image_size, cifar10.crop_padding) == (
        10,
        3,
        32,
        4,
    )
    assert cifar100.num_classes == 100 and cifar10.hflip and cifar100.hflip
    assert all(len(info.mean) == len(info.std) == info.in_channels for info in DATASETS.values())
    assert dataset_info("cifar100") is cifar100


def test_unknown_dataset_lists_known_names():
    with pytest.raises(
        PdartsError, match="unknown dataset 'mnist'; known array datasets: cifar10, cifar100, digits"
    ):
        load_arrays("mnist", "data", train=True)


def test_digits_split_is_fixed_and_stratified():
    train_images, train_labels = load_arrays("digits", "ignored", train=True)
    test_images, test_labels = load_arrays("digits", "ignored", train=False)
    assert train_images.shape == (1437, 8, 8, 1) and test_images.shape == (360, 8, 8, 1)
    assert len(train_labels) + len(test_labels) == 1797
    assert train_images.dtype == np.uint8 and train_labels.dtype == np.int64
    assert train_images.min() == 0 and train_images.max() == 255
    assert set(np.unique(train_labels)) == set(np.unique(test_labels)) == set(range(10))
    assert set(np.bincount(test_labels)) <= {35, 36, 37}  # 20 % of each class
    train_images[0] = 7  # callers get copies
    again_images, again_labels = load_arrays("digits", "ignored", train=True)
    assert not np.array_equal(again_images[0], train_images[0])
    np.testing.assert_array_equal(again_labels, train_labels)


def test_digits_statistics_match_the_registry():
    images, _ = load_arrays("digits", "ignored", train=True)
    scaled = images / 255.0
    assert scaled.mean() == pytest.approx(DATASETS["digits"].mean[0], abs=1e-4)
    assert scaled.std() == pytest.approx(DATASETS["digits"].std[0], abs=1e-4)


@pytest.mark.parametrize("num_samples", [10, 11, 1437])
def test_search_halves_are_disjoint_equal_first_and_second_half(num_samples):
    weights, alphas = search_halves(num_samples)
    half = num_samples // 2
    assert len(weights) == len(alphas) == half
    assert not set(weights) & set(alphas)
    np.testing.assert_array_equal(np.concatenate([weights, alphas]), np.arange(2 * half))


def test_search_halves_needs_two_samples():
    with pytest.raises(PdartsError, match="at least 2"):
        search_halves(1)


# --------------------------------------------------------------------------------------------------
# ArrayDataset and transforms


def test_array_dataset_gives_chw_uint8_and_int_labels():
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 6, 3), dtype=np.uint8)
    dataset = ArrayDataset(images, np.arange(5))
    image, label = dataset[3]
    assert len(dataset) == 5 and label == 3 and isinstance(label, int)
    assert image.dtype == torch.uint8 and image.shape == (3, 4, 6)
    np.testing.assert_array_equal(image.numpy(), images[3].transpose(2, 0, 1))
    transformed = ArrayDataset(images, np.arange(5), eval_transform(DATASETS["cifar10"]))[0][0]
    assert transformed.dtype == torch.float32
    with pytest.raises(ValueError):
        ArrayDataset(images.astype(np.float32), np.arange(5))
    with pytest.raises(ValueError):
        ArrayDataset(images, np.arange(4))


def test_eval_transform_scales_and_normalizes():
    info = DATASETS["cifar10"]
    image = torch.tensor([10, 128, 250], dtype=torch.uint8).view(3, 1, 1).expand(3, 32, 32).contiguous()
    out = eval_transform(info)(image)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    for channel, value in enumerate((10, 128, 250)):
        expected = (value / 255 - info.mean[channel]) / info.std[channel]
        assert torch.allclose(out[channel], torch.full((32, 32), expected), atol=1e-5)


@pytest.mark.parametrize("name", list(DATASETS))
def test_train_transform_keeps_shape_and_normalizes(name):
    info = DATASETS[name]
    torch.manual_seed(0)
    image = torch.full((info.in_channels, info.image_size, info.image_size), 255, dtype=torch.uint8)
    for cutout in (0, 3):
        out = train_transform(info, cutout=cutout)(image)
        assert out.shape == image.shape and out.dtype == torch.float32
        mean = torch.tensor(info.mean).view(-1, 1, 1)
        std = torch.tensor(info.std).view(-1, 1, 1)
        # Every pixel is the image (1), crop padding (0) or, after normalization, a cutout hole.
        restored = out * std + mean
        is_image_or_padding = torch.isclose(restored, torch.ones(())) | torch.isclose(
            restored, torch.zeros(())
        )
        assert bool((is_image_or_padding | (out == 0)).all())


def _left_brighter(out: torch.Tensor, info) -> bool:
    restored = out * torch.tensor(info.std).view(-1, 1, 1) + torch.tensor(info.mean).view(-1, 1, 1)
    third = out.shape[-1] // 3
    return bool(restored[..., :third].mean() > restored[..., -third:].mean())


@pytest.mark.parametrize("name, flips", [("digits", False), ("cifar10", True)])
def test_horizontal_flip_only_where_labels_allow(name, flips):
    info = DATASETS[name]
    transform = train_transform(info)
    has_flip = any(isinstance(step, v2.RandomHorizontalFlip) for step in transform.transforms)
    assert has_flip == flips
    size = info.image_size
    image = torch.zeros((info.in_channels, size, size), dtype=torch.uint8)
    image[..., : size // 2] = 255  # left half bright; a crop shifts it by at most the padding
    torch.manual_seed(0)
    left_brighter = [_left_brighter(transform(image), info) for _ in range(100)]
    assert all(left_brighter) != flips
    assert any(left_brighter)


def test_random_crop_moves_the_image_by_up_to_the_padding():
    info = DATASETS["digits"]
    transform = train_transform(info)
    image = torch.full((1, 8, 8), 255, dtype=torch.uint8)
    torch.manual_seed(0)
    inside = [(transform(image) * info.std[0] + info.mean[0] > 0.5) for _ in range(60)]
    sizes = {(int(mask.any(1).sum()), int(mask.any(2).sum())) for mask in inside}
    assert sizes <= {(7, 7), (7, 8), (8, 7), (8, 8)}  # at most one padding row and column
    assert len(sizes) > 1


def _zero_box(out: torch.Tensor) -> tuple[int, int]:
    zero = out == 0
    assert bool((zero == zero[0]).all())  # the same square in every channel
    rows, cols = zero[0].any(1), zero[0].any(0)
    assert bool((zero[0] == (rows[:, None] & cols[None, :])).all())  # one axis-aligned rectangle
    return int(rows.sum()), int(cols.sum())


@pytest.mark.parametrize("length", [16, 5])
def test_cutout_zeroes_one_clipped_square(length):
    torch.manual_seed(0)
    image = torch.ones(3, 32, 32)
    cutout = Cutout(length)
    boxes = [_zero_box(cutout(image)) for _ in range(200)]
    assert bool((image == 1).all())  # the input is left alone
    assert all(length // 2 <= height <= length and length // 2 <= width <= length for height, width in boxes)
    assert (length, length) in boxes  # a full square away from the borders
    assert any(height < length or width < length for height, width in boxes)  # clipped at a border
    with pytest.raises(ValueError):
        Cutout(0)


def test_train_transform_ends_with_cutout_after_normalization():
    transform = train_transform(DATASETS["cifar10"], cutout=16)
    assert isinstance(transform.transforms[-1], Cutout) and transform.transforms[-1].length == 16
    assert isinstance(transform.transforms[-2], v2.Normalize)
    assert not any(isinstance(step, Cutout) for step in train_transform(DATASETS["cifar10"]).transforms)


def test_imagenet_transforms_work_for_tiny_and_large_images():
    torch.manual_seed(0)
    tiny = Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    for transform in (imagenet_train_transform(16), imagenet_eval_transform(16)):
        out = transform(tiny)
        assert type(out) is torch.Tensor and out.shape == (3, 16, 16) and out.dtype == torch.float32
    grey = Image.new("RGB", (300, 260), (128, 64, 200))
    evaluated = imagenet_eval_transform(224)(grey)
    assert evaluated.shape == (3, 224, 224)
    for channel, value in enumerate((128, 64, 200)):
        expected = (value / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        assert torch.allclose(evaluated[channel], torch.full((224, 224), expected), atol=1e-4)
    assert imagenet_eval_transform(224).transforms[0].size == [256]  # 224 / 0.875
    jitter = [step for step in imagenet_train_transform(224).transforms if isinstance(step, v2.ColorJitter)]
    assert jitter and jitter[0].hue == (-0.2, 0.2) and jitter[0].brightness == (0.6, 1.4)


# --------------------------------------------------------------------------------------------------
# Image folders


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """train: cat (JPEG + grayscale PNG), dog (JPEG + PNG); val: one image per class; plus hidden clutter."""
    root = tmp_path / "images"
    save(root / "train" / "cat" / "a.jpg", (64, 48), seed=1)
    save(root / "train" / "cat" / "b.png", (10, 12), mode="L", seed=2)
    save(root / "train" / "dog" / "c.jpeg", (20, 20), seed=3)
    save(root / "train" / "dog" / "d.png", (8, 8), seed=4)
    save(root / "val" / "cat" / "e.jpg", (16, 16), seed=5)
    save(root / "val" / "dog" / "f.png", (16, 16), seed=6)
    (root / "train" / "cat" / "._a.jpg").write_bytes(b"\x00\x05\x16\x07 resource fork")  # macOS litter
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    (root / "train" / ".ipynb_checkpoints").mkdir()
    return root


def test_check_image_folder_accepts_a_good_tree(tree):
    assert check_image_folder(tree) == {"classes": ["cat", "dog"], "train": 4, "val": 2}


def test_image_folder_loads_with_transforms(tree):
    dataset = image_folder(tree, "train", imagenet_train_transform(16))
    assert dataset.classes == ["cat", "dog"] and dataset.targets == [0, 0, 1, 1]
    assert all(not Path(path).name.startswith(".") for path, _ in dataset.samples)
    image, label = dataset[1]  # the grayscale PNG comes out as 3 channels
    assert image.shape == (3, 16, 16) and label == 0
    val = image_folder(tree, "val", imagenet_eval_transform(16))
    images, labels = next(iter(make_loader(val, batch_size=2, shuffle=False, seed=0)))
    assert images.shape == (2, 3, 16, 16) and labels.tolist() == [0, 1]
    with pytest.raises(ValueError):
        image_folder(tree, "test", None)
    shutil.rmtree(tree / "val")
    with pytest.raises(PdartsError, match="images/val does not exist"):
        image_folder(tree, "val", None)


BAD_TREES = {
    "empty class folder": (
        lambda root: ((root / "train" / "bird").mkdir(), save(root / "val" / "bird" / "g.png", (8, 8))),
        "images/train/bird has no images",
    ),
    "missing val": (lambda root: shutil.rmtree(root / "val"), "images/val does not exist"),
    "mismatched classes": (
        lambda root: (root / "val" / "dog").rename(root / "val" / "wolf"),
        "different class folders (only in train: dog; only in val: wolf)",
    ),
    "one class": (
        lambda root: (shutil.rmtree(root / "train" / "dog"), shutil.rmtree(root / "val" / "dog")),
        "images/train has 1 class folder",
    ),
    "corrupt jpeg": (corrupt_jpeg, "images/train/cat/a.jpg is not a readable image (truncated or corrupt"),
    "missing root": (lambda root: shutil.rmtree(root), "images does not exist"),
}


@pytest.mark.parametrize("case", list(BAD_TREES))
def test_bad_image_folders_are_refused(tree, case):
    damage, expected = BAD_TREES[case]
    damage(tree)
    with pytest.raises(PdartsError) as caught:
        check_image_folder(tree)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_corrupt_image_passes_only_without_verification(tree):
    corrupt_jpeg(tree)
    assert check_image_folder(tree, verify_images=False)["train"] == 4
    with pytest.raises(OSError):  # what a training worker would hit without the check
        image_folder(tree, "train", None)[0]


# --------------------------------------------------------------------------------------------------
# write_image_folder


def test_write_image_folder_round_trip_grayscale(tmp_path):
    images, labels = load_arrays("digits", "ignored", train=True)
    chosen = np.sort(np.concatenate([np.flatnonzero(labels == digit)[:3] for digit in range(10)]))
    images, labels = images[chosen], labels[chosen]
    names = [str(digit) for digit in range(10)]
    write_image_folder(images, labels, tmp_path, "train", names)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["train"]  # no temporary folder left
    assert sorted(path.name for path in (tmp_path / "train").iterdir()) == names
    dataset = image_folder(tmp_path, "train", None)
    assert len(dataset) == 30
    for path, target in dataset.samples:
        index = int(Path(path).stem)
        assert target == labels[index] and Path(path).parent.name == names[labels[index]]
        with Image.open(path) as image:
            assert image.mode == "L"
            np.testing.assert_array_equal(np.asarray(image), images[index, ..., 0])


def test_write_image_folder_round_trip_rgb_and_replace(tmp_path):
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    write_image_folder(first, np.array([0, 1, 0, 1]), tmp_path, "val", ["a", "b"])
    (tmp_path / "val" / "a" / "stray.png").write_bytes(b"old")
    second = rng.integers(0, 256, (3, 5, 6, 3), dtype=np.uint8)
    write_image_folder(second, np.array([1, 1, 0]), tmp_path, "val", ["a", "b"])
    files = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    assert files == ["val/a/00002.png", "val/b/00000.png", "val/b/00001.png"]
    with Image.open(tmp_path / "val" / "b" / "00001.png") as image:
        np.testing.assert_array_equal(np.asarray(image), second[1])


def test_write_image_folder_crash_keeps_the_old_tree(tmp_path, monkeypatch):
    images = np.zeros((6, 4, 4, 1), dtype=np.uint8)
    write_image_folder(images, np.array([0, 1, 0, 1, 0, 1]), tmp_path, "train", ["x", "y"])
    before = sorted(tmp_path.rglob("*"))
    real_save = Image.Image.save
    saved = []

    def failing_save(self, *args, **kwargs):
        if len(saved) == 2:
            raise OSError("disk full")
        saved.append(args[0])
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_image_folder(images[:4] + 9, np.array([1, 1, 1, 1]), tmp_path, "train", ["x", "y"])
    assert sorted(tmp_path.rglob("*")) == before  # old tree intact, temporary folder removed
    with Image.open(tmp_path / "train" / "x" / "00000.png") as image:
        assert np.asarray(image).max() == 0


def test_write_image_folder_refuses_bad_input(tmp_path):
    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="labels must be in 0..1"):
        write_image_folder(images, np.array([0, 2]), tmp_path, "train", ["a", "b"])
    with pytest.raises(ValueError, match="visible folder name"):
        write_image_folder(images, np.array([0, 1]), tmp_path, "train", ["a", ".b"])
    with pytest.raises(ValueError, match="uint8"):
        write_image_folder(images[..., :2], np.array([0, 1]), tmp_path, "train", ["a", "b"])
    assert not (tmp_path / "train").exists()


# --------------------------------------------------------------------------------------------------
# Loaders


def _epoch_order(loader) -> list[int]:
    return [int(label) for _, labels in loader for label in labels]


def test_make_loader_order_depends_only_on_the_seed():
    dataset = ArrayDataset(np.zeros((20, 2, 2, 1), dtype=np.uint8), np.arange(20))
    first = make_loader(dataset, batch_size=6, shuffle=True, seed=1)
    epochs = [_epoch_order(first), _epoch_order(first)]
    assert sorted(epochs[0]) == list(range(20)) and epochs[0] != epochs[1]  # a new order each epoch
    again = make_loader(dataset, batch_size=6, shuffle=True, seed=1)
    assert [_epoch_order(again), _epoch_order(again)] == epochs
    assert _epoch_order(make_loader(dataset, batch_size=6, shuffle=True, seed=2)) != epochs[0]
    assert _epoch_order(make_loader(dataset, batch_size=6, shuffle=False, seed=1)) == list(range(20))
    assert len(make_loader(dataset, batch_size=6, shuffle=True, seed=1, drop_last=True)) == 3


def test_make_loader_workers_are_seeded_deterministically():
    images, labels = load_arrays("digits", "ignored", train=False)
    dataset = ArrayDataset(images[:64], labels[:64], train_transform(DATASETS["digits"], cutout=3))

    def batches(loader) -> torch.Tensor:
        return torch.cat([images for images, _ in loader])

    loader = make_loader(dataset, batch_size=16, shuffle=True, seed=0, num_workers=2)
    first = batches(loader)
    saved = loader.generator.get_state()  # what a checkpoint keeps after epoch 1
    second = batches(loader)
    assert torch.equal(
        first, batches(make_loader(dataset, batch_size=16, shuffle=True, seed=0, num_workers=2))
    )
    assert not torch.equal(first, batches(make_loader(dataset, 16, shuffle=True, seed=1, num_workers=2)))
    resumed = make_loader(dataset, batch_size=16, shuffle=True, seed=0, num_workers=2)
    resumed.generator.set_state(saved)
    assert torch.equal(second, batches(resumed))  # epoch 2 after a resume: same order, same augmentation


class _NumpyRandomDataset(torch.utils.data.Dataset):
    """Items drawn from numpy's global generator, as third-party augmentations often do."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> int:
        return int(np.random.randint(1_000_000))


def test_make_loader_seeds_numpy_in_workers():
    def draws(seed: int) -> list[int]:
        loader = make_loader(_NumpyRandomDataset(), batch_size=2, shuffle=False, seed=seed, num_workers=2)
        return [int(value) for batch in loader for value in batch]

    first = draws(0)
    assert first == draws(0) and first != draws(1)
    assert first[:2] != first[2:4]  # the two workers do not repeat each other's stream


def test_module_exports_exist():
    assert all(hasattr(data, name) for name in data.__all__)
