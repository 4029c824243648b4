"""The benchmark's configurations and modes: what ``pdarts bench`` can measure, and in which ways.

A configuration is a search step of a supernet or a training step of a network, at the paper's
sizes (and the default run's). A mode is ``reference`` (the straightforward implementation of the
step, ``reference.py``: the baseline every ratio is measured against), ``default`` (the library with
the schema's default settings, what a search or training runs with), ``fp32`` (the library, eager,
contiguous fp32), one optimisation alone (``bf16``, ``fp16``, ``channels_last``, ``compile``,
``checkpoint_cells``, ``cuda_graph``), several joined with ``+``, or ``all`` of them (but ``fp16`` and
``cuda_graph``, which need a CUDA device).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pdarts.errors import PdartsError
from pdarts.search_space import PRIMITIVES

__all__ = [
    "ALL",
    "SPECIAL",
    "SEARCH_ONLY",
    "CONFIGS",
    "DEFAULT_MODES",
    "LEVERS",
    "BenchConfig",
    "applies",
    "check_options",
    "parse_mode",
    "step_settings",
]


@dataclass(frozen=True)
class BenchConfig:
    """One measured configuration: a search step of a supernet or a training step of a network."""

    name: str
    kind: str  # "search" or "train"
    description: str
    batch_size: int
    num_cells: int
    init_channels: int
    image_size: int = 32
    in_channels: int = 3
    num_classes: int = 10
    ops: tuple[str, ...] = PRIMITIVES  # search: the candidate ops of every edge
    skip_dropout: float = 0.0  # search: the stage's skip-connect dropout rate
    network: str = "cifar"  # train: cifar or imagenet


_STAGE2_OPS = ("none", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3")
_STAGE3_OPS = ("skip_connect", "sep_conv_3x3", "dil_conv_3x3")

CONFIGS: dict[str, BenchConfig] = {
    config.name: config
    for config in (
        BenchConfig(
            name="smoke",
            kind="search",
            description="tiny search step: 2 cells, C=4, 4 ops, 8x8 (seconds; for CI)",
            batch_size=8,
            num_cells=2,
            init_channels=4,
            image_size=8,
            ops=("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"),
            skip_dropout=0.3,
        ),
        BenchConfig(
            name="smoke-train",
            kind="train",
            description="tiny training step: CIFAR network, 3 cells, C=4, 8x8 (seconds; for CI)",
            batch_size=8,
            num_cells=3,
            init_channels=4,
            image_size=8,
        ),
        BenchConfig(
            name="stage1-b32",
            kind="search",
            description="search stage 1: 5 cells, 8 ops per edge, C=16",
            batch_size=32,
            num_cells=5,
            init_channels=16,
        ),
        BenchConfig(
            name="stage1-b96",
            kind="search",
            description="search stage 1: 5 cells, 8 ops per edge, C=16",
            batch_size=96,
            num_cells=5,
            init_channels=16,
        ),
        BenchConfig(
            name="stage2-b32",
            kind="search",
            description="search stage 2: 11 cells, ops none/skip/sep3/sep5/dil3, C=16",
            batch_size=32,
            num_cells=11,
            init_channels=16,
            ops=_STAGE2_OPS,
            skip_dropout=0.4,
        ),
        BenchConfig(
            name="stage3-b32",
            kind="search",
            description="search stage 3: 17 cells, ops skip/sep3/dil3, C=16",
            batch_size=32,
            num_cells=17,
            init_channels=16,
            ops=_STAGE3_OPS,
            skip_dropout=0.7,
        ),
        BenchConfig(
            name="cifar-train-b32",
            kind="train",
            description="CIFAR network training step: PDARTS genotype, 20 cells, C=36",
            batch_size=32,
            num_cells=20,
            init_channels=36,
        ),
        BenchConfig(
            name="digits-stage1-b64",
            kind="search",
            description="the default run's search stage 1 (params.yaml): 5 cells, 8 ops, C=8, 8x8 digits",
            batch_size=64,
            num_cells=5,
            init_channels=8,
            image_size=8,
            in_channels=1,
        ),
        BenchConfig(
            name="digits-train-b64",
            kind="train",
            description="the default run's training step (params.yaml): 8 cells, C=16, 8x8 digits",
            batch_size=64,
            num_cells=8,
            init_channels=16,
            image_size=8,
            in_channels=1,
        ),
        BenchConfig(
            name="imagenet-train-b8",
            kind="train",
            description="ImageNet network training step: PDARTS genotype, 14 cells, C=48, 224x224",
            batch_size=8,
            num_cells=14,
            init_channels=48,
            image_size=224,
            num_classes=1000,
            network="imagenet",
        ),
    )
}


def _at_paper_batch(config: BenchConfig) -> BenchConfig:
    """``config`` at the paper's search batch of 96 (``stageN-b96``)."""
    name = config.name.replace("-b32", "-b96")
    return dataclasses.replace(
        config, name=name, batch_size=96, description=f"{config.description}, batch 96"
    )


