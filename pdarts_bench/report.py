"""The results as they are shown: a markdown table, one log line per result, and a JSON file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .configs import CONFIGS

__all__ = ["log_result", "table", "write_report"]

log = logging.getLogger("pdarts.bench")  # the logger of ``pdarts bench``, whichever command runs it


def log_result(result: dict) -> None:
    """One line per measured (configuration, mode), as it comes: seconds and peak memory, or the error."""
    if "error" in result:
        log.warning("%s / %s failed: %s", result["config"], result["mode"], result["error"])
    else:
        log.info(
            "%s / %s: %.3f s per step, %.2f GB peak",
            result["config"],
            result["mode"],
            result["seconds_per_step"],
            result["peak_memory_mb"] / 1024,
        )


def table(report: dict[str, Any]) -> str:
    """The results as a markdown table, with the authors' numbers beside them."""
    header = ["configuration", "batch", "mode", "s/step", "images/s", "speedup", "vs authors", "peak GB"]
    lines = ["| " + " | ".join([*header, "authors (s, GB)"]) + " |", "|---" * (len(header) + 1) + "|"]
    for result in report["results"]:
        config = CONFIGS[result["config"]]
        reference = ""
        if config.reference_seconds is not None:
            reference = f"{config.reference_seconds}, {config.reference_memory_gb}"
        head = f"| {config.name} | {config.batch_size} | {result['mode']} |"
        if "error" in result:
            lines.append(f"{head} failed: {result['error']} | | | | | {reference} |")
            continue
        speedup = f"{result['speedup']:.2f}x" if result["speedup"] else ""
        versus = f"{result['speedup_vs_reference']:.2f}x" if result["speedup_vs_reference"] else ""
        lines.append(
            f"{head} {result['seconds_per_step']:.3f} | {result['images_per_second']:.1f} | {speedup} | "
            f"{versus} | {result['peak_memory_mb'] / 1024:.2f} | {reference} |"
        )
    return "\n".join(lines)


def write_report(path: str | Path, report: dict[str, Any]) -> None:
    """The whole report (machine, options, configurations, results) as a JSON file, written atomically."""
    from pdarts.io import write_json

    write_json(path, report)
