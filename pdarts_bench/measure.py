"""Timing and peak memory of steps, each (configuration, mode) in a fresh Python process, or (``interleave``)
every mode of a configuration in one process, their steps alternating.

The peak resident memory of a process (``ru_maxrss``) only ever grows, so in one process every mode
after the largest would report the largest. On CUDA the peak is ``torch.cuda.max_memory_allocated``
over the timed steps, and for a step replayed from a CUDA graph over its warm-up and recording too:
a graph keeps its step's memory (its private pool) between replays, but the allocator counts it as
allocated only while the step records (on an H200, stage 1 at batch 96: 0.15 GB over the replays
alone; ``benchmarks/cuda_graph_step.py``, which counts the recording, 2.64 GB against 2.51 eager).
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from .configs import CONFIGS, DEFAULT_MODES, applies, check_options, step_settings
from .machine import machine
from .steps import build_step

__all__ = ["add_ratios", "baseline_mode", "measure", "measure_in_child", "measure_interleaved", "run_bench"]

log = logging.getLogger("pdarts.bench")  # the logger of ``pdarts bench``, whichever command runs it


def _peak_memory_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _time_steps(step: Callable[[], Any], count: int, device) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``count`` steps, one by one (waiting for the GPU after each)."""
    import torch

    times, cpu_times = [], []
    for _ in range(count):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return times, cpu_times


def measure(config: str, mode: str, steps: int, warmup: int, device: str, threads: int | None = None) -> dict:
    """Times ``steps`` steps of one configuration in one mode after ``warmup`` untimed ones.

    Run it in a fresh process, for an honest peak memory (``run_bench`` does). Returns the median
    seconds per step and its images per second, the CPU time per step, the warm-up time
    (compilation included), the peak memory, and the settings in effect.
    """
    torch_device = _torch_device(device, threads)
    step, settings = _build(config, mode, torch_device)
    memory_after_setup = _peak_memory_mb(torch_device)
    if torch_device.type == "cuda" and not settings.get("cuda_graph"):  # a graph's peak: its recording
        import torch

        torch.cuda.reset_peak_memory_stats(torch_device)
    times, cpu_times = _time_steps(step, warmup + steps, torch_device)
    return {
        **_result(config, mode, times[warmup:], cpu_times[warmup:], sum(times[:warmup]), settings),
        "peak_memory_mb": _peak_memory_mb(torch_device),
        "memory_after_setup_mb": memory_after_setup,
    }


def measure_interleaved(
    config: str,
    modes: Sequence[str],
    steps: int,
    warmup: int,
    device: str,
    threads: int | None = None,
    rounds: int = 2,
) -> list[dict]:
    """Times every mode of one configuration in this process: each mode's step is built and warmed
    up, then each round times ``steps`` steps of every mode in turn, the order reversed every other
    round (A B, B A, ...). Each mode meets the machine's slow spells and the other modes' caches alike,
    so the ratios move less than between processes; the peak memory is the process's, of all modes
    at once, and is not reported (``peak_memory_mb`` None). One result per mode and round, in the
    order measured, with its ``round``.
    """
    torch_device = _torch_device(device, threads)
    built = {mode: _build(config, mode, torch_device) for mode in modes}
    warmups = {mode: sum(_time_steps(step, warmup, torch_device)[0]) for mode, (step, _) in built.items()}
    results = []
    for round_index in range(rounds):
        for mode in modes if round_index % 2 == 0 else modes[::-1]:
            step, settings = built[mode]
            times, cpu_times = _time_steps(step, steps, torch_device)
            warmup_seconds = warmups[mode] if round_index == 0 else 0.0
            result = _result(config, mode, times, cpu_times, warmup_seconds, settings)
            results.append({**result, "peak_memory_mb": None, "round": round_index})
    return results


def _torch_device(device: str, threads: int | None):
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.device(device)


def _build(config: str, mode: str, device) -> tuple[Callable[[], Any], dict]:
    """The step of a configuration in a mode, and the settings in effect."""
    settings = step_settings(CONFIGS[config], mode)
    step, effective = build_step(CONFIGS[config], mode, settings, device)
    return step, {**settings, **effective}


def _result(config, mode, times, cpu_times, warmup_seconds, settings) -> dict:
    import torch

    seconds = _median(times)
    return {
        "config": config,
        "mode": mode,
        "seconds_per_step": seconds,
        "images_per_second": CONFIGS[config].batch_size / seconds,
        "step_seconds": times,
        # CPU time of the process per step, all threads: what a step costs, less sensitive than
        # the wall time to other load on the machine.
        "cpu_seconds_per_step": _median(cpu_times),
        "warmup_seconds": warmup_seconds,
        "threads": torch.get_num_threads(),
        "settings": settings,
    }