CONFIGS.update({c.name: c for c in (_at_paper_batch(CONFIGS[name]) for name in ("stage2-b32", "stage3-b32"))})

#: The optimisations, each a setting of the search stage (``search.common``); the training steps
#: have no per-cell checkpointing, and ``compile`` compiles their whole network.
LEVERS = ("bf16", "fp16", "channels_last", "compile", "checkpoint_cells", "cuda_graph")
SEARCH_ONLY = ("checkpoint_cells", "cuda_graph")  # settings of search.common: the training steps skip them
ALL = ("bf16", "channels_last", "compile", "checkpoint_cells")  # what mode ``all`` joins
SPECIAL = ("reference", "default")  # modes that are not sets of levers
DEFAULT_MODES = ("reference", "default")


def parse_mode(mode: str) -> tuple[str, ...]:
    """The levers of a mode: ``fp32`` none, ``all`` every one (in bf16), else ``lever+lever+...``;
    ``reference`` and ``default`` have none of their own (see ``step_settings``)."""
    if mode in ("fp32", *SPECIAL):
        return ()
    if mode == "all":
        return ALL
    levers = tuple(mode.split("+"))
    if any(lever not in LEVERS for lever in levers):
        raise PdartsError(
            f"unknown mode {mode!r}: use fp32, all, or levers joined by '+' from {', '.join(LEVERS)}"
        )
    if {"bf16", "fp16"} <= set(levers):
        raise PdartsError(f"mode {mode!r} asks for both bf16 and fp16")
    return levers


def applies(config: BenchConfig, mode: str) -> bool:
    """Whether a mode means something for a configuration (``SEARCH_ONLY`` levers are search settings)."""
    levers = parse_mode(mode)
    return config.kind == "search" or mode == "all" or not set(SEARCH_ONLY) & set(levers)


def step_settings(config: BenchConfig, mode: str) -> dict[str, Any]:
    """The compute settings of a mode (``search.common`` in params.yaml) for one configuration:
    ``default`` the schema's defaults of the step's section, ``reference`` contiguous fp32."""
    if mode == "default":
        from pdarts.settings import SearchSettings, TrainSettings

        section = SearchSettings if config.kind == "search" else TrainSettings
        defaults = section.defaults()
        return {
            "precision": defaults.precision,
            "channels_last": defaults.channels_last,
            "compile": getattr(defaults, "compile", False),
            "checkpoint_cells": getattr(defaults, "checkpoint_cells", False),
            "cuda_graph": getattr(defaults, "cuda_graph", False),
        }
    levers = parse_mode(mode)
    return {
        "precision": next((lever for lever in levers if lever in ("bf16", "fp16")), "fp32"),
        "channels_last": "channels_last" in levers,
        "compile": "compile" in levers,
        "checkpoint_cells": "checkpoint_cells" in levers and config.kind == "search",
        "cuda_graph": "cuda_graph" in levers and config.kind == "search",
    }


def check_options(configs: Sequence[str], modes: Sequence[str], device: str) -> None:
    """Refuses unknown configurations and modes, and fp16 off CUDA, before anything runs."""
    for name in configs:
        if name not in CONFIGS:
            raise PdartsError(f"unknown configuration {name!r}; known: {', '.join(CONFIGS)}")
    for mode in modes:
        if "fp16" in parse_mode(mode) and not device.startswith("cuda"):
            raise PdartsError(f"mode {mode!r}: fp16 needs a CUDA device (use bf16 on the CPU)")
        if "cuda_graph" in parse_mode(mode) and not device.startswith("cuda"):
            raise PdartsError(f"mode {mode!r}: cuda_graph needs a CUDA device (--device cuda)")
