"""Model files and resume checkpoints: written atomically, read safely, refused when they do not fit.

A *model file* (``model.pt``) holds a trained network's weights and its description; a *resume
checkpoint* holds everything a step needs to continue after its last complete epoch, with the
fingerprint of the settings and inputs it was written for. Both are read with
``torch.load(weights_only=True)``: tensors and plain data only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
import time
from pathlib import Path
from typing import Any

from .errors import PdartsError, first_line
from .io import atomic_path
from .runlog import record

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointSaver",
    "fingerprint",
    "load_model_file",
    "load_resume_state",
    "open_checkpoint",
    "remove_checkpoint",
    "save_torch_file",
]

log = logging.getLogger("pdarts")

CHECKPOINT_FORMAT = 2  # of resume checkpoints: bump when their content changes

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # terminal colour codes, which torch puts in some messages


def fingerprint(*parts: Any) -> str:
    """A digest of everything that determines a step's result (settings, inputs' content)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def save_torch_file(path: str | Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then rename.

    Saved through an open file, so the archive's inner folder is always ``archive/``: given a path,
    torch names it after the (random) temporary file, and equal payloads would differ byte for byte.
    """
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)


def _load_safely(path: str | Path, problem: str) -> Any:
    """``torch.load`` of tensors and plain data only; an unreadable file is a one-line ``PdartsError``."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message suggests loading with weights_only=False: name what was refused instead.
        lines = _ANSI.sub("", str(exc)).splitlines()
        refused = [line.split("error:")[-1].split(" Please use")[0] for line in lines if "GLOBAL" in line]
        reason = first_line(exc)
        if refused:
            reason = f"it holds more than tensors and plain data: {refused[0].strip()}"
        raise PdartsError(problem.format(path=path, reason=reason)) from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise PdartsError(problem.format(path=path, reason=first_line(exc))) from None


def load_model_file(path: str | Path) -> dict[str, Any]:
    """A model file written by train or transfer, loaded safely (its network is not built here)."""
    path = Path(path)
    if not path.exists():
        raise PdartsError(f"model file {path} does not exist; run the step that trains it first")
    payload = _load_safely(path, "{path} is not a readable pdarts checkpoint ({reason}); retrain it")
    if not isinstance(payload, dict) or "state_dict" not in payload or "network" not in payload:
        raise PdartsError(f"{path} is not a pdarts model file (no 'state_dict'/'network'); retrain it")
    return payload


def _remove_stale_writes(path: Path) -> None:
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # a write cut short by a crash
        stale.unlink(missing_ok=True)


def _checked_state(path: Path, payload: Any, expected: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(payload, dict) or "fingerprint" not in payload or "state" not in payload:
        raise PdartsError(f"{path} is not a pdarts checkpoint; delete it to start the step over")
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise PdartsError(
            f"checkpoint {path} was written by another pdarts version (format {payload.get('format')}, "
            f"this one reads {CHECKPOINT_FORMAT}); delete it to start the step over"
        )
    if payload["fingerprint"] != expected:
        raise PdartsError(
            f"checkpoint {path} was written for other settings or data; delete it to start the step over "
            "with the current ones (or restore the settings it was written for to resume it)"
        )
    state = payload["state"]
    missing = [key for key in ("rng", "history", *keys) if not isinstance(state, dict) or key not in state]
    if missing or not isinstance(state["history"], list):
        raise PdartsError(
            f"checkpoint {path} is damaged (no {', '.join(missing) or 'history list'}); delete it to start "
            "the step over"
        )
    return state


def load_resume_state(
    path: str | Path | None, expected: str, keys: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """The state saved in a step's checkpoint, if there is one for the same settings and inputs.

    Refuses (one line, with the fix) a checkpoint that is unreadable, lacks ``keys`` (and the random
    streams and history every state has) or was written for other settings: resuming it would mix
    two configurations, deleting it would lose work.
    """
    if path is None:
        return None
    path = Path(path)
    _remove_stale_writes(path)
    if not path.exists():
        return None
    payload = _load_safely(
        path, "checkpoint {path} is unreadable ({reason}); delete it to start the step over"
    )
    state = _checked_state(path, payload, expected, keys)
    log.info("resuming from %s after epoch %d", path, len(state["history"]))
    return state


class CheckpointSaver:
    """A ``save_state`` callback writing the state atomically to ``path``; measures what that costs."""

    def __init__(self, path: str | Path, expected: str) -> None:
        self.path, self.expected = Path(path), expected
        self.seconds: list[float] = []
        self.bytes = 0

    def __call__(self, state: dict[str, Any]) -> None:
        start = time.perf_counter()
        payload = {"format": CHECKPOINT_FORMAT, "fingerprint": self.expected, "state": state}
        save_torch_file(self.path, payload)
        self.seconds.append(time.perf_counter() - start)
        self.bytes = self.path.stat().st_size

    def cost(self) -> dict[str, float]:
        """Mean seconds and size of one checkpoint (empty if none was written)."""
        if not self.seconds:
            return {}
        return {
            "checkpoint_seconds": round(sum(self.seconds) / len(self.seconds), 4),
            "checkpoint_mb": round(self.bytes / 2**20, 3),
        }


def open_checkpoint(path: str | Path | None, expected: str, keys: tuple[str, ...], is_main: bool):
    """A step's resume state (None: start afresh) and its ``save_state`` callback (None: no
    checkpoint file). Every process calls the callback, which gathers; the first one writes the file
    and records what that costs in the run record."""
    resume = load_resume_state(path, expected, keys)
    if not path:
        return resume, None
    saver = CheckpointSaver(path, expected) if is_main else None

    def save_state(state: dict[str, Any]) -> None:
        if saver is not None:
            saver(state)
            record(**saver.cost())

    return resume, save_state


def remove_checkpoint(path: str | Path | None, keep: bool) -> None:
    """After a step's artifacts are written: removes its checkpoint unless it is to be kept."""
    if path and not keep:
        Path(path).unlink(missing_ok=True)
    elif path:
        log.info("checkpoint kept at %s", path)
