"""Typed settings of the pipeline's steps: one frozen dataclass per section of params.yaml.

A settings object is built from its section by :meth:`Section.from_dict`: the schema
(``schemas/params.schema.yaml``) first, then the class's :meth:`~Section.check`, which holds every
rule across the section's keys that a schema cannot say. The steps build their settings this way and
``check-params`` checks a whole file with the same calls, so both refuse a bad value with the same
message. Field names are the schema's keys (``to_dict`` gives them in its order), and so are the defaults
(:meth:`Section.defaults`): no value of the paper is typed here. See docs/settings.md.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .config import load_params, resolved_schema, schema_error, section_schema, validate_section
from .errors import PdartsError
from .schedules import cosine_lr, linear_lr

__all__ = [
    "Section",
    "DataSettings",
    "SpaceSettings",
    "SearchSettings",
    "Stage",
    "DeriveSettings",
    "RecipeSettings",
    "TrainingLoopSettings",
    "TrainSettings",
    "TransferDataSettings",
    "TransferSettings",
    "EvaluateSettings",
    "SweepSettings",
    "SECTIONS",
    "check_params",
    "check_params_file",
    "merge_settings",
]

FIRST_STAGE_AFTER = "space"  # the first stage prunes from the initial search space

S = TypeVar("S", bound="Section")


@functools.cache
def schema_defaults(section: str) -> dict[str, Any]:
    """The schema's default of every key of ``section`` that has one."""
    properties = section_schema(section)["properties"]
    return {key: prop["default"] for key, prop in properties.items() if "default" in prop}


@dataclass(frozen=True)
class Section:
    """A section of params.yaml as a typed, checked object."""

    section: ClassVar[str]

    @classmethod
    def from_dict(cls: type[S], values: Mapping[str, Any]) -> S:
        """Checks ``values`` (missing keys take the schema's defaults) and builds the settings.

        Raises:
            PdartsError: one line naming the first bad key (``train.epochs: ...``) and what is allowed.
        """
        values = {**schema_defaults(cls.section), **values}
        validate_section(values, cls.section)
        settings = cls(**values)
        settings.check()
        return settings

    @classmethod
    def defaults(cls: type[S], **changes: Any) -> S:
        """The schema's defaults (the paper's values), with ``changes``."""
        return cls.from_dict(changes)

    def check(self) -> None:
        """The rules across this section's keys (none unless a subclass says so)."""

    def to_dict(self) -> dict[str, Any]:
        """The settings as params.yaml writes them, in the schema's order.

        The keys are the schema's own strings, not the fields' names: pickled into a model file, a
        key that is the very object of another key in the file (a field name and a literal of the
        same text are one interned string) is written as a back-reference, and the file's bytes
        would depend on that.
        """
        return {key: getattr(self, key) for key in section_schema(self.section)["properties"]}

    def replace(self: S, **changes: Any) -> S:
        """A copy with ``changes``, checked again."""
        return type(self).from_dict({**self.to_dict(), **changes})


@dataclass(frozen=True)
class DataSettings(Section):
    """``data``: the search and train dataset."""

    section: ClassVar[str] = "data"
    dataset: str
    root: str
    download: bool
    subset: int


@dataclass(frozen=True)
class SpaceSettings(Section):
    """``search.space``: the candidate ops of the first stage."""

    section: ClassVar[str] = "search.space"
    ops: list[str]


@dataclass(frozen=True)
class TrainingLoopSettings(Section):
    """What every step that trains a network has (the search stages, train, transfer): the network's
    width, the epochs, SGD on the weights, and how the steps compute, in ``processes`` data-parallel
    processes that share ``batch_size``."""

    seed: int
    init_channels: int
    epochs: int
    batch_size: int
    momentum: float
    weight_decay: float
    grad_clip: float
    workers: int
    processes: int
    device: str
    precision: str
    channels_last: bool

    def check(self) -> None:
        if self.batch_size % self.processes:
            raise PdartsError(
                f"{self.section}.batch_size: {self.batch_size} is not a multiple of {self.section}.processes "
                f"({self.processes}); it is the total batch over the processes"
            )


