"""Training and evaluation of the networks a genotype describes.

:func:`train_network` is the train and transfer steps' loop, shaped like the search's
:func:`pdarts.search.stage.run_search_stage`: settings, data, a resume state and a ``save_state``
callback in, a result out. The epoch loops keep their sums on the device (no synchronisation per
step) and return sums, so that data-parallel processes can add them up before averaging.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import Context, all_reduce_sum
from .errors import PdartsError
from .precision import Precision, resolve_precision
from .progress import Progress, batch_count, progress
from .settings import RecipeSettings

__all__ = [
    "STATE_KEYS",
    "LossGuard",
    "TrainResult",
    "TrainingParts",
    "build_training",
    "EvaluateResult",
    "evaluate",
    "evaluate_model_file",
    "evaluate_network",
    "make_sgd",
    "measure_latency",
    "multi_tensor",
    "network_from_file",
    "network_spec",
    "topk_correct",
    "train_epoch",
    "train_network",
    "train_recipe",
    "training_fingerprint",
]

log = logging.getLogger("pdarts.train")

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
FP32 = Precision("cpu")

#: What a training run's saved state holds besides the random streams and the history (its checkpoint's keys).
STATE_KEYS = ("network", "optimizer", "scaler")


class LossGuard:
    """Stops an epoch at a non-finite loss, naming the epoch and step, without a device sync per step.

    The first bad step is recorded on the device; the guard looks at it every ``every`` steps and when
    the epoch ends (:meth:`check`), and raises a :class:`PdartsError` saying what to change (``fix``).
    Raising before the epoch's checkpoint is saved keeps the last good one.
    """

    def __init__(self, what: str, epoch: int, fix: str, device: torch.device, every: int = 20) -> None:
        self.what, self.epoch, self.fix, self.every = what, epoch, fix, every
        self.steps = 0
        self._first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def __call__(self, *losses: torch.Tensor) -> None:
        """Records one step's losses."""
        self.steps += 1
        bad = torch.stack([~torch.isfinite(loss.detach()) for loss in losses]).any()
        self._first_bad = torch.where(bad & (self._first_bad < 0), self.steps, self._first_bad)
        if self.steps % self.every == 0:
            self.check()

    def check(self) -> None:
        step = int(self._first_bad)
        if step >= 0:
            raise PdartsError(
                f"{self.what} is not finite at epoch {self.epoch + 1}, step {step}; stopped before "
                f"writing anything (a checkpoint of the last complete epoch is kept). {self.fix}"
            )


def topk_correct(
    logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> list[torch.Tensor]:
    """Number of samples whose target is among the top-k predictions, for each k (k capped at classes)."""
    k_max = min(max(ks), logits.shape[1])
    top = logits.topk(k_max, dim=1).indices
    hits = top.eq(target.unsqueeze(1))
    return [hits[:, : min(k, k_max)].any(dim=1).sum() for k in ks]


def train_epoch(
    model: nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    auxiliary_weight: float = 0.0,
    grad_clip: float | None = None,
    label_smoothing: float = 0.0,
    precision: Precision = FP32,
    scaler: torch.amp.GradScaler | None = None,
    guard: LossGuard | None = None,
    bar: Progress | None = None,
) -> dict[str, float]:
    """One epoch: loss = CE(logits) + auxiliary_weight * CE(auxiliary logits); SGD steps with the
    gradient norm clipped to ``grad_clip`` (None: not clipped).

    Returns the sums ``loss_sum`` (loss times samples), ``correct`` (top-1) and ``count``. A
    ``guard`` sees every step's loss and stops the epoch at a non-finite one; a ``bar`` counts the
    steps and shows the running loss.
    """
    model.train()
    if scaler is None:
        scaler = precision.grad_scaler()
    loss_sum = correct = torch.zeros((), device=device)
    count = 0
    if bar is not None:
        batches = bar.batches(batches, lambda: loss_sum / count if count else None)
    for images, target in batches:
        images = precision.inputs(images.to(device, non_blocking=True))
        target = target.to(device, non_blocking=True)
        with precision.autocast():
            logits, aux_logits = model(images)
            loss = F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
            if aux_logits is not None and auxiliary_weight > 0:
                aux_loss = F.cross_entropy(aux_logits.float(), target, label_smoothing=label_smoothing)
                loss = loss + auxiliary_weight * aux_loss
        if guard is not None:
            guard(loss)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients (a no-op without fp16 scaling)
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip, foreach=multi_tensor(device))
        scaler.step(optimizer)
        scaler.update()
        loss_sum = loss_sum + loss.detach() * len(target)
        correct = correct + topk_correct(logits.detach(), target, (1,))[0]
        count += len(target)
    if guard is not None:
        guard.check()
    return {"loss_sum": float(loss_sum), "correct": float(correct), "count": count}


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Batches, device: torch.device, precision: Precision = FP32
) -> dict[str, float]:
    """Sums of loss, top-1 and top-5 hits and samples of the main head, in eval mode."""
    model.eval()
    loss_sum = top1 = top5 = torch.zeros((), device=device)
    count = 0
    for images, target in batches:
        images = precision.inputs(images.to(device, non_blocking=True))
        target = target.to(device, non_blocking=True)
        with precision.autocast():
            logits, _ = model(images)
        logits = logits.float()
        loss_sum = loss_sum + F.cross_entropy(logits, target, reduction="sum")
        c1, c5 = topk_correct(logits, target, (1, 5))
        top1, top5 = top1 + c1, top5 + c5
        count += len(target)
    return {"loss_sum": float(loss_sum), "top1": float(top1), "top5": float(top5), "count": count}


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    input_size: tuple[int, int, int],
    batch_size: int,
    device: torch.device,
    precision: Precision = FP32,
    repeats: int = 10,
    warmup: int = 2,
) -> float:
    """Median seconds of one inference forward pass of a ``batch_size`` batch (eval mode, synchronised)."""
    model.eval()
    images = precision.inputs(torch.randn((batch_size, *input_size), device=device))

    def forward() -> None:
        with precision.autocast():
            model(images)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        forward()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


