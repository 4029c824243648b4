"""What a long step saves after every epoch so that a rerun resumes it exactly.

A resumable loop saves its network, optimizers (and gradient scaler), the state of every random
generator it draws from and its metric history; the next run loads them back and continues with the
following epoch. Random generators are the global torch stream (augmentation, drop-path, dropout),
the CUDA streams, and the generators of the loaders (shuffle order, worker seeds). Loading refuses,
with one line naming the problem, a state that does not fit: a partly loaded network would silently
train something else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from .errors import PdartsError, first_line

__all__ = ["rng_state", "restore_rng", "load_states", "make_reproducible"]


def rng_state(generators: Sequence[torch.Generator | None] = ()) -> dict[str, Any]:
    """The state of the global torch and CUDA random streams and of ``generators``."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": [g.get_state() if g is not None else None for g in generators],
    }


def restore_rng(state: Mapping[str, Any], generators: Sequence[torch.Generator | None] = ()) -> None:
    """Puts back what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for generator, saved in zip(generators, state["generators"], strict=True):
        if generator is not None and saved is not None:
            generator.set_state(saved)


def load_states(pairs: Iterable[tuple[Any, Any]], what: str) -> None:
    """``target.load_state_dict(saved)`` for each pair (modules strictly); one-line error if one does not fit.

    ``what`` names the step in the message, e.g. ``"this stage's supernet"``.
    """
    try:
        for target, saved in pairs:
            if isinstance(target, torch.nn.Module):
                target.load_state_dict(saved, strict=True)
            elif isinstance(target, torch.amp.GradScaler):
                if target.is_enabled() and saved:
                    target.load_state_dict(saved)
            else:
                target.load_state_dict(saved)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise PdartsError(
            f"the checkpoint does not fit {what} ({first_line(exc)}); delete it to start the step over"
        ) from None


def make_reproducible(seed: int) -> None:
    """Seeds torch, numpy and ``random``, and asks PyTorch for deterministic algorithms where it has them.

    Ops without a deterministic implementation warn rather than fail (``warn_only``); cuDNN's
    autotuner, which picks algorithms by timing, is turned off. On CUDA, deterministic cuBLAS needs
    ``CUBLAS_WORKSPACE_CONFIG``, set here unless the user set it.
    """
    import os
    import random

    import numpy as np

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