@dataclass(frozen=True)
class SearchSettings(TrainingLoopSettings):
    """``search.common``: the settings every search stage shares."""

    section: ClassVar[str] = "search.common"
    warmup_epochs: int
    weight_lr: float
    weight_lr_min: float
    arch_lr: float
    arch_weight_decay: float
    # How the steps compute: none of these changes what is searched.
    compile: bool
    checkpoint_cells: bool
    cuda_graph: bool

    def check(self) -> None:
        if self.warmup_epochs > self.epochs:
            raise PdartsError(
                f"search.common.warmup_epochs: {self.warmup_epochs} is more than "
                f"search.common.epochs ({self.epochs})"
            )
        super().check()


@dataclass(frozen=True)
class Stage:
    """One entry of ``search.stages`` as the search step takes it: its name, cells and skip dropout."""

    name: str
    cells: int  # L of this stage's supernet
    skip_dropout: float  # initial skip-connect dropout rate

    @classmethod
    def checked(cls, name: str, cells: int, skip_dropout: float) -> Stage:
        """The stage the search step's flags give, checked as an entry of ``search.stages`` is."""
        values = {"name": name, "cells": cells, "skip_dropout": skip_dropout}
        entry = section_schema("search.stages")["items"]
        problem = schema_error(values, {**entry, "required": list(values)}, "search.stages[]")
        if problem:
            raise PdartsError(problem)
        return cls(**values)

    def record(self, settings: SearchSettings) -> dict[str, Any]:
        """Everything that decides the stage's result, as its alphas file records it."""
        return {
            "stage": self.name,
            "cells": self.cells,
            "skip_dropout": self.skip_dropout,
            **settings.to_dict(),
        }


@dataclass(frozen=True)
class DeriveSettings(Section):
    """``derive``: the skip-connect cap M of the normal cell."""

    section: ClassVar[str] = "derive"
    max_skip: int


