"""Typed settings: one class per section, built from the schema, each rule across keys written once."""

import copy
import dataclasses

import pytest

from pdarts.config import load_params, section_schema
from pdarts.errors import PdartsError
from pdarts.settings import (
    SECTIONS,
    SearchSettings,
    Stage,
    TrainSettings,
    TransferDataSettings,
    TransferSettings,
    check_params,
    schema_defaults,
)

from .conftest import ROOT

PARAMS = load_params(ROOT / "params.yaml")


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_each_class_has_the_schema_keys_and_writes_them_in_the_schema_order(section):
    # The order matters: to_dict() is what alphas and model files record, byte for byte.
    fields = [field.name for field in dataclasses.fields(SECTIONS[section])]
    assert sorted(fields) == sorted(section_schema(section)["properties"])
    assert list(SECTIONS[section].defaults().to_dict()) == list(section_schema(section)["properties"])


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_defaults_are_the_schemas_and_round_trip(section):
    cls = SECTIONS[section]
    settings = cls.defaults()
    assert settings.to_dict() == {key: schema_defaults(section)[key] for key in settings.to_dict()}
    assert cls.from_dict(settings.to_dict()) == settings


def _node(params, section):
    for part in section.split("."):
        params = params[part]
    return params


# Every rule across keys: the section, the change that breaks it, and the message both places give.
RULES = [
    ("search.common", {"warmup_epochs": 5, "epochs": 4}, "search.common.warmup_epochs: 5 is more than"),
    ("search.common", {"batch_size": 63, "processes": 2}, "search.common.batch_size: 63 is not a multiple"),
    (
        "train",
        {"batch_size": 63, "processes": 2},
        "train.batch_size: 63 is not a multiple of train.processes",
    ),
    ("transfer", {"warmup_epochs": 5, "epochs": 5}, "transfer.warmup_epochs: 5 must be less than"),
    ("transfer", {"batch_size": 63, "processes": 2}, "transfer.batch_size: 63 is not a multiple"),
    (
        "transfer_data",
        {"dataset": "imagefolder", "root": ""},
        "transfer_data.root: give the ImageFolder root",
    ),
]


@pytest.mark.parametrize(("section", "change", "message"), RULES, ids=[f"{r[0]}-{r[2][:30]}" for r in RULES])
def test_a_rule_refuses_the_same_way_for_a_step_and_for_check_params(section, change, message):
    values = {**_node(PARAMS, section), **change}
    with pytest.raises(PdartsError) as by_step:
        SECTIONS[section].from_dict(values)
    params = copy.deepcopy(PARAMS)
    _node(params, section).update(change)
    with pytest.raises(PdartsError) as by_file:
        check_params(params)
    assert message in str(by_step.value)
    assert str(by_step.value) == str(by_file.value)


def test_keys_the_schema_does_not_require_take_their_defaults():
    # A params file may leave out search.common.processes and the speed settings (the schema gives
    # defaults): the rules read the defaults instead of failing on the missing key.
    params = copy.deepcopy(PARAMS)
    for key in ("processes", "precision", "channels_last", "compile", "checkpoint_cells"):
        del params["search"]["common"][key]
    check_params(params)
    settings = SearchSettings.from_dict(params["search"]["common"])
    assert settings.processes == schema_defaults("search.common")["processes"]


def test_a_bad_value_names_its_key_and_nothing_is_built():
    with pytest.raises(PdartsError, match=r"^train\.epochs: -3 is less than the minimum of 1"):
        TrainSettings.defaults(epochs=-3)
    with pytest.raises(PdartsError, match="Additional properties are not allowed"):
        TrainSettings.from_dict({"epoch": 3})


def test_settings_are_frozen_and_replace_checks_again():
    settings = TransferSettings.defaults()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.epochs = 3  # type: ignore[misc]
    with pytest.raises(PdartsError, match="transfer.warmup_epochs"):
        settings.replace(epochs=1, warmup_epochs=1)
    assert settings.replace(epochs=3).epochs == 3


def test_recipes_say_what_differs_between_them():
    assert (TrainSettings.family, TransferSettings.family) == ("cifar", "imagenet")
    assert TransferSettings.drop_path == 0.0 and TrainSettings.label_smoothing == 0.0
    assert TransferDataSettings.defaults(dataset="digits", root="").dataset == "digits"


def test_a_stage_records_its_settings_before_the_common_ones():
    record = Stage("stage2", 11, 0.4).record(SearchSettings.defaults())
    assert list(record)[:4] == ["stage", "cells", "skip_dropout", "seed"]
    assert record["stage"] == "stage2" and record["epochs"] == schema_defaults("search.common")["epochs"]


def test_help_lists_each_setting_in_one_spelling_and_accepts_the_other(run_pdarts):
    help_text = run_pdarts("search", "--help").stdout
    assert "--channels_last, --no-channels_last" in help_text
    assert "--channels-last" not in help_text and "--no-channels-last" not in help_text
    assert "--weight-lr" not in help_text and "--weight_lr" in help_text
    assert "--keep-checkpoint, --no-keep-checkpoint" in help_text and "--keep_checkpoint" not in help_text
    proc = run_pdarts("search", "--stage", "s", "--cells", "2", "--skip-dropout", "0.1", "--no-channels-last")
    assert "--skip_dropout" not in proc.stderr and "the following arguments are required" in proc.stderr


def test_an_absent_list_option_is_an_empty_list_as_dvc_writes_one():
    """DVC's ``${evaluate}`` writes no flag at all for ``latency_batch_sizes: []`` (and the Snakefile's
    flags() does the same): the command must read the absence as the empty list, not as the
    schema's default ``[1, 64]``."""
    import argparse

    from pdarts.cli.options import add_section_options, section_settings
    from pdarts.settings import EvaluateSettings

    parser = argparse.ArgumentParser()
    add_section_options(parser, "evaluate")
    assert section_settings(parser.parse_args([]), EvaluateSettings).latency_batch_sizes == []
    given = parser.parse_args(["--latency_batch_sizes", "1", "64"])
    assert section_settings(given, EvaluateSettings).latency_batch_sizes == [1, 64]
    assert EvaluateSettings.defaults().latency_batch_sizes == [1, 64]  # params.yaml without the key
    assert "absent: none" in parser.format_help()
