"""Run records: what a run of a step measured and ran on, kept apart from its artifacts.

Artifacts hold only what the settings and inputs determine, so the same settings give byte-identical
files (models included) and a rerun leaves ``git status`` and ``dvc status`` clean. What differs from
run to run (seconds, checkpoint costs, latency, library versions, the device) goes to the step's *run
record*: ``logs/<step>.json`` beside its ``--log`` file, which is neither committed nor a dependency of
any step (docs/workflow.md#run-records).
"""

from __future__ import annotations

import hashlib
import logging
import platform
import sys
from pathlib import Path
from typing import Any

from .io import write_json

__all__ = [
    "RUN_RECORD",
    "RunRecord",
    "record",
    "record_environment",
    "file_md5",
    "run_record_path",
    "setup_logging",
    "write_run_record",
    "write_results",
]


class RunRecord(dict):
    """This run's record; written unless the process is not the one that writes the artifacts (a
    torchrun launcher, ranks > 0), which set ``enabled`` to False."""

    enabled = True

    def reset(self) -> None:
        self.clear()
        self.enabled = True


RUN_RECORD = RunRecord()


def record(**fields: Any) -> None:
    """Adds fields to this run's record (seconds, costs, environment: nothing that is an artifact)."""
    RUN_RECORD.update(fields)


#: Per-epoch fields that go to the run record, not to a step's history.
TIMING_KEYS = ("seconds",)


def write_results(
    metrics_path: str | Path, history_path: str | Path, metrics: dict[str, Any], history: list[dict[str, Any]]
) -> None:
    """Writes a step's last metrics (for ``dvc metrics``) and per-epoch history (for plots), without
    timings: the epochs' seconds go to the run record."""
    record(epoch_seconds=[round(epoch["seconds"], 3) for epoch in history if "seconds" in epoch])
    write_json(history_path, [{k: v for k, v in e.items() if k not in TIMING_KEYS} for e in history])
    write_json(metrics_path, metrics)


def record_environment(device) -> None:
    """What ran a step: library versions, the device, threads."""
    import torch

    from . import __version__

    environment = {
        "pdarts": __version__,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    record(environment=environment)


def run_record_path(log_path: str | Path) -> Path:
    """The run record of a step that logs to ``log_path``: ``logs/train.log`` -> ``logs/train.json``."""
    return Path(log_path).with_suffix(".json")


def file_md5(path: str | Path) -> str:
    """The MD5 of a file's bytes, as ``dvc.lock`` spells it."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_run_record(
    log_path: str | Path, command: str, seconds: float, outputs: tuple[str, ...] = ()
) -> None:
    """Writes the record beside the log, if this process is the one that records, with the MD5 of
    each output file: a record belongs to the artifacts it names (a step restored from DVC's run
    cache keeps an older record, which the report then does not take for this run's)."""
    if RUN_RECORD.enabled:
        digests = {str(path): file_md5(path) for path in outputs if Path(path).is_file()}
        write_json(
            run_record_path(log_path),
            {"command": command, **RUN_RECORD, "seconds": round(seconds, 3), "outputs": digests},
        )


def setup_logging(log_path: str | Path | None, quiet: bool = False) -> None:
    """Logs to stderr and, if given, to ``log_path`` (created with its folder, truncated)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=handlers,
    )