@dataclass(frozen=True)
class RecipeSettings(TrainingLoopSettings):
    """What the CIFAR and the ImageNet recipe add: the depth, the learning rate and its schedule, the
    auxiliary loss; each recipe gives the keys only the other has as constants."""

    family: ClassVar[str]  # the network trained: "cifar" or "imagenet"
    cells: int
    lr: float
    auxiliary_weight: float

    def learning_rate(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (0-based)."""
        raise NotImplementedError


@dataclass(frozen=True)
class TrainSettings(RecipeSettings):
    """``train``: the CIFAR recipe (cosine learning rate, drop-path ramp, cutout)."""

    section: ClassVar[str] = "train"
    family: ClassVar[str] = "cifar"
    label_smoothing: ClassVar[float] = 0.0
    image_size: ClassVar[int | None] = None  # the dataset's own
    lr_min: float
    drop_path: float
    cutout: int

    def learning_rate(self, epoch: int) -> float:
        return cosine_lr(epoch, self.lr, self.epochs, self.lr_min)


@dataclass(frozen=True)
class TransferDataSettings(Section):
    """``transfer_data``: the ImageFolder tree the transfer step trains on."""

    section: ClassVar[str] = "transfer_data"
    dataset: str
    root: str
    verify_images: bool

    def check(self) -> None:
        if self.dataset == "imagefolder" and not self.root:
            raise PdartsError(
                "transfer_data.root: give the ImageFolder root (with train/ and val/) for dataset imagefolder"
            )


@dataclass(frozen=True)
class TransferSettings(RecipeSettings):
    """``transfer``: the ImageNet (mobile) recipe (linear decay after a warm-up, the rate scaled by
    the batch size, label smoothing)."""

    section: ClassVar[str] = "transfer"
    family: ClassVar[str] = "imagenet"
    drop_path: ClassVar[float] = 0.0
    cutout: ClassVar[int] = 0
    image_size: int
    reference_batch_size: int
    warmup_epochs: int
    label_smoothing: float

    def check(self) -> None:
        if self.warmup_epochs >= self.epochs:
            raise PdartsError(
                f"transfer.warmup_epochs: {self.warmup_epochs} must be less than transfer.epochs "
                f"({self.epochs})"
            )
        super().check()

    def learning_rate(self, epoch: int) -> float:
        # Linear scaling rule: lr is given for reference_batch_size (the paper: 0.1 at 256).
        base_lr = self.lr * self.batch_size / self.reference_batch_size
        return linear_lr(epoch, base_lr, self.epochs, self.warmup_epochs)


@dataclass(frozen=True)
class EvaluateSettings(Section):
    """``evaluate``: how test metrics and latency are measured."""

    section: ClassVar[str] = "evaluate"
    batch_size: int
    precision: str
    channels_last: bool
    latency_batch_sizes: list[int]
    latency_repeats: int
    workers: int
    device: str


@dataclass(frozen=True)
class SweepSettings(Section):
    """``sweep``: the seeds and methods of the seeds sweep (docs/workflow.md#the-seeds-sweep)."""

    section: ClassVar[str] = "sweep"
    seeds: list[int]
    methods: list[str]
    darts_cells: int
    transfer: list[str]

    def check(self) -> None:
        extra = [method for method in self.transfer if method not in self.methods]
        if extra:
            raise PdartsError(f"sweep.transfer: {extra} not in sweep.methods {self.methods}; add them there")


SECTIONS: dict[str, type[Section]] = {
    cls.section: cls
    for cls in (
        DataSettings,
        SpaceSettings,
        SearchSettings,
        DeriveSettings,
        TrainSettings,
        TransferDataSettings,
        TransferSettings,
        EvaluateSettings,
        SweepSettings,
    )
}


def check_stages(params: Mapping[str, Any]) -> None:
    """The rules of ``search.stages``: unique names, each after the one before, ops never growing."""
    stages = params["search"]["stages"]
    names = [stage["name"] for stage in stages]
    if FIRST_STAGE_AFTER in names or len(set(names)) != len(names):
        raise PdartsError(f"search.stages: names must be unique and not {FIRST_STAGE_AFTER!r}, got {names}")
    previous_name, previous_ops = FIRST_STAGE_AFTER, len(params["search"]["space"]["ops"])
    for index, stage in enumerate(stages):
        key = f"search.stages[{index}]"
        if stage["after"] != previous_name:
            raise PdartsError(
                f"{key}.after: must be {previous_name!r} (the stage before it), got {stage['after']!r}"
            )
        if stage["ops"] > previous_ops:
            source = "search.space.ops" if index == 0 else f"search.stages[{index - 1}].ops"
            raise PdartsError(
                f"{key}.ops: {stage['ops']} is more than the {previous_ops} ops of {source}; "
                "ops searched must not grow across stages"
            )
        previous_name, previous_ops = stage["name"], stage["ops"]


def section_values(params: Mapping[str, Any], section: str) -> Mapping[str, Any]:
    """The values of a dotted section (``"search.common"``) of a settings mapping."""
    node = params
    for part in section.split("."):
        node = node[part]
    return node


def check_params(params: Any) -> None:
    """Checks a whole settings mapping: the schema, the stages, then every section's ``check()``.

    Raises:
        PdartsError: one line naming the first bad key and what is allowed.
    """
    problem = schema_error(params, resolved_schema(), "")
    if problem:
        raise PdartsError(problem)
    check_stages(params)
    for section, cls in SECTIONS.items():
        cls.from_dict(section_values(params, section))


def check_params_file(path) -> None:
    """Reads and checks a settings file; the error names the file."""
    params = load_params(path)  # its errors name the file already
    try:
        check_params(params)
    except PdartsError as exc:
        raise PdartsError(f"{path}: {exc}") from None


def merge_settings(paths: Sequence[str | Path]) -> dict[str, Any]:
    """The settings files merged in order, later ones over earlier ones key by key (as Snakemake
    merges ``--configfile`` over ``params.yaml``), then checked."""
    merged: dict[str, Any] = {}
    for path in paths:
        _merge(merged, load_params(path))
    try:
        check_params(merged)
    except PdartsError as exc:
        raise PdartsError(f"{', '.join(map(str, paths))}: {exc}") from None
    return merged


def _merge(into: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
