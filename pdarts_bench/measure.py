"""Timing and peak memory of steps, each (configuration, mode) in a fresh Python process.

The peak resident memory of a process (``ru_maxrss``) only ever grows, so in one process every mode
after the largest would report the largest. On CUDA the peak is ``torch.cuda.max_memory_allocated``.
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

from .configs import CONFIGS, DEFAULT_MODES, BenchConfig, applies, check_options, step_settings
from .machine import machine
from .steps import build_step

__all__ = ["measure", "measure_in_child", "run_bench"]

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
    import torch

    if threads:
        torch.set_num_threads(threads)
    bench_config = CONFIGS[config]
    settings = step_settings(bench_config, mode)
    torch_device = torch.device(device)
    step, effective = build_step(bench_config, settings, torch_device)
    memory_after_setup = _peak_memory_mb(torch_device)
    if torch_device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(torch_device)
    times, cpu_times = _time_steps(step, warmup + steps, torch_device)
    seconds = _median(times[warmup:])
    return {
        "config": config,
        "mode": mode,
        "seconds_per_step": seconds,
        "images_per_second": bench_config.batch_size / seconds,
        "step_seconds": times[warmup:],
        # CPU time of the process per step, all threads: what a step costs, less sensitive than
        # the wall time to other load on the machine.
        "cpu_seconds_per_step": _median(cpu_times[warmup:]),
        "warmup_seconds": sum(times[:warmup]),
        "peak_memory_mb": _peak_memory_mb(torch_device),
        "memory_after_setup_mb": memory_after_setup,
        "threads": torch.get_num_threads(),
        "settings": {**settings, **effective},
    }


# The child logs its warnings (a compiler falling back to eager) in a form the parent passes on.
_CHILD = """
import json, logging, sys
logging.basicConfig(level=logging.WARNING, format="WARNING %(name)s: %(message)s")
from pdarts_bench.measure import measure
print(json.dumps(measure(**json.loads(sys.argv[1]))))
"""


def measure_in_child(**kwargs: Any) -> dict:
    """``measure(**kwargs)`` in a fresh Python process; a failure is a result with an ``error`` line."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(kwargs)], capture_output=True, text=True, check=False
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("WARNING pdarts"):
            log.warning("%s / %s: %s", kwargs["config"], kwargs["mode"], line.removeprefix("WARNING "))
    if done.returncode != 0:
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        return {"config": kwargs["config"], "mode": kwargs["mode"], "error": reason}
    return json.loads(done.stdout.splitlines()[-1])


def _add_speedups(result: dict, config: BenchConfig, baseline: float | None) -> None:
    """``speedup`` against the configuration's fp32 mode (if it ran) and ``speedup_vs_reference``."""
    seconds = result["seconds_per_step"]
    result["speedup"] = baseline / seconds if baseline else None
    reference = config.reference_seconds
    result["speedup_vs_reference"] = reference / seconds if reference else None


def run_bench(
    configs: Sequence[str],
    modes: Sequence[str] = DEFAULT_MODES,
    steps: int = 5,
    warmup: int = 2,
    device: str = "cpu",
    threads: int | None = None,
    on_result: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Measures every configuration in every mode that applies to it, each in a fresh process.

    Returns ``machine``, ``options``, ``configs`` and ``results``; a result has the numbers of
    ``measure`` with ``speedup`` (against the same configuration's fp32 mode, if it ran first) and
    ``speedup_vs_reference`` (against the authors' code), or an ``error`` line.
    """
    check_options(configs, modes, device)
    results = []
    for name in configs:
        config = CONFIGS[name]
        baseline = None
        for mode in modes:
            if not applies(config, mode):
                continue
            log.info("measuring %s in mode %s", name, mode)
            result = measure_in_child(
                config=name, mode=mode, steps=steps, warmup=warmup, device=device, threads=threads
            )
            if "error" not in result:
                if mode == "fp32":
                    baseline = result["seconds_per_step"]
                _add_speedups(result, config, baseline)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return {
        "machine": machine(device),
        "options": {"steps": steps, "warmup": warmup, "threads": threads, "device": device},
        "configs": {name: asdict(CONFIGS[name]) for name in configs},
        "results": results,
    }
