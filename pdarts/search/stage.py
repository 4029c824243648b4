"""One progressive search stage (docs/algorithm.md#progressive-search-stages).

A stage builds a fresh supernet with fresh alphas over the candidate lists it is given, trains the
weights alone for ``warmup_epochs``, then alternates each step: a first-order architecture update on
a batch of the architecture split, then a weight update on a batch of the weight split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import Context, all_reduce_sum, average_gradients
from ..errors import first_line
from ..precision import Precision, resolve_precision
from ..progress import Progress, batch_count, progress
from ..schedules import cosine_lr, skip_dropout_rate
from ..search_space import Candidates
from ..settings import SearchSettings, Stage
from ..state import capture, restore
from ..training import FP32, LossGuard, make_sgd, multi_tensor
from . import graphs
from .model import SearchNetwork

__all__ = [
    "ARCH_BETAS",
    "STATE_KEYS",
    "SearchParts",
    "SearchSettings",
    "Stage",
    "StageResult",
    "build_search",
    "compile_cells",
    "epoch_step",
    "graph_refusal",
    "run_search_stage",
    "search_loaders",
    "search_stage",
    "search_step",
    "stage_fingerprint",
]

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]
Batches = Iterable[Batch]


# Adam's betas of the alphas: DARTS's (and P-DARTS's) choice, not a setting of the paper's tables.
ARCH_BETAS = (0.5, 0.999)

#: What a stage's saved state holds besides the random streams and the history (its checkpoint's keys).
STATE_KEYS = ("model", "weight_optimizer", "alpha_optimizer")


def stage_fingerprint(
    stage: Stage, settings: SearchSettings, candidates: Candidates, manifest: dict[str, Any]
) -> str:
    """The fingerprint of everything that decides a stage's result: its record, the candidates and
    the prepared data (a checkpoint resumes only for the same one)."""
    from ..checkpoints import fingerprint

    return fingerprint(stage.record(settings), candidates, manifest["sha256"], manifest.get("subset"))


class SearchParts(NamedTuple):
    """A stage's supernet with its two optimizers and the precision its steps run in."""

    model: SearchNetwork
    weight_optimizer: torch.optim.SGD
    alpha_optimizer: torch.optim.Adam
    precision: Precision


@dataclass
class StageResult:
    """What a stage leaves behind: the alphas (``pdarts derive`` format) and per-epoch metrics."""

    alphas: dict[str, list[dict[str, Any]]]
    history: list[dict[str, Any]] = field(default_factory=list)
    model: SearchNetwork | None = None

    def metrics(self) -> dict[str, Any]:
        """The last epoch's losses and accuracies and the supernet's number of weights."""
        last = self.history[-1]
        metrics = {key: last[key] for key in ("train_acc", "train_loss", "arch_acc", "arch_loss")}
        metrics["weights"] = sum(p.numel() for p in self.model.weight_parameters())
        return metrics


@contextmanager
def _frozen(params: list[nn.Parameter]) -> Iterator[None]:
    """The parameters whose gradients an update does not need, as constants of its forward pass.

    First order: each update needs the gradients of its own parameters only. Frozen, the others'
    gradients are not computed and the activations only they would use are not kept (measured on
    the stage-1 supernet: 18% less saved memory in the weight step, 24% in the architecture step).
    """
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in params:
            param.requires_grad_(True)


def _trained_and_frozen(model: SearchNetwork, alphas: bool) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """The parameters an update changes (the alphas, or the weights) and the others."""
    weights, arch = model.weight_parameters(), model.arch_parameters()
    return (arch, weights) if alphas else (weights, arch)


