"""Settings: every shipped config is valid; bad settings stop with one line naming the key."""

import copy

import pytest
import yaml

from pdarts.config import load_params, section_schema
from pdarts.errors import PdartsError
from pdarts.settings import check_params

from .conftest import ROOT

CONFIGS = [ROOT / "params.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    check_params(load_params(path))


def test_paper_configs_hold_the_paper_settings():
    c10 = load_params(ROOT / "configs" / "cifar10.yaml")
    stages = c10["search"]["stages"]
    assert [(s["cells"], s["ops"], s["skip_dropout"]) for s in stages] == [
        (5, 8, 0.0),
        (11, 5, 0.4),
        (17, 3, 0.7),
    ]
    common = c10["search"]["common"]
    assert (common["epochs"], common["warmup_epochs"], common["batch_size"], common["init_channels"]) == (
        25,
        10,
        96,
        16,
    )
    assert (common["weight_lr"], common["arch_lr"], common["weight_decay"], common["arch_weight_decay"]) == (
        0.025,
        6.0e-4,
        3.0e-4,
        1.0e-3,
    )
    train = c10["train"]
    assert (train["cells"], train["init_channels"], train["epochs"], train["batch_size"]) == (
        20,
        36,
        600,
        128,
    )
    assert (train["drop_path"], train["auxiliary_weight"], train["cutout"]) == (0.3, 0.4, 16)
    transfer = c10["transfer"]
    assert (transfer["cells"], transfer["init_channels"], transfer["epochs"], transfer["image_size"]) == (
        14,
        48,
        250,
        224,
    )
    assert (
        transfer["lr"],
        transfer["batch_size"],
        transfer["weight_decay"],
        transfer["label_smoothing"],
    ) == (0.1, 256, 3.0e-5, 0.1)
    c100 = load_params(ROOT / "configs" / "cifar100.yaml")
    assert c100["data"]["dataset"] == "cifar100"
    assert [s["skip_dropout"] for s in c100["search"]["stages"]] == [0.1, 0.2, 0.3]
    assert c10["derive"]["max_skip"] == c100["derive"]["max_skip"] == 2


def test_default_params_keep_three_progressive_stages():
    params = load_params(ROOT / "params.yaml")
    stages = params["search"]["stages"]
    assert len(stages) == 3 and params["data"]["dataset"] == "digits"
    assert [s["ops"] for s in stages] == [8, 5, 3]
    assert stages[0]["cells"] < stages[1]["cells"] < stages[2]["cells"]


def _bad(mutate):
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    mutate(params)
    return params


def _set(path, value):
    def mutate(params):
        *parents, last = path
        node = params
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


BAD = {
    "unknown top-level key": (_set(["trian"], {}), "params: Additional properties are not allowed ('trian'"),
    "unknown key in a section": (
        _set(["train", "epoch"], 3),
        "train: Additional properties are not allowed ('epoch'",
    ),
    "missing key": (lambda p: p["train"].pop("epochs"), "train: 'epochs' is a required property"),
    "wrong type": (_set(["train", "batch_size"], "big"), "train.batch_size: 'big' is not of type 'integer'"),
    "zero epochs": (
        _set(["search", "common", "epochs"], 0),
        "search.common.epochs: 0 is less than the minimum of 1",
    ),
    "negative epochs": (_set(["train", "epochs"], -3), "train.epochs: -3 is less than the minimum of 1"),
    "lr as YAML 1.1 text": (
        _set(["search", "common", "weight_lr"], "3e-4"),
        "write numbers with a decimal point",
    ),
    "non-numeric lr": (_set(["train", "lr"], "fast"), "train.lr: 'fast' is not of type 'number'"),
    "negative max_skip": (
        _set(["derive", "max_skip"], -1),
        "derive.max_skip: -1 is less than the minimum of 0",
    ),
    "unknown dataset": (_set(["data", "dataset"], "mnist"), "data.dataset: 'mnist' is not one of"),
    "K = 0": (_set(["search", "stages"], []), "search.stages: [] should be non-empty"),
    "ops growing": (
        lambda p: p["search"]["stages"][2].update(ops=6),
        "search.stages[2].ops: 6 is more than the 5 ops of search.stages[1].ops",
    ),
    "more ops than the space": (
        lambda p: p["search"]["space"].update(ops=["skip_connect", "sep_conv_3x3"]),
        "search.stages[0].ops: 8 is more than the 2 ops of search.space.ops",
    ),
    "broken chain": (
        lambda p: p["search"]["stages"][2].update(after="stage1"),
        "search.stages[2].after: must be 'stage2'",
    ),
    "duplicate names": (lambda p: p["search"]["stages"][1].update(name="stage1"), "names must be unique"),
    "dropout of 1": (
        lambda p: p["search"]["stages"][1].update(skip_dropout=1.0),
        "search.stages[1].skip_dropout: 1.0 is greater than or equal to the maximum of 1",
    ),
    "unknown op": (
        _set(["search", "space", "ops"], ["conv_7x7"]),
        "search.space.ops[0]: 'conv_7x7' is not one of",
    ),
    "warm-up longer than the stage": (
        _set(["search", "common", "warmup_epochs"], 9),
        "search.common.warmup_epochs: 9 is more than search.common.epochs",
    ),
    "bad device": (_set(["train", "device"], "gpu"), "train.device: 'gpu' does not match"),
    "transfer data left in the transfer recipe": (  # they moved to transfer_data
        _set(["transfer", "root"], "data/imagenet"),
        "transfer: Additional properties are not allowed ('root'",
    ),
    "transfer without a root": (
        lambda p: p["transfer_data"].update(dataset="imagefolder", root=""),
        "transfer_data.root:",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_settings_name_the_key(case):
    mutate, message = BAD[case]
    with pytest.raises(PdartsError) as info:
        check_params(_bad(mutate))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_check_params_command(tmp_path, run_pdarts):
    bad = _bad(_set(["train", "epochs"], 0))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = run_pdarts("check-params", path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"pdarts check-params: error: {path}: train.epochs: 0 is less than the minimum of 1"
    )
    (tmp_path / "broken.yaml").write_text("train: [unclosed")
    proc = run_pdarts("check-params", tmp_path / "broken.yaml")
    assert proc.returncode == 2 and "is not valid YAML at line 1" in proc.stderr
    proc = run_pdarts("check-params", ROOT / "params.yaml")
    assert proc.returncode == 0, proc.stderr


def test_section_schema_inlines_refs():
    epochs = section_schema("search.common")["properties"]["epochs"]
    assert epochs["type"] == "integer" and epochs["minimum"] == 1 and epochs["default"] == 25
