"""Run records matched to the artifacts they produced.

A step's run record (``logs/<step>.json``, see ``pdarts.runlog``) holds what varies from run to run
(seconds, latency) and the MD5 of every file the step wrote. The report takes a record's figures
only for the artifacts it describes: a step restored from DVC's run cache, or an artifact from a
clone, keeps a record of some other run (or none), and then the report says "not recorded" rather
than show another run's seconds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runlog import file_md5

__all__ = ["RunRecords", "StepRecord"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepRecord:
    """One step's run record: its name (the record's path under the logs folder, without
    ``.json``: ``search/stage1``, ``train``), seconds, and every field it recorded."""

    step: str
    seconds: float | None
    fields: dict[str, Any]


class RunRecords:
    """The run records under a logs folder whose outputs are still the files on disk."""

    def __init__(self, records: list[StepRecord], digests: dict[str, str] | None = None) -> None:
        self.records = records
        self._by_output = {
            (path, digest): record for record in records for path, digest in record.fields["outputs"].items()
        }
        self._digests = digests if digests is not None else {}  # path -> MD5, each file hashed once

    @classmethod
    def from_folder(cls, folder: str | Path | None) -> RunRecords:
        """Reads every ``*.json`` run record under ``folder`` (none if it does not exist) and keeps
        those whose every recorded output file still has the recorded MD5."""
        if folder is None or not Path(folder).is_dir():
            return cls([])
        records, digests = [], {}
        for path in sorted(Path(folder).rglob("*.json")):
            record = _read_record(path, Path(folder))
            if record is not None and _outputs_current(record.fields["outputs"], digests):
                records.append(record)
        return cls(records, digests)

    def of(self, artifact: str | Path) -> StepRecord | None:
        """The record of the run that wrote ``artifact`` as it is now (None: not recorded)."""
        digest = _current_md5(str(artifact), self._digests)
        return None if digest is None else self._by_output.get((str(artifact), digest))


def _read_record(path: Path, folder: Path) -> StepRecord | None:
    try:
        fields = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        log.warning("run record %s is not readable JSON: its step's seconds are not reported", path)
        return None
    if not isinstance(fields, dict) or not isinstance(fields.get("outputs"), dict):
        return None  # a record from before outputs were recorded, or not a record
    seconds = fields.get("seconds")
    step = path.relative_to(folder).with_suffix("").as_posix()
    return StepRecord(step, seconds if isinstance(seconds, (int, float)) else None, fields)


def _current_md5(path: str, digests: dict[str, str]) -> str | None:
    """The MD5 of the file at ``path`` now (None: no such file), hashed once per report."""
    if path not in digests:
        if not Path(path).is_file():
            return None
        digests[path] = file_md5(path)
    return digests[path]


def _outputs_current(outputs: dict[str, Any], digests: dict[str, str]) -> bool:
    return bool(outputs) and all(_current_md5(path, digests) == digest for path, digest in outputs.items())