def _update(
    model: SearchNetwork,
    batch: tuple[torch.Tensor, torch.Tensor],
    alphas: bool,
    optimizer: torch.optim.Optimizer,
    grad_clip: float,
    precision: Precision,
    scaler: torch.amp.GradScaler,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One update of the alphas (or the weights) on ``batch``; returns the loss sum, hits and count."""
    params, frozen = _trained_and_frozen(model, alphas)
    images, target = batch
    optimizer.zero_grad(set_to_none=True)
    with _frozen(frozen):  # also in the backward pass, which may recompute checkpointed cells
        with precision.autocast():
            logits = model(precision.inputs(images))
            loss = F.cross_entropy(logits.float(), target)
        scaler.scale(loss).backward(inputs=params)
    average_gradients(params)  # over data-parallel processes, if any
    scaler.unscale_(optimizer)  # clip the true gradients (a no-op without fp16 scaling)
    nn.utils.clip_grad_norm_(params, grad_clip, foreach=multi_tensor(params[0].device))
    scaler.step(optimizer)
    return loss.detach() * target.numel(), (logits.argmax(1) == target).sum(), target.numel()


def search_step(
    model: SearchNetwork,
    weight_batch: tuple[torch.Tensor, torch.Tensor],
    arch_batch: tuple[torch.Tensor, torch.Tensor] | None,
    weight_optimizer: torch.optim.Optimizer,
    alpha_optimizer: torch.optim.Optimizer | None,
    grad_clip: float,
    precision: Precision = FP32,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, Any]:
    """One step: the architecture update (if ``arch_batch``), then the weight update.

    Both forward passes run under ``precision`` (autocast dtype, memory layout of the inputs; the
    model must have been prepared with ``precision.prepare``); ``scaler`` scales fp16 losses.
    Returns the step's detached losses and correct-prediction counts.
    """
    if scaler is None:
        scaler = precision.grad_scaler()
    stats: dict[str, Any] = {}
    if arch_batch is not None and alpha_optimizer is not None:
        stats["arch"] = _update(model, arch_batch, True, alpha_optimizer, grad_clip, precision, scaler)
    stats["train"] = _update(model, weight_batch, False, weight_optimizer, grad_clip, precision, scaler)
    scaler.update()  # once per step, after both optimizers (torch.amp's multi-optimizer recipe)
    return stats


class _Meter:
    """Sums of loss, correct predictions and samples, kept on the device (no per-step sync)."""

    def __init__(self) -> None:
        self.loss = self.correct = 0
        self.count = 0

    def add(self, loss_sum: torch.Tensor, correct: torch.Tensor, count: int) -> None:
        self.loss = self.loss + loss_sum
        self.correct = self.correct + correct
        self.count += count

    def running_loss(self) -> torch.Tensor | None:
        """Mean loss so far in this process (a device value: reading it syncs), for a progress bar."""
        return self.loss / self.count if self.count else None

    def result(self) -> tuple[float | None, float | None]:
        """Mean loss and accuracy, over every data-parallel process."""
        loss, correct, count = all_reduce_sum([self.loss, self.correct, self.count], Context.current())
        if not count:
            return None, None
        return loss / count, correct / count


def _to_device(batch: tuple[torch.Tensor, torch.Tensor], device: torch.device):
    return tuple(t.to(device, non_blocking=True) for t in batch)


def compile_cells(model: SearchNetwork, example: torch.Tensor | None, precision: Precision) -> bool:
    """Compiles the supernet's cells and tries them at once on ``example``; eager if that fails.

    The trial compiles what the steps will run (the forward and backward passes of both updates),
    so that a compiler failure shows here rather than mid-stage, and leaves no trace: the random
    streams, BatchNorm statistics and gradients are as before. Returns whether the cells compiled.
    """
    model.compile_cells()
    if example is None:
        return True
    buffers = [buffer.clone() for buffer in model.buffers()]
    devices = [example.device] if example.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            for alphas in (True, False):
                params, frozen = _trained_and_frozen(model, alphas)
                with _frozen(frozen):
                    with precision.autocast():
                        loss = model(precision.inputs(example)).float().sum()
                    loss.backward(inputs=params)
    except Exception as exc:  # noqa: BLE001 -- whatever the compiler raises, the search can run eagerly
        log.warning("torch.compile of the search cells failed (%s); running them eagerly", first_line(exc))
        model.compile_cells(False)
        return False
    finally:
        with torch.no_grad():
            for buffer, saved in zip(model.buffers(), buffers):
                buffer.copy_(saved)
        for param in model.parameters():
            param.grad = None
    return True


def _example_images(batches: Batches) -> torch.Tensor | None:
    """Zeros shaped like a batch of ``batches``' images, read without moving any random generator."""
    if isinstance(batches, Sequence):
        return torch.zeros_like(batches[0][0]) if batches else None
    dataset, batch_size = getattr(batches, "dataset", None), getattr(batches, "batch_size", None)
    if dataset is None or not batch_size:
        return None
    with torch.random.fork_rng(devices=[]):  # the dataset's transform may draw random numbers
        image = dataset[0][0]
    return torch.zeros((batch_size, *image.shape), dtype=image.dtype)


def search_loaders(manifest: dict[str, Any], settings: SearchSettings, context: Context | None = None):
    """The loaders of the two fixed halves of a prepared training set (weights, architecture), this
    process's share of each, and the dataset's description. Seeds every generator first."""
    from ..data import ArrayDataset, dataset_info, make_loader, search_halves, train_transform
    from ..manifest import load_split
    from ..state import make_reproducible

    context = context or Context()
    make_reproducible(settings.seed)
    info = dataset_info(manifest["dataset"])
    images, labels = load_split(manifest, train=True)
    transform = train_transform(info)
    loaders = [
        make_loader(
            ArrayDataset(images[idx], labels[idx], transform),
            settings.batch_size // context.world_size,
            shuffle=True,
            seed=settings.seed + offset,
            num_workers=settings.workers,
            pin_memory=context.device.type == "cuda",
            shard=(context.rank, context.world_size),  # in one process: all of it
        )
        for offset, idx in enumerate(search_halves(len(labels)))
    ]
    log.info(
        "%d + %d images, batches of %d on %s x %d",
        len(loaders[0].dataset),
        len(loaders[1].dataset),
        settings.batch_size,
        context.device,
        context.world_size,
    )
    return loaders[0], loaders[1], info


def build_search(
    candidates: Candidates,
    settings: SearchSettings,
    stage: Stage,
    num_classes: int,
    in_channels: int,
    device: torch.device,
    example: torch.Tensor | None = None,
) -> SearchParts:
    """A fresh supernet of ``stage`` over ``candidates`` on ``device``, its optimizers and its precision.

    ``example`` is a batch of images, or its shape's zeros. Its size, in the first cells' maps,
    decides ``precision: auto`` on the CPU (``resolve_precision``). With ``settings.compile``, the cells
    are compiled and tried at once on it: if compilation fails there, a warning, and the cells stay
    eager.
    """
    first_maps = None if example is None else len(example) * settings.init_channels * example[0, 0].numel()
    precision = resolve_precision(settings.precision, device, settings.channels_last, first_maps)
    ops = max(len(ops) for ops in candidates["normal"])
    log.info(
        "stage %s: %d cells, %d ops per edge, skip dropout %.2f, %s%s",
        stage.name,
        stage.cells,
        ops,
        stage.skip_dropout,
        precision.name,
        " + channels_last" if precision.channels_last else "",
    )
    model = SearchNetwork(
        candidates,
        stage.cells,
        settings.init_channels,
        num_classes,
        in_channels=in_channels,
        skip_dropout=stage.skip_dropout > 0,
        checkpoint_cells=settings.checkpoint_cells,
    )
    model = precision.prepare(model.to(device))
    if settings.compile:
        compile_cells(model, None if example is None else example.to(device), precision)
    weight_optimizer = make_sgd(
        model.weight_parameters(), device, settings.weight_lr, settings.momentum, settings.weight_decay
    )
    alpha_optimizer = torch.optim.Adam(
        model.arch_parameters(),
        lr=settings.arch_lr,
        betas=ARCH_BETAS,
        weight_decay=settings.arch_weight_decay,
        capturable=settings.cuda_graph and device.type == "cuda",  # its step count on the device: recordable
    )
    return SearchParts(model, weight_optimizer, alpha_optimizer, precision)


def graph_refusal(settings: SearchSettings, device: torch.device, precision: Precision) -> str | None:
    """Why the steps cannot be replayed from CUDA graphs (``search.common.cuda_graph``); None if they can."""
    if not settings.cuda_graph:
        return "search.common.cuda_graph is off"
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, not {device.type}"
    if precision.dtype == torch.float16:
        return "fp16's gradient scaler reads its overflow flag on the host every step (use bf16 or fp32)"
    if settings.compile or settings.checkpoint_cells:
        return "compile and checkpoint_cells are not recorded in a graph (turn them off)"
    if Context.current().world_size > 1:
        return "the gradients' all-reduce over processes is not recorded in a graph (one process only)"
    return None


def epoch_step(
    parts: SearchParts,
    scaler: torch.amp.GradScaler,
    settings: SearchSettings,
    device: torch.device,
    warmup: bool,
) -> Callable[[Batch, Batch | None], dict[str, Any]]:
    """The step of one epoch, on batches from the loaders: eager, or replayed from a CUDA graph."""
    alpha_optimizer = None if warmup else parts.alpha_optimizer

    def step(weight_batch, arch_batch):
        return search_step(
            parts.model, weight_batch, arch_batch, parts.weight_optimizer, alpha_optimizer,
            settings.grad_clip, parts.precision, scaler,
        )  # fmt: skip

    if graph_refusal(settings, device, parts.precision) is None:
        return graphs.GraphedSteps(step, device, graphs.CudaGraph)
    return lambda weight, arch: step(
        _to_device(weight, device), None if arch is None else _to_device(arch, device)
    )


def _search_epoch(
    epoch: int,
    parts: SearchParts,
    scaler: torch.amp.GradScaler,
    weight_batches: Batches,
    arch_batches: Batches,
    settings: SearchSettings,
    device: torch.device,
    bar: Progress,
) -> dict[str, Any]:
    """One epoch of a stage whose learning rate and skip dropout are set: its losses and accuracies
    over every process (the architecture's are None in a warm-up epoch). ``bar`` counts its steps."""
    warmup = epoch < settings.warmup_epochs
    meters = {"train": _Meter(), "arch": _Meter()}
    guard = LossGuard(
        "the search loss",
        epoch,
        "Lower search.common.weight_lr / arch_lr, or use search.common.precision: fp32",
        device,
    )
    arch_iter = None if warmup else iter(arch_batches)
    step = epoch_step(parts, scaler, settings, device, warmup)
    bar.epoch(epoch)
    for weight_batch in bar.batches(weight_batches, meters["train"].running_loss):
        arch_batch = None
        if arch_iter is not None:
            arch_batch = next(arch_iter, None)
            if arch_batch is None:  # the architecture split ran out: restart it
                arch_iter = iter(arch_batches)
                arch_batch = next(arch_iter)
        stats = step(weight_batch, arch_batch)
        for split, values in stats.items():  # used at once: a replayed step's are overwritten by the next
            meters[split].add(*values)
        guard(*(values[0] for values in stats.values()))
    guard.check()
    train_loss, train_acc = meters["train"].result()
    arch_loss, arch_acc = meters["arch"].result()
    return {
        "train_loss": train_loss,
        "train_acc": train_acc,
        "arch_loss": arch_loss,
        "arch_acc": arch_acc,
    }


def _start_epoch(epoch: int, parts: SearchParts, settings: SearchSettings, stage: Stage) -> dict[str, Any]:
    """Sets the epoch's learning rate and skip-connect dropout rate; returns them with the epoch."""
    lr = cosine_lr(epoch, settings.weight_lr, settings.epochs, settings.weight_lr_min)
    for group in parts.weight_optimizer.param_groups:
        group["lr"] = lr
    rate = skip_dropout_rate(epoch, stage.skip_dropout, settings.epochs, settings.warmup_epochs)
    parts.model.set_skip_dropout(rate)
    parts.model.train()
    return {"epoch": epoch, "warmup": epoch < settings.warmup_epochs, "lr": lr, "skip_dropout": rate}


def _log_epoch(metrics: dict[str, Any], epochs: int) -> None:
    nan = float("nan")
    log.info(
        "epoch %d/%d%s lr %.5f skip-dropout %.3f train loss %.4f acc %.4f (%.1f s)",
        metrics["epoch"] + 1,
        epochs,
        " (warm-up)" if metrics["warmup"] else "",
        metrics["lr"],
        metrics["skip_dropout"],
        metrics["train_loss"] if metrics["train_loss"] is not None else nan,
        metrics["train_acc"] if metrics["train_acc"] is not None else nan,
        metrics["seconds"],
    )


def _progress(stage: Stage, settings: SearchSettings, weight_batches: Batches, done_epochs: int):
    """The stage's progress bar: its weight steps over all its epochs, in the first process."""
    steps = batch_count(weight_batches)
    return progress(f"stage {stage.name}", settings.epochs, steps, done_epochs, Context.current().is_main)


def run_search_stage(
    candidates: Candidates,
    settings: SearchSettings,
    stage: Stage,
    weight_batches: Batches,
    arch_batches: Batches,
    num_classes: int,
    in_channels: int,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    resume: dict[str, Any] | None = None,
    save_state: Callable[[dict[str, Any]], None] | None = None,
) -> StageResult:
    """Runs one search stage from a fresh network and fresh alphas (seeded by ``settings.seed``).

    Args:
        candidates: op names per edge and cell type searched in this stage.
        settings: the settings every stage shares (``search.common``).
        stage: this stage's cells and skip-connect dropout rate.
        weight_batches: re-iterable batches of the weight split (e.g. a DataLoader).
        arch_batches: re-iterable batches of the architecture split.
        num_classes: classes of the dataset.
        in_channels: image channels.
        device: where to run.
        on_epoch: called with each epoch's metrics when the epoch ends.
        resume: a state from ``save_state`` to continue from (the epoch after it).
        save_state: called after every epoch with everything needed to resume: network, alphas,
            optimizers, random generators (global and the batches' own) and the metric history.
    """
    device = torch.device(device)
    torch.manual_seed(settings.seed)
    example = _example_images(weight_batches)
    parts = build_search(candidates, settings, stage, num_classes, in_channels, device, example=example)
    refusal = graph_refusal(settings, device, parts.precision)
    if settings.cuda_graph and refusal:
        log.warning("search.common.cuda_graph: %s; the steps run eagerly", refusal)
    scaler = parts.precision.grad_scaler()
    generators = [getattr(batches, "generator", None) for batches in (weight_batches, arch_batches)]
    targets = dict(zip(STATE_KEYS, (parts.model, parts.weight_optimizer, parts.alpha_optimizer)))
    targets["scaler"] = scaler
    history: list[dict[str, Any]] = []
    if resume is not None:
        history = restore(resume, targets, generators, "this stage's supernet")
    with _progress(stage, settings, weight_batches, len(history)) as bar:
        for epoch in range(len(history), settings.epochs):
            start = time.perf_counter()
            schedule = _start_epoch(epoch, parts, settings, stage)
            losses = _search_epoch(epoch, parts, scaler, weight_batches, arch_batches, settings, device, bar)
            metrics = {**schedule, **losses, "op_probabilities": parts.model.alphas.probabilities_by_name()}
            metrics["seconds"] = time.perf_counter() - start
            history.append(metrics)
            _log_epoch(metrics, settings.epochs)
            if on_epoch is not None:
                on_epoch(metrics)
            if save_state is not None:
                save_state(capture(targets, generators, history))
    return StageResult(alphas=parts.model.alphas.to_dict(), history=history, model=parts.model)


def search_stage(
    candidates: Candidates,
    settings: SearchSettings,
    stage: Stage,
    manifest: dict[str, Any],
    context: Context,
    checkpoint: str | Path | None = None,
    live: str | Path | None = None,
) -> StageResult:
    """A stage as the pipeline runs it, in this process of ``context``: on the prepared data of
    ``manifest``, resumed from the ``checkpoint`` file if it holds this stage's state (same settings,
    candidates and data) and saved there after every epoch, per-epoch metrics written to the ``live``
    folder (dvclive). Only the first process logs and writes."""
    from ..checkpoints import open_checkpoint
    from ..errors import oom_hint
    from ..livelog import live_metrics

    expected = stage_fingerprint(stage, settings, candidates, manifest)
    resume, save_state = open_checkpoint(checkpoint, expected, STATE_KEYS, context.is_main)
    if not context.is_main:
        logging.getLogger("pdarts.search").setLevel(logging.WARNING)  # one log: the first process's
    on_epoch = live_metrics(live, "search", resume, context.is_main)
    weight_batches, arch_batches, info = search_loaders(manifest, settings, context)
    with oom_hint("search.common.batch_size", settings.batch_size):
        return run_search_stage(
            candidates, settings, stage, weight_batches, arch_batches, info.num_classes, info.in_channels,
            device=context.device, resume=resume, save_state=save_state, on_epoch=on_epoch,
        )  # fmt: skip