# Devices where the weight update takes its multi-tensor forms: the per-tensor loops' arithmetic in a
# few calls for all the network's tensors (ImageNet, batch 8, 648 tensors on the CPU: fused SGD 5.1 ms
# against 10.7, clipping 3.8 ms against 5.9, of a 0.27 s step). The clipping gives the same numbers;
# fused SGD rounds some large tensors' updates in the last bit otherwise (vectorised multiply-adds).
_MULTI_TENSOR_DEVICES = ("cpu", "cuda")


def multi_tensor(device: torch.device) -> bool | None:
    """True where ``device`` has the multi-tensor forms; None (torch's choice) elsewhere."""
    return True if device.type in _MULTI_TENSOR_DEVICES else None


def make_sgd(
    params, device: torch.device, lr: float, momentum: float, weight_decay: float
) -> torch.optim.SGD:
    """SGD with momentum and weight decay, fused into one kernel per step where the device has it."""
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=multi_tensor(device)
    )


class TrainingParts(NamedTuple):
    """A network to train, the module that steps run (the DDP wrapper, if any), its optimizer, scaler
    and precision."""

    network: nn.Module
    model: nn.Module
    optimizer: torch.optim.SGD
    scaler: torch.amp.GradScaler
    precision: Precision


@dataclass
class TrainResult:
    """What training leaves behind: the trained network and the per-epoch metrics (and, from
    :func:`train_recipe`, the network's description and the record of its data)."""

    network: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    precision: Precision = FP32
    spec: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def model_file(self, settings: RecipeSettings, manifest_path: str) -> dict[str, Any]:
        """What ``model.pt`` holds: the weights, the network's description, its data (with the path
        of the manifest it was read from) and settings."""
        return {
            "state_dict": self.network.state_dict(),
            "network": self.spec,
            "data": {**self.data, "manifest": manifest_path},
            "settings": settings.to_dict(),
        }


def training_fingerprint(spec: dict[str, Any], settings: RecipeSettings, data: dict[str, Any]) -> str:
    """The fingerprint of everything that decides a training run's result: the recipe, the network and
    the data (a checkpoint resumes only for the same ones)."""
    from .checkpoints import fingerprint

    return fingerprint(settings.section, settings.to_dict(), spec, data)


def network_spec(genotype, settings: RecipeSettings, num_classes: int, in_channels: int) -> dict[str, Any]:
    """The plain-data description of the network a recipe trains (what model files store)."""
    from .genotype import genotype_to_dict

    return {
        "family": settings.family,
        "genotype": genotype_to_dict(genotype),
        "num_cells": settings.cells,
        "init_channels": settings.init_channels,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "auxiliary": settings.auxiliary_weight > 0,
    }


def build_training(spec: dict[str, Any], settings: RecipeSettings, context: Context) -> TrainingParts:
    """The network of ``spec`` on the context's device, wrapped for data parallelism if distributed."""
    from torch.nn.parallel import DistributedDataParallel

    from .networks import build_network

    device = context.device
    precision = resolve_precision(settings.precision, device, settings.channels_last)
    network = precision.prepare(build_network(spec).to(device))
    model = (
        DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)
        if context.distributed
        else network
    )
    optimizer = make_sgd(model.parameters(), device, 0.0, settings.momentum, settings.weight_decay)
    return TrainingParts(network, model, optimizer, precision.grad_scaler(), precision)


