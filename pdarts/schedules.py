"""Per-epoch schedules as small pure functions.

Used by the search (docs/algorithm.md#settings-of-a-stage, docs/algorithm.md#skip-connect-dropout) and
the training recipes (docs/algorithm.md#cifar-training-recipe, docs/algorithm.md#imagenet-transfer-recipe).
"""

from __future__ import annotations

import math

__all__ = ["cosine_lr", "linear_lr", "skip_dropout_rate"]


def cosine_lr(epoch: int, base_lr: float, epochs: int, min_lr: float = 0.0) -> float:
    """Cosine decay evaluated at the start of ``epoch`` (0-based), as the authors ran it.

    With base_lr 0.025 and 25 epochs: lr(e) = 0.0125 * (1 + cos(pi * e / 25)).
    """
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * epoch / epochs))


def skip_dropout_rate(epoch: int, rate: float, epochs: int, warmup_epochs: int) -> float:
    """The skip-connect dropout rate at ``epoch`` of a stage whose initial rate is ``rate``.

    During warm-up it decays linearly, ``rate * (E - e - 1) / E``; from epoch W on it restarts
    at ``rate`` and decays as ``rate * exp(-0.2 * (e - W))`` (docs/algorithm.md#skip-connect-dropout).
    """
    if epoch < warmup_epochs:
        return rate * (epochs - epoch - 1) / epochs
    return rate * math.exp(-0.2 * (epoch - warmup_epochs))


def linear_lr(epoch: int, base_lr: float, epochs: int, warmup_epochs: int = 0) -> float:
    """Linear warm-up over ``warmup_epochs``, then linear decay to 0 at ``epochs`` (ImageNet recipe).

    Evaluated at the start of ``epoch`` (0-based): warm-up epochs give base * (e + 1) / W; after it
    the rate falls linearly from base_lr, reaching base * 1 / (E - W) in the last epoch.
    """
    if epoch < warmup_epochs:
        return base_lr * (epoch + 1) / warmup_epochs
    return base_lr * (1.0 - (epoch - warmup_epochs) / (epochs - warmup_epochs))
