"""What a long step saves after every epoch so that a rerun resumes it exactly.

A resumable loop saves its network, optimizers (and gradient scaler), the state of every random
generator it draws from and its metric history; the next run loads them back and continues with the
following epoch. Random generators are the global torch stream (augmentation, drop-path, dropout),
the CUDA streams, and the generators of the loaders (shuffle order, worker seeds). Loading refuses,
with one line naming the problem, a state that does not fit: a partly loaded network would silently
train something else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .errors import PdartsError, first_line

__all__ = ["rng_state", "restore_rng", "capture", "restore", "make_reproducible"]


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


def capture(
    targets: Mapping[str, Any], generators: Sequence[torch.Generator | None], history: Sequence[Any]
) -> dict[str, Any]:
    """The state to save after an epoch: ``targets``' state dicts (network, optimizers, scaler), the
    random streams of every data-parallel process (gathered: all processes must call this), history."""
    from .distributed import Context, all_gather_objects

    return {
        **{key: target.state_dict() for key, target in targets.items()},
        "rng": all_gather_objects(rng_state(generators), Context.current()),
        "history": list(history),
    }


def restore(
    state: Mapping[str, Any],
    targets: Mapping[str, Any],
    generators: Sequence[torch.Generator | None],
    what: str,
) -> list[Any]:
    """Loads what :func:`capture` saved into ``targets`` (modules strictly) and this process's random
    streams; returns the history. A state that does not fit, or is damaged, is a one-line error: a
    partly loaded network would silently train something else. ``what`` names the step's network.
    """
    from .distributed import Context

    try:
        for key, target in targets.items():
            if isinstance(target, torch.nn.Module):
                target.load_state_dict(state[key], strict=True)
            elif isinstance(target, torch.amp.GradScaler):
                if target.is_enabled() and state[key]:
                    target.load_state_dict(state[key])
            else:
                target.load_state_dict(state[key])
        restore_rng(state["rng"][Context.current().rank], generators)
        return list(state["history"])
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
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
