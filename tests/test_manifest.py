"""Data manifests: written once by the prepare steps, read and checked by every other step."""

import json

import pytest

from pdarts.errors import PdartsError
from pdarts.manifest import (
    ARRAYS_FORMAT,
    IMAGEFOLDER_FORMAT,
    evaluation_set,
    load_split,
    num_classes,
    read_manifest,
    training_set,
    write_arrays_manifest,
)
from pdarts.settings import DataSettings

SUBSET = DataSettings.defaults(dataset="digits", root="", subset=64)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "dataset.json"
    write_arrays_manifest(SUBSET, path)
    return path


def test_an_arrays_manifest_names_the_data_and_its_digests(digits):
    manifest = read_manifest(digits, ARRAYS_FORMAT)
    assert (manifest["dataset"], manifest["train"], manifest["test"], num_classes(manifest)) == (
        "digits",
        64,
        64,
        10,
    )
    assert set(manifest["sha256"]) == {"train", "test"}
    images, labels = load_split(manifest, train=True)
    assert len(images) == len(labels) == 64


def test_the_datasets_of_a_manifest_carry_their_transforms_and_sizes(digits):
    manifest = read_manifest(digits)
    dataset, classes, channels, record = training_set(manifest)
    assert (len(dataset), classes, channels, record) == (64, 10, 1, {"dataset": "digits"})
    model_file = {"network": {"num_classes": 10}, "data": record}
    test, input_size = evaluation_set(manifest, model_file, ("model.pt", str(digits)))
    assert len(test) == 64 and input_size == (1, 8, 8) and tuple(test[0][0].shape) == input_size
    with pytest.raises(PdartsError, match=r"model.pt was trained for 100 classes, but .* has 10; evaluate"):
        evaluation_set(manifest, {"network": {"num_classes": 100}}, ("model.pt", str(digits)))


@pytest.mark.parametrize(
    ("content", "formats", "message"),
    [
        ({"format": IMAGEFOLDER_FORMAT, "dataset": "d", "root": "r", "classes": []}, (ARRAYS_FORMAT,),
         "is not an arrays data manifest; pass the file the prepare step wrote"),
        ([1, 2], (), "is not a data manifest; pass the one prepare-data or prepare-transfer wrote"),
        ({"format": ARRAYS_FORMAT, "dataset": "digits", "root": ""}, (ARRAYS_FORMAT,),
         "is an incomplete data manifest (no sha256)"),
        ({"format": ARRAYS_FORMAT, "dataset": "digits", "root": "", "sha256": {"train": "x"}}, (),
         "is an incomplete data manifest (no sha256 train/test)"),
    ],
)  # fmt: skip
def test_a_manifest_of_the_wrong_kind_or_incomplete_is_refused(tmp_path, content, formats, message):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(content))
    with pytest.raises(PdartsError) as error:
        read_manifest(path, *formats)
    assert message in str(error.value)


def test_a_prepared_folder_is_read_through_its_manifest(tmp_path, digits):
    (tmp_path / "manifest.json").write_text(digits.read_text())
    assert read_manifest(tmp_path) == read_manifest(digits)


def test_changed_data_is_noticed(digits, tmp_path):
    manifest = read_manifest(digits)
    manifest["sha256"]["test"] = "0" * 64
    with pytest.raises(PdartsError, match="changed since it was prepared; rerun the prepare_data step"):
        load_split(manifest, train=False)
