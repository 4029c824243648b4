"""Epoch loops of the evaluation networks: training with an auxiliary loss, and evaluation.

Both loops keep their sums on the device (no synchronisation per step) and return sums, so that
data-parallel processes can add them up before averaging.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import PdartsError
from .precision import Precision

__all__ = ["LossGuard", "train_epoch", "evaluate", "topk_correct", "measure_latency"]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
FP32 = Precision("cpu")


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
    grad_clip: float = 5.0,
    label_smoothing: float = 0.0,
    precision: Precision = FP32,
    scaler: torch.amp.GradScaler | None = None,
    guard: LossGuard | None = None,
) -> dict[str, float]:
    """One epoch: loss = CE(logits) + auxiliary_weight * CE(auxiliary logits); clipped SGD steps.

    Returns the sums ``loss_sum`` (loss times samples), ``correct`` (top-1) and ``count``. A
    ``guard`` sees every step's loss and stops the epoch at a non-finite one.
    """
    model.train()
    if scaler is None:
        scaler = precision.grad_scaler()
    loss_sum = correct = torch.zeros((), device=device)
    count = 0
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
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
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
