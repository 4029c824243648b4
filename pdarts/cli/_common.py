"""I/O shared by the step entry points: devices, data manifests, loaders, checkpoints, metrics files.

Artifacts hold only what the settings and inputs determine, so the same settings give byte-identical
files (models included) and a rerun leaves ``git status`` and ``dvc status`` clean. What differs from
run to run (seconds, checkpoint costs, latency, library versions, the device) goes to the step's *run
record*: ``logs/<step>.json`` beside its ``--log`` file, which is neither committed nor a dependency of
any step.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import PdartsError, first_line
from ..io import atomic_path, read_json, write_json

log = logging.getLogger("pdarts")

ARRAYS_FORMAT = "arrays"
CHECKPOINT_FORMAT = 2  # of resume checkpoints: bump when their content changes
IMAGEFOLDER_FORMAT = "imagefolder"
MANIFEST_KEYS = {  # what the steps read from a manifest of each format
    ARRAYS_FORMAT: ("dataset", "root", "sha256"),
    IMAGEFOLDER_FORMAT: ("dataset", "root", "classes"),
}


def resolve_device(name: str):
    """``auto`` -> CUDA if available, else CPU; anything else as given (checked)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PdartsError(
            f"device {name!r} asked for, but CUDA is not available here; set device: auto or cpu"
        )
    return device


