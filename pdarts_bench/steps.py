"""One search step or one training step of a configuration, built from the library's public API.

A search step is the real ``search_step`` (an architecture update, then a weight update) on a
supernet built by ``build_search``, as a search stage builds it; a training step is the real
``train_epoch`` on one batch (auxiliary loss, clipping, SGD). Inputs are random tensors already on
the device: the data path is not timed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .configs import BenchConfig

__all__ = [
    "build_step",
    "make_reference_search_step",
    "make_reference_train_step",
    "make_search_step",
    "make_train_step",
    "random_batch",
    "search_parts",
    "search_settings",
]

Step = tuple[Callable[[], Any], dict[str, Any]]  # the step, and the settings in effect


def random_batch(config: BenchConfig, device, seed: int):
    """A batch of random images and labels of the configuration's shape, on ``device``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    shape = (config.batch_size, config.in_channels, config.image_size, config.image_size)
    images = torch.randn(shape, generator=generator)
    target = torch.randint(0, config.num_classes, (config.batch_size,), generator=generator)
    return images.to(device), target.to(device)


def search_settings(config: BenchConfig, settings: dict[str, Any]):
    """The search settings and the stage of a configuration (the paper's values otherwise; fp32 and
    contiguous unless the mode says otherwise)."""
    from pdarts.settings import SearchSettings, Stage

    mode = {"precision": "fp32", "channels_last": False, **settings}
    common = SearchSettings.defaults(init_channels=config.init_channels, **mode)
    return common, Stage(config.name, config.num_cells, config.skip_dropout)


def search_parts(config: BenchConfig, common, stage, device, example=None):
    """The supernet of a configuration (seeded) with its optimizers, training at its skip dropout."""
    import torch

    from pdarts.search.stage import build_search
    from pdarts.search_space import full_candidates

    torch.manual_seed(0)
    parts = build_search(
        full_candidates(config.ops),
        common,
        stage,
        config.num_classes,
        config.in_channels,
        device,
        example=example,
    )
    parts.model.set_skip_dropout(config.skip_dropout)
    parts.model.train()
    return parts


def make_search_step(config: BenchConfig, settings: dict[str, Any], device) -> Step:
    """One step of a search stage: an architecture update, then a weight update."""
    from pdarts.search.graphs import WARMUP_STEPS, GraphedSteps
    from pdarts.search.stage import epoch_step

    common, stage = search_settings(config, settings)
    weight_batch, arch_batch = random_batch(config, device, 1), random_batch(config, device, 2)
    parts = search_parts(config, common, stage, device, example=weight_batch[0])
    # The stage's own step of an epoch: eager, or (cuda_graph) replayed from a graph, which is
    # recorded here, after its eager warm-up steps, so that every timed step is a replay.
    step_of_epoch = epoch_step(parts, parts.precision.grad_scaler(), common, device, warmup=False)
    graphed = isinstance(step_of_epoch, GraphedSteps)
    for _ in range(WARMUP_STEPS + 1 if graphed else 0):
        step_of_epoch(weight_batch, arch_batch)

    def step():
        return step_of_epoch(weight_batch, arch_batch)

    effective = {
        "precision": parts.precision.name,
        "channels_last": parts.precision.channels_last,
        "compile": parts.model.cells_compiled,
        "cuda_graph": graphed,
    }
    return step, effective


def _network(config: BenchConfig):
    """The evaluation network of a training configuration, with the PDARTS genotype."""
    from pdarts.genotype import GENOTYPES
    from pdarts.networks import CifarNetwork, ImageNetNetwork

    genotype = GENOTYPES["PDARTS"]
    if config.network == "imagenet":
        return ImageNetNetwork(genotype, config.num_cells, config.init_channels, config.num_classes)
    return CifarNetwork(
        genotype, config.num_cells, config.init_channels, config.num_classes, config.in_channels
    )


def make_train_step(config: BenchConfig, settings: dict[str, Any], device) -> Step:
    """One training step: ``train_epoch`` on one batch (auxiliary loss, clipping, SGD)."""
    import torch

    from pdarts.precision import resolve_precision
    from pdarts.settings import TrainSettings
    from pdarts.training import make_sgd, train_epoch

    recipe = TrainSettings.defaults()  # the paper's CIFAR recipe
    precision = resolve_precision(settings["precision"], device, settings["channels_last"])
    torch.manual_seed(0)
    network = precision.prepare(_network(config).to(device))
    optimizer = make_sgd(network.parameters(), device, recipe.lr, recipe.momentum, recipe.weight_decay)
    model = torch.compile(network) if settings["compile"] else network
    batch = [random_batch(config, device, 1)]
    scaler = precision.grad_scaler()

    def step():
        return train_epoch(
            model, batch, optimizer, device, recipe.auxiliary_weight, recipe.grad_clip, precision=precision,
            scaler=scaler,
        )  # fmt: skip

    return step, {"precision": precision.name, "channels_last": precision.channels_last}


def make_reference_search_step(config: BenchConfig, device) -> Step:
    """The straightforward search step (``reference.py``) of the same supernet, batches and settings."""
    import torch

    from pdarts.search.stage import ARCH_BETAS
    from pdarts.search_space import full_candidates

    from .reference import ReferenceSupernet, reference_search_step

    common, stage = search_settings(config, {})
    weight_batch, arch_batch = random_batch(config, device, 1), random_batch(config, device, 2)
    torch.manual_seed(0)
    model = ReferenceSupernet(
        full_candidates(config.ops),
        stage.cells,
        common.init_channels,
        config.num_classes,
        config.in_channels,
        dropout=stage.skip_dropout > 0,
    ).to(device)
    model.set_skip_dropout(stage.skip_dropout)
    model.train()
    alphas = list(model.alphas.parameters())
    weights = [p for name, p in model.named_parameters() if not name.startswith("alphas.")]
    weight_optimizer = torch.optim.SGD(
        weights, lr=common.weight_lr, momentum=common.momentum, weight_decay=common.weight_decay
    )
    alpha_optimizer = torch.optim.Adam(
        alphas, lr=common.arch_lr, betas=ARCH_BETAS, weight_decay=common.arch_weight_decay
    )

    def step():
        return reference_search_step(
            model, weight_batch, arch_batch, weight_optimizer, alpha_optimizer, common.grad_clip
        )

    return step, {"precision": "fp32", "channels_last": False, "compile": False}


def make_reference_train_step(config: BenchConfig, device) -> Step:
    """The straightforward training step (``reference.py``) of the same network and recipe."""
    import torch

    from pdarts.settings import TrainSettings

    from .reference import reference_train_step, to_reference

    recipe = TrainSettings.defaults()
    torch.manual_seed(0)
    network = to_reference(_network(config)).to(device)
    network.train()
    optimizer = torch.optim.SGD(
        network.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    batch = random_batch(config, device, 1)

    def step():
        return reference_train_step(network, batch, optimizer, recipe.auxiliary_weight, recipe.grad_clip)

    return step, {"precision": "fp32", "channels_last": False}


def build_step(config: BenchConfig, mode: str, settings: dict[str, Any], device) -> Step:
    """The step of a configuration in a mode, by its kind, and the settings in effect."""
    if mode == "reference":
        build = make_reference_search_step if config.kind == "search" else make_reference_train_step
        return build(config, device)
    build = make_search_step if config.kind == "search" else make_train_step
    return build(config, settings, device)
