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
        peak = result["peak_memory_mb"]
        log.info(
            "%s / %s%s: %.3f s per step%s%s",
            result["config"],
            result["mode"],
            f" (round {result['round'] + 1})" if "round" in result else "",
            result["seconds_per_step"],
            f", {peak / 1024:.2f} GB peak" if peak is not None else "",
            f", {result['speedup']:.2f}x the baseline" if result.get("speedup") else "",
        )


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _ratio(values: list[float | None], digits: int, suffix: str) -> str:
    """The median of per-round ratios, and each round's in brackets when there are several."""
    known = [value for value in values if value is not None]
    if not known:
        return ""
    text = f"{_median(known):.{digits}f}{suffix}"
    return text + f" ({', '.join(f'{v:.{digits}f}' for v in known)})" if len(known) > 1 else text


def _peak(results: list[dict]) -> str:
    """The median peak in GB, or "-" where it was not measured (``interleave``)."""
    peaks = [r["peak_memory_mb"] for r in results if r["peak_memory_mb"] is not None]
    return f"{_median(peaks) / 1024:.2f}" if peaks else "-"


def table(report: dict[str, Any]) -> str:
    """The results as a markdown table: per configuration and mode, the seconds per step of every
    round, and the speed and memory ratios against the baseline mode of the same round."""
    baseline = report["options"].get("baseline") or "baseline"
    header = ["configuration", "batch", "mode", "s/step (each round)", "images/s", f"speedup vs {baseline}"]
    header += ["peak GB", f"memory vs {baseline}"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    rows: dict[tuple[str, str], list[dict]] = {}
    for result in report["results"]:
        rows.setdefault((result["config"], result["mode"]), []).append(result)
    for (name, mode), results in rows.items():
        head = f"| {name} | {CONFIGS[name].batch_size} | {mode} |"
        errors = [r["error"] for r in results if "error" in r]
        measured = [r for r in results if "error" not in r]
        if not measured:
            lines.append(f"{head} failed: {errors[0]} |" + " |" * (len(header) - 4))
            continue
        seconds = [r["seconds_per_step"] for r in measured]
        cells = [
            ", ".join(f"{value:.3f}" for value in seconds) + (f" (failed: {errors[0]})" if errors else ""),
            f"{CONFIGS[name].batch_size / _median(seconds):.1f}",
            _ratio([r.get("speedup") for r in measured], 2, "x"),
            _peak(measured),
            _ratio([r.get("memory_ratio") for r in measured], 2, ""),
        ]
        lines.append(f"{head} " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(path: str | Path, report: dict[str, Any]) -> None:
    """The whole report (machine, options, configurations, results) as a JSON file, written atomically."""
    from pdarts.io import write_json

    write_json(path, report)