def _training_batches(dataset, settings: RecipeSettings, context: Context):
    """The loader of the training set (this process's share of it) and its distributed sampler."""
    from torch.utils.data.distributed import DistributedSampler

    from .data import make_loader

    sampler = (
        DistributedSampler(dataset, context.world_size, context.rank, shuffle=True, seed=settings.seed)
        if context.distributed
        else None
    )
    loader = make_loader(
        dataset,
        settings.batch_size // context.world_size,
        shuffle=True,
        seed=settings.seed,
        num_workers=settings.workers,
        pin_memory=context.device.type == "cuda",
        sampler=sampler,
    )
    return loader, sampler


def _train_one_epoch(
    epoch: int, parts: TrainingParts, loader, settings: RecipeSettings, context, lr: float, bar: Progress
):
    """One epoch at learning rate ``lr``: its metrics, summed over every process."""
    start = time.perf_counter()
    bar.epoch(epoch)
    for group in parts.optimizer.param_groups:
        group["lr"] = lr
    parts.network.drop_path_prob = settings.drop_path * epoch / settings.epochs
    section = settings.section
    guard = LossGuard(
        f"{section}: the training loss",
        epoch,
        f"Lower {section}.lr or use {section}.precision: fp32",
        context.device,
    )
    sums = train_epoch(
        parts.model,
        loader,
        parts.optimizer,
        context.device,
        auxiliary_weight=settings.auxiliary_weight,
        grad_clip=settings.grad_clip,
        label_smoothing=settings.label_smoothing,
        precision=parts.precision,
        scaler=parts.scaler,
        guard=guard,
        bar=bar,
    )
    loss_sum, correct, count = all_reduce_sum([sums["loss_sum"], sums["correct"], sums["count"]], context)
    return {
        "epoch": epoch,
        "lr": lr,
        "drop_path": parts.network.drop_path_prob,
        "train_loss": loss_sum / count,
        "train_acc": correct / count,
        "samples": int(count),
        "seconds": time.perf_counter() - start,
    }


