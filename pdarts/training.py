"""Epoch loops of the evaluation networks: training with an auxiliary loss, and evaluation."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["train_epoch", "evaluate", "topk_correct"]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


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
) -> dict[str, float]:
    """One epoch: loss = CE(logits) + auxiliary_weight * CE(auxiliary logits); clipped SGD steps."""
    model.train()
    loss_sum = correct = torch.zeros((), device=device)
    count = 0
    for images, target in batches:
        images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
        logits, aux_logits = model(images)
        loss = F.cross_entropy(logits, target, label_smoothing=label_smoothing)
        if aux_logits is not None and auxiliary_weight > 0:
            loss = loss + auxiliary_weight * F.cross_entropy(
                aux_logits, target, label_smoothing=label_smoothing
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        loss_sum = loss_sum + loss.detach() * len(target)
        correct = correct + topk_correct(logits.detach(), target, (1,))[0]
        count += len(target)
    return {"loss": float(loss_sum) / max(count, 1), "top1": float(correct) / max(count, 1)}


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches, device: torch.device) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy of the main head in eval mode."""
    model.eval()
    loss_sum = top1 = top5 = torch.zeros((), device=device)
    count = 0
    for images, target in batches:
        images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
        logits, _ = model(images)
        loss_sum = loss_sum + F.cross_entropy(logits, target, reduction="sum")
        c1, c5 = topk_correct(logits, target, (1, 5))
        top1, top5 = top1 + c1, top5 + c5
        count += len(target)
    if not count:
        return {"loss": float("nan"), "top1": float("nan"), "top5": float("nan"), "count": 0}
    return {
        "loss": float(loss_sum) / count,
        "top1": float(top1) / count,
        "top5": float(top5) / count,
        "count": count,
    }
