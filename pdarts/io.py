"""Atomic artifact writing and strict JSON reading.

Every artifact is written to a temporary file in its own folder, flushed to disk and renamed over
the target, so a crash never leaves a half-written file that DVC or Snakemake would take as valid.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import PdartsError

__all__ = ["atomic_folder", "atomic_path", "write_json", "read_json", "check_finite_json"]

_UMASK = os.umask(0)  # read it (there is no other way) and put it back
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it over ``path`` if the block succeeds."""
    path = Path(path)
    if path.is_dir():
        raise PdartsError(f"cannot write {path}: it is a folder; give a file path or remove the folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes it private; an artifact is an ordinary file
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yields a fresh temporary folder beside ``path``; if the block succeeds, it replaces ``path``
    whole (a failure leaves the old folder, or none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield staging
        staging.chmod(0o777 & ~_UMASK)  # mkdtemp makes it private; an artifact is an ordinary folder
        old = None
        if path.exists():
            old = path.with_name(f"{staging.name}.old")
            path.rename(old)
        staging.rename(path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_json(path: str | Path, data: Any) -> None:
    """Writes ``data`` as indented JSON, atomically; NaN and infinities are refused."""
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | Path, what: str) -> Any:
    """Reads a JSON file, with a one-line error naming ``what`` was expected on failure."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PdartsError(f"{what} file {path} does not exist") from None
    except OSError as exc:
        raise PdartsError(f"cannot read {what} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PdartsError(f"{path} is not valid JSON (not UTF-8 text); expected a JSON {what} file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PdartsError(f"{path} is not valid JSON ({exc}); expected a JSON {what} file") from None


def check_finite_json(value: float, where: str) -> float:
    """Returns ``value`` as a float if it is a finite JSON number, else raises naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PdartsError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise PdartsError(f"{where}: {value} is not a finite number")
    return float(value)