def array_digest(*arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(array.tobytes())
    return digest.hexdigest()


MANIFEST_NAME = "manifest.json"  # inside the folder prepare-transfer writes


def manifest_path(path: str | Path) -> Path:
    """A manifest file, or the ``manifest.json`` of a prepared data folder."""
    path = Path(path)
    return path / MANIFEST_NAME if path.is_dir() else path


def read_manifest(path: str | Path, expected_format: str) -> dict[str, Any]:
    """A data manifest written by a prepare step (or its folder); refuses one of the wrong kind."""
    path = manifest_path(path)
    manifest = read_json(path, "data manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != expected_format:
        raise PdartsError(
            f"{path} is not an {expected_format} data manifest; pass the file the prepare step wrote"
        )
    missing = [key for key in MANIFEST_KEYS[expected_format] if key not in manifest]
    if missing or (expected_format == ARRAYS_FORMAT and not _has_digests(manifest)):
        raise PdartsError(
            f"{path} is an incomplete data manifest (no {', '.join(missing) or 'sha256 train/test'}); "
            "rerun the prepare_data step (or prepare_transfer for an image folder)"
        )
    return manifest


def _has_digests(manifest: dict[str, Any]) -> bool:
    digests = manifest.get("sha256")
    return isinstance(digests, dict) and all(isinstance(digests.get(s), str) for s in ("train", "test"))


def load_split(manifest: dict[str, Any], train: bool):
    """The arrays of a prepared dataset, checked against the manifest's digest."""
    from ..data import load_arrays

    split = "train" if train else "test"
    images, labels = load_arrays(manifest["dataset"], manifest["root"], train=train)
    if manifest.get("subset"):
        images, labels = images[: manifest["subset"]], labels[: manifest["subset"]]
    if array_digest(images, labels) != manifest["sha256"][split]:
        raise PdartsError(
            f"the {manifest['dataset']} {split} data under {manifest['root']!r} changed since it was "
            "prepared; "
            "rerun the prepare_data step (dvc repro -f prepare_data / snakemake -R prepare_data)"
        )
    return images, labels


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then rename.

    Saved through an open file, so the archive's inner folder is always ``archive/``: given a path,
    torch names it after the (random) temporary file, and equal payloads would differ byte for byte.
    """
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # terminal colour codes, which torch puts in some messages


def _load_safely(path: str | Path, problem: str) -> Any:
    """``torch.load`` of tensors and plain data only; an unreadable file is a one-line ``PdartsError``."""
    import pickle

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


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Loads a model file written by train or transfer, safely."""
    path = Path(path)
    if not path.exists():
        raise PdartsError(f"model file {path} does not exist; run the step that trains it first")
    payload = _load_safely(path, "{path} is not a readable pdarts checkpoint ({reason}); retrain it")
    if not isinstance(payload, dict) or "state_dict" not in payload or "network" not in payload:
        raise PdartsError(f"{path} is not a pdarts model file (no 'state_dict'/'network'); retrain it")
    return payload


TIMING_KEYS = ("seconds",)  # per-epoch fields that go to the run record, not to history.json


def write_metrics(args, metrics: dict[str, Any], history: list[dict[str, Any]]) -> None:
    """Writes ``--out-metrics`` (for ``dvc metrics``) and ``--out-history`` (per epoch, for plots);
    the epochs' seconds go to the run record."""
    record(epoch_seconds=[round(epoch["seconds"], 3) for epoch in history if "seconds" in epoch])
    write_json(args.out_history, [{k: v for k, v in e.items() if k not in TIMING_KEYS} for e in history])
    write_json(args.out_metrics, metrics)


def add_output_options(parser, *names: str) -> None:
    """``--out-NAME PATH`` for each artifact a step writes (the workflow files name every path)."""
    for name in names:
        parser.add_argument(f"--out-{name}", required=True, metavar="PATH", help=f"{name} file to write")


class RunRecord(dict):
    """What this run of a step records beside its log (see the module docstring); main() writes it
    unless the process is not the one that writes the artifacts (a torchrun launcher, ranks > 0)."""

    enabled = True

    def reset(self) -> None:
        self.clear()
        self.enabled = True


RUN_RECORD = RunRecord()


def record(**fields: Any) -> None:
    """Adds fields to this run's record (seconds, costs, environment: nothing that is an artifact)."""
    RUN_RECORD.update(fields)


def run_record_path(log_path: str | Path) -> Path:
    """The run record of a step that logs to ``log_path``: ``logs/train.log`` -> ``logs/train.json``."""
    return Path(log_path).with_suffix(".json")


def fingerprint(*parts: Any) -> str:
    """A digest of everything that determines a step's result (settings, inputs' content)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


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
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # a write cut short by a crash
        stale.unlink(missing_ok=True)
    if not path.exists():
        return None
    payload = _load_safely(
        path, "checkpoint {path} is unreadable ({reason}); delete it to start the step over"
    )
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
        save_checkpoint(self.path, payload)
        self.seconds.append(time.perf_counter() - start)
        self.bytes = self.path.stat().st_size
        record(**self.cost())

    def cost(self) -> dict[str, float]:
        """For the run record: mean seconds and size of one checkpoint (empty if none was written)."""
        if not self.seconds:
            return {}
        return {
            "checkpoint_seconds": round(sum(self.seconds) / len(self.seconds), 4),
            "checkpoint_mb": round(self.bytes / 2**20, 3),
        }


def checkpoint_saver(path: str | Path | None, expected: str) -> CheckpointSaver | None:
    """The ``save_state`` callback of a step (None: no checkpoints)."""
    return None if path is None else CheckpointSaver(path, expected)


KEEP_CHECKPOINTS_ENV = "PDARTS_KEEP_CHECKPOINTS"


def add_checkpoint_options(parser) -> None:
    """``--checkpoint PATH`` and ``--keep-checkpoint`` for the steps that resume."""
    parser.add_argument(
        "--checkpoint",
        help="resume state, saved after every epoch; a rerun continues from it (removed when the step "
        "is done, unless kept)",
    )
    parser.add_argument(
        "--keep-checkpoint",
        "--keep_checkpoint",
        dest="keep_checkpoint",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get(KEEP_CHECKPOINTS_ENV, "") not in ("", "0", "false", "no"),
        help=f"keep the checkpoint once the step is done (default: no; {KEEP_CHECKPOINTS_ENV}=1 sets "
        "it for a whole dvc repro / snakemake run without changing any step's command)",
    )


def finish_checkpoint(args) -> None:
    """After the artifacts are written: removes the step's checkpoint unless it is to be kept."""
    if args.checkpoint and not args.keep_checkpoint:
        Path(args.checkpoint).unlink(missing_ok=True)
    elif args.checkpoint:
        log.info("checkpoint kept at %s", args.checkpoint)


def record_environment(device) -> None:
    """What ran a step, for its run record: library versions, the device, threads."""
    import platform

    import torch

    from .. import __version__

    record(
        environment={
            "pdarts": __version__,
            "torch": str(torch.__version__),
            "python": platform.python_version(),
            "device": str(device),
            "threads": torch.get_num_threads(),
        }
    )


_OOM = (
    "out of memory at batch size {batch_size} ({exc}); lower {setting} (or the processes' share of it), "
    "or use precision: bf16"
)


@contextmanager
def oom_hint(setting: str, batch_size: int) -> Iterator[None]:
    """Turns running out of memory (CUDA or CPU) into a one-line error naming the batch size to lower."""
    import torch

    try:
        yield
    except (torch.OutOfMemoryError, MemoryError) as exc:
        raise PdartsError(_OOM.format(setting=setting, batch_size=batch_size, exc=first_line(exc))) from None
    except RuntimeError as exc:
        if "can't allocate memory" not in str(exc) and "out of memory" not in str(exc):
            raise
        raise PdartsError(_OOM.format(setting=setting, batch_size=batch_size, exc=first_line(exc))) from None


def run_data_parallel(settings: dict[str, Any], device, work: Callable[[Any], None]) -> int:
    """Runs ``work(context)`` in ``settings["processes"]`` data-parallel processes.

    One process: here. More: the same command relaunches itself under torchrun, and each process
    joins the group, works and leaves it. ``batch_size`` is the total over the processes (that it
    divides among them is a rule of the section, checked with its other settings).
    """
    from .. import distributed, launch

    if settings["processes"] > 1 and not launch.launched():
        RUN_RECORD.enabled = False  # the first process under torchrun writes it
        return launch.relaunch(settings["processes"], sys.argv[1:])
    context = distributed.setup(device)
    RUN_RECORD.enabled = context.is_main
    record(processes=context.world_size)
    try:
        work(context)
    finally:
        distributed.teardown(context)
    return 0