# The child logs its warnings (a compiler falling back to eager) in a form the parent passes on.
_CHILD = """
import importlib, json, logging, sys
logging.basicConfig(level=logging.WARNING, format="WARNING %(name)s: %(message)s")
function = getattr(importlib.import_module("pdarts_bench.measure"), sys.argv[1])
print(json.dumps(function(**json.loads(sys.argv[2]))))
"""


def measure_in_child(function: str = "measure", **kwargs: Any) -> Any:
    """``measure(**kwargs)`` (or ``measure_interleaved``) in a fresh Python process; a failure is a
    result with an ``error`` line."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, function, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        check=False,
    )
    what = kwargs.get("mode") or "+".join(kwargs["modes"])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("WARNING pdarts"):
            log.warning("%s / %s: %s", kwargs["config"], what, line.removeprefix("WARNING "))
    if done.returncode != 0:
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        return {"config": kwargs["config"], "mode": what, "error": reason}
    return json.loads(done.stdout.splitlines()[-1])


def baseline_mode(modes: Sequence[str]) -> str | None:
    """The mode every ratio is measured against: ``reference`` if it runs, else ``fp32`` if it runs."""
    return next((mode for mode in ("reference", "fp32") if mode in modes), None)


def add_ratios(results: list[dict], baseline: str | None) -> None:
    """Adds to each result its ``speedup`` and ``memory_ratio`` against the baseline mode's result of
    the same configuration and round (None without one): measured in the same run, side by side."""
    measured = {(r["config"], r["mode"], r["round"]): r for r in results if "error" not in r}
    for result in measured.values():
        base = measured.get((result["config"], baseline, result["round"]))
        result["speedup"] = base["seconds_per_step"] / result["seconds_per_step"] if base else None
        peaks = base and result["peak_memory_mb"] and base["peak_memory_mb"]
        result["memory_ratio"] = result["peak_memory_mb"] / base["peak_memory_mb"] if peaks else None


def run_bench(
    configs: Sequence[str],
    modes: Sequence[str] = DEFAULT_MODES,
    steps: int = 5,
    warmup: int = 2,
    device: str = "cpu",
    threads: int | None = None,
    on_result: Callable[[dict, dict], None] | None = None,
    rounds: int = 1,
    interleave: bool = False,
) -> dict[str, Any]:
    """Measures every configuration in every mode that applies to it, each in a fresh process.

    For each configuration the modes run in turn, ``rounds`` times (A B A B ...), so that a slow
    spell of the machine falls on both; with ``interleave``, all modes of a configuration in one fresh
    process, their steps alternating (``measure_interleaved``: no peak memory). Returns ``machine``,
    ``options``, ``configs`` and ``results``; a result has the numbers of ``measure``, its ``round``,
    and its ``speedup`` and ``memory_ratio`` against the baseline mode (``reference``, else ``fp32``)
    of the same round, or an ``error`` line. ``on_result`` is called with each result and the report
    so far (a run cut short keeps what it measured).
    """
    check_options(configs, modes, device)
    baseline = baseline_mode(modes)
    results: list[dict] = []
    report = {
        "machine": machine(device),
        "options": {
            "steps": steps,
            "warmup": warmup,
            "threads": threads,
            "device": device,
            "rounds": rounds,
            "interleave": interleave,
            "baseline": baseline,
        },
        "configs": {name: asdict(CONFIGS[name]) for name in configs},
        "results": results,
    }
    for name in configs:
        config = CONFIGS[name]
        if interleave:
            modes_here = [mode for mode in modes if applies(config, mode)]
            log.info("measuring %s in modes %s, interleaved, %d rounds", name, " ".join(modes_here), rounds)
            measured = measure_in_child(
                "measure_interleaved", config=name, modes=modes_here, steps=steps, warmup=warmup,
                device=device, threads=threads, rounds=rounds,
            )  # fmt: skip
            if isinstance(measured, dict):  # the process failed: each mode's error
                measured = [{**measured, "mode": mode, "round": 0} for mode in modes_here]
            results.extend(measured)
            add_ratios(results, baseline)
            for result in measured:
                if on_result is not None:
                    on_result(result, report)
            continue
        for round_index in range(rounds):
            for mode in modes:
                if not applies(config, mode):
                    continue
                log.info("measuring %s in mode %s (round %d of %d)", name, mode, round_index + 1, rounds)
                result = measure_in_child(
                    config=name, mode=mode, steps=steps, warmup=warmup, device=device, threads=threads
                )
                result["round"] = round_index
                results.append(result)
                add_ratios(results, baseline)
                if on_result is not None:
                    on_result(result, report)
    return report