def train_network(
    spec: dict[str, Any],
    settings: RecipeSettings,
    dataset,
    context: Context | None = None,
    resume: dict[str, Any] | None = None,
    save_state: Callable[[dict[str, Any]], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Trains the network that ``spec`` describes on ``dataset`` with the recipe of ``settings``.

    Args:
        spec: the network's description (:func:`pdarts.networks.build_network`).
        settings: the CIFAR (``train``) or ImageNet (``transfer``) recipe.
        dataset: the training set, with its training transform.
        context: this process's rank, world size and device (default: one process on the CPU).
        resume: a state from ``save_state`` to continue from (the epoch after it).
        save_state: called after every epoch, in every process, with everything needed to resume.
        on_epoch: called with each epoch's metrics when the epoch ends (before ``save_state``).
    """
    from .profile import count_parameters
    from .state import capture, make_reproducible, restore

    context = context or Context()
    make_reproducible(settings.seed)
    loader, sampler = _training_batches(dataset, settings, context)
    parts = build_training(spec, settings, context)
    targets = dict(zip(STATE_KEYS, (parts.network, parts.optimizer, parts.scaler)))
    history: list[dict[str, Any]] = []
    if resume is not None:
        history = restore(resume, targets, [loader.generator], f"this {settings.section} network")
    if context.is_main:
        log.info(
            "%s: %s network, %d parameters, %d images, %s on %s x %d",
            settings.section,
            settings.family,
            count_parameters(parts.network),
            len(dataset),
            parts.precision.name,
            context.device,
            context.world_size,
        )
    steps = batch_count(loader)
    with progress(settings.section, settings.epochs, steps, len(history), context.is_main) as bar:
        for epoch in range(len(history), settings.epochs):
            if sampler is not None:
                sampler.set_epoch(epoch)
            lr = settings.learning_rate(epoch)
            history.append(_train_one_epoch(epoch, parts, loader, settings, context, lr, bar))
            if context.is_main:
                _log_epoch(settings, history[-1])
            if on_epoch is not None:
                on_epoch(history[-1])
            if save_state is not None:
                save_state(capture(targets, [loader.generator], history))  # in every process: it gathers
    return TrainResult(parts.network, history, parts.precision)


def train_recipe(
    genotype,
    settings: RecipeSettings,
    manifest: dict[str, Any],
    context: Context,
    checkpoint: str | Path | None = None,
    live: str | Path | None = None,
) -> TrainResult:
    """A training run as the pipeline's train and transfer steps run it, in this process of
    ``context``: the genotype's network on the prepared data of ``manifest``, resumed from the
    ``checkpoint`` file if it holds this run's state (same recipe, network and data) and saved there
    after every epoch, per-epoch metrics written to the ``live`` folder (dvclive)."""
    from .checkpoints import open_checkpoint
    from .errors import oom_hint
    from .livelog import live_metrics
    from .manifest import training_set

    dataset, num_classes, in_channels, data = training_set(manifest, settings.cutout, settings.image_size)
    spec = network_spec(genotype, settings, num_classes, in_channels)
    expected = training_fingerprint(spec, settings, manifest)
    resume, save_state = open_checkpoint(checkpoint, expected, STATE_KEYS, context.is_main)
    on_epoch = live_metrics(live, settings.section, resume, context.is_main)
    with oom_hint(f"{settings.section}.batch_size", settings.batch_size):
        result = train_network(spec, settings, dataset, context, resume, save_state, on_epoch)
    result.spec, result.data = spec, data
    return result


def _log_epoch(settings: RecipeSettings, metrics: dict[str, Any]) -> None:
    log.info(
        "%s epoch %d/%d lr %.5f loss %.4f acc %.4f (%.1f s)",
        settings.section,
        metrics["epoch"] + 1,
        settings.epochs,
        metrics["lr"],
        metrics["train_loss"],
        metrics["train_acc"],
        metrics["seconds"],
    )


def network_from_file(path: str, model_file: dict[str, Any]) -> nn.Module:
    """The network of a model file with its weights; refuses weights that do not fit it exactly."""
    from .errors import first_line
    from .networks import build_network

    try:
        network = build_network(model_file["network"])
    except (KeyError, TypeError, ValueError, AttributeError, PdartsError) as exc:
        raise PdartsError(
            f"{path} has a broken network description ({type(exc).__name__}: {first_line(exc)}); retrain it"
        ) from None
    try:
        network.load_state_dict(model_file["state_dict"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise PdartsError(
            f"{path} does not match its network description ({first_line(exc)}); retrain it"
        ) from None
    return network


@dataclass
class EvaluateResult:
    """Test metrics (determined by the network and data), and what this run measured besides."""

    metrics: dict[str, Any]
    precision: str
    seconds: float
    latency_ms: dict[str, float]
    device: torch.device


def evaluate_network(
    network: nn.Module, dataset, input_size: tuple[int, int, int], settings, device: torch.device
) -> EvaluateResult:
    """Test loss, top-1/top-5 accuracy and error, parameters and multiply-adds of ``network`` on
    ``dataset``, and its inference latency at each of ``settings.latency_batch_sizes``."""
    from .data import make_loader
    from .errors import oom_hint
    from .profile import count_macs, count_parameters

    loader = make_loader(
        dataset, settings.batch_size, shuffle=False, seed=0, num_workers=settings.workers,
        pin_memory=device.type == "cuda",
    )  # fmt: skip
    macs = count_macs(network, input_size)
    precision = resolve_precision(settings.precision, device, settings.channels_last)
    network = precision.prepare(network.to(device))
    start = time.perf_counter()
    with oom_hint("evaluate.batch_size", settings.batch_size), progress("evaluate", 1, len(loader)) as bar:
        sums = evaluate(network, bar.batches(loader), device, precision)
    seconds = time.perf_counter() - start
    count = max(sums["count"], 1)
    metrics = {
        "top1_acc": sums["top1"] / count,
        "top5_acc": sums["top5"] / count,
        "top1_err": 1.0 - sums["top1"] / count,
        "top5_err": 1.0 - sums["top5"] / count,
        "loss": sums["loss_sum"] / count,
        "samples": sums["count"],
        "params": count_parameters(network),
        "macs": macs,
    }
    latency = {}
    for batch_size in settings.latency_batch_sizes:
        with oom_hint("evaluate.latency_batch_sizes", batch_size):
            seconds_per_batch = measure_latency(
                network, input_size, batch_size, device, precision, settings.latency_repeats
            )
        latency[f"latency_ms_batch{batch_size}"] = round(1000 * seconds_per_batch, 3)
    return EvaluateResult(metrics, precision.name, seconds, latency, device)


def evaluate_model_file(path: str, manifest: dict[str, Any], data_name: str, settings) -> EvaluateResult:
    """The evaluate step: the network of the model file at ``path`` (checked, read safely) on the test
    split of the data of ``manifest`` (read from ``data_name``), with ``settings.device``."""
    from .checkpoints import load_model_file
    from .distributed import resolve_device
    from .manifest import evaluation_set

    device = resolve_device(settings.device)
    model_file = load_model_file(path)
    network = network_from_file(path, model_file)
    dataset, input_size = evaluation_set(manifest, model_file, (str(path), str(data_name)))
    return evaluate_network(network, dataset, input_size, settings, device)
