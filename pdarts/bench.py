"""Speed and memory of search and training steps: what ``pdarts bench`` measures (issue 6).

Every configuration of the reference table (the authors' code on 2 CPU threads, fp32, eager) runs
in every mode asked for: ``fp32`` (plain eager, the baseline), one optimisation alone (``bf16``,
``fp16``, ``channels_last``, ``compile``, ``checkpoint_cells``), several joined with ``+``, or ``all``
of them. A search step is the real ``search_step`` (an architecture update, then a weight update)
on a supernet built by ``build_search``, as a search stage builds it; a training step is the real
``train_epoch`` on one batch (auxiliary loss, clipping, SGD). Inputs are random tensors already on
the device: the data path is not timed.

Each (configuration, mode) runs in a fresh Python process: the peak resident memory of a process
(``ru_maxrss``) only ever grows, so in one process every mode after the largest would report the
largest. On CUDA the peak is ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .errors import PdartsError
from .search_space import PRIMITIVES

__all__ = [
    "CONFIGS",
    "DEFAULT_MODES",
    "LEVERS",
    "BenchConfig",
    "check_options",
    "machine",
    "measure",
    "parse_mode",
    "run_bench",
    "table",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    """One measured configuration: a search step of a supernet or a training step of a network.

    ``reference_seconds`` and ``reference_memory_gb`` are the authors' code on this machine's kind
    of CPU (2 threads, fp32, eager PyTorch), from issue 6; None where there is none.
    """

    name: str
    kind: str  # "search" or "train"
    description: str
    batch_size: int
    num_cells: int
    init_channels: int
    image_size: int = 32
    in_channels: int = 3
    num_classes: int = 10
    ops: tuple[str, ...] = PRIMITIVES  # search: the candidate ops of every edge
    skip_dropout: float = 0.0  # search: the stage's skip-connect dropout rate
    network: str = "cifar"  # train: cifar or imagenet
    reference_seconds: float | None = None
    reference_memory_gb: float | None = None


_STAGE2_OPS = ("none", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3")
_STAGE3_OPS = ("skip_connect", "sep_conv_3x3", "dil_conv_3x3")

CONFIGS: dict[str, BenchConfig] = {
    config.name: config
    for config in (
        BenchConfig(
            name="smoke",
            kind="search",
            description="tiny search step: 2 cells, C=4, 4 ops, 8x8 (seconds; for CI)",
            batch_size=8,
            num_cells=2,
            init_channels=4,
            image_size=8,
            ops=("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"),
            skip_dropout=0.3,
        ),
        BenchConfig(
            name="smoke-train",
            kind="train",
            description="tiny training step: CIFAR network, 3 cells, C=4, 8x8 (seconds; for CI)",
            batch_size=8,
            num_cells=3,
            init_channels=4,
            image_size=8,
        ),
        BenchConfig(
            name="stage1-b32",
            kind="search",
            description="search stage 1: 5 cells, 8 ops per edge, C=16",
            batch_size=32,
            num_cells=5,
            init_channels=16,
            reference_seconds=10.2,
            reference_memory_gb=3.6,
        ),
        BenchConfig(
            name="stage1-b96",
            kind="search",
            description="search stage 1: 5 cells, 8 ops per edge, C=16",
            batch_size=96,
            num_cells=5,
            init_channels=16,
            reference_seconds=33.1,
            reference_memory_gb=10.0,
        ),
        BenchConfig(
            name="stage2-b32",
            kind="search",
            description="search stage 2: 11 cells, ops none/skip/sep3/sep5/dil3, C=16",
            batch_size=32,
            num_cells=11,
            init_channels=16,
            ops=_STAGE2_OPS,
            skip_dropout=0.4,
            reference_seconds=22.0,  # the table says 22-34 s: its lower end, for a conservative speedup
            reference_memory_gb=5.3,
        ),
        BenchConfig(
            name="stage3-b32",
            kind="search",
            description="search stage 3: 17 cells, ops skip/sep3/dil3, C=16",
            batch_size=32,
            num_cells=17,
            init_channels=16,
            ops=_STAGE3_OPS,
            skip_dropout=0.7,
            reference_seconds=11.8,
            reference_memory_gb=5.3,
        ),
        BenchConfig(
            name="cifar-train-b32",
            kind="train",
            description="CIFAR network training step: PDARTS genotype, 20 cells, C=36",
            batch_size=32,
            num_cells=20,
            init_channels=36,
            reference_seconds=4.3,
            reference_memory_gb=2.9,
        ),
        BenchConfig(
            name="digits-stage1-b64",
            kind="search",
            description="the default run's search stage 1 (params.yaml): 5 cells, 8 ops, C=8, 8x8 digits",
            batch_size=64,
            num_cells=5,
            init_channels=8,
            image_size=8,
            in_channels=1,
        ),
        BenchConfig(
            name="digits-train-b64",
            kind="train",
            description="the default run's training step (params.yaml): 8 cells, C=16, 8x8 digits",
            batch_size=64,
            num_cells=8,
            init_channels=16,
            image_size=8,
            in_channels=1,
        ),
        BenchConfig(
            name="imagenet-train-b8",
            kind="train",
            description="ImageNet network training step: PDARTS genotype, 14 cells, C=48, 224x224",
            batch_size=8,
            num_cells=14,
            init_channels=48,
            image_size=224,
            num_classes=1000,
            network="imagenet",
            reference_seconds=0.99,
            reference_memory_gb=0.9,
        ),
    )
}

#: The optimisations, each a setting of the search stage (``search.common``); the training steps
#: have no per-cell checkpointing, and ``compile`` compiles their whole network.
LEVERS = ("bf16", "fp16", "channels_last", "compile", "checkpoint_cells")
ALL = ("bf16", "channels_last", "compile", "checkpoint_cells")  # what mode ``all`` joins
DEFAULT_MODES = ("fp32", "bf16", "channels_last", "compile", "checkpoint_cells", "all")


def parse_mode(mode: str) -> tuple[str, ...]:
    """The levers of a mode: ``fp32`` none, ``all`` every one (in bf16), else ``lever+lever+...``."""
    if mode == "fp32":
        return ()
    if mode == "all":
        return ALL
    levers = tuple(mode.split("+"))
    if any(lever not in LEVERS for lever in levers):
        raise PdartsError(
            f"unknown mode {mode!r}: use fp32, all, or levers joined by '+' from {', '.join(LEVERS)}"
        )
    if {"bf16", "fp16"} <= set(levers):
        raise PdartsError(f"mode {mode!r} asks for both bf16 and fp16")
    return levers


def _applies(config: BenchConfig, mode: str) -> bool:
    """Whether a mode means something for a configuration (``checkpoint_cells`` is a search setting)."""
    levers = parse_mode(mode)
    return config.kind == "search" or mode == "all" or "checkpoint_cells" not in levers


def _settings(config: BenchConfig, mode: str) -> dict[str, Any]:
    levers = parse_mode(mode)
    return {
        "precision": next((lever for lever in levers if lever in ("bf16", "fp16")), "fp32"),
        "channels_last": "channels_last" in levers,
        "compile": "compile" in levers,
        "checkpoint_cells": "checkpoint_cells" in levers and config.kind == "search",
    }


def _random_batch(config: BenchConfig, device, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    shape = (config.batch_size, config.in_channels, config.image_size, config.image_size)
    images = torch.randn(shape, generator=generator)
    target = torch.randint(0, config.num_classes, (config.batch_size,), generator=generator)
    return images.to(device), target.to(device)


def _search_step(config: BenchConfig, settings: dict[str, Any], device) -> tuple[Callable[[], Any], dict]:
    import torch

    from .search.stage import SearchSettings, build_search, search_step
    from .search_space import full_candidates

    stage = SearchSettings(
        num_cells=config.num_cells,
        init_channels=config.init_channels,
        skip_dropout=config.skip_dropout,
        **settings,
    )
    weight_batch, arch_batch = _random_batch(config, device, 1), _random_batch(config, device, 2)
    torch.manual_seed(0)
    model, weight_optimizer, alpha_optimizer, precision = build_search(
        full_candidates(config.ops),
        stage,
        config.num_classes,
        config.in_channels,
        device,
        example=weight_batch[0],
    )
    model.set_skip_dropout(config.skip_dropout)
    model.train()
    scaler = precision.grad_scaler()

    def step():
        return search_step(
            model,
            weight_batch,
            arch_batch,
            weight_optimizer,
            alpha_optimizer,
            stage.grad_clip,
            precision,
            scaler,
        )

    effective = {
        "precision": precision.name,
        "channels_last": precision.channels_last,
        "compile": model.cells_compiled,
    }
    return step, effective


def _train_step(config: BenchConfig, settings: dict[str, Any], device) -> tuple[Callable[[], Any], dict]:
    import torch

    from .genotype import GENOTYPES
    from .networks import CifarNetwork, ImageNetNetwork
    from .precision import resolve_precision
    from .training import train_epoch

    precision = resolve_precision(settings["precision"], device, settings["channels_last"])
    torch.manual_seed(0)
    if config.network == "imagenet":
        network = ImageNetNetwork(
            GENOTYPES["PDARTS"], config.num_cells, config.init_channels, config.num_classes
        )
    else:
        network = CifarNetwork(
            GENOTYPES["PDARTS"],
            config.num_cells,
            config.init_channels,
            config.num_classes,
            config.in_channels,
        )
    network = precision.prepare(network.to(device))
    optimizer = torch.optim.SGD(network.parameters(), lr=0.025, momentum=0.9, weight_decay=3.0e-4)
    model = torch.compile(network) if settings["compile"] else network
    batch = [_random_batch(config, device, 1)]
    scaler = precision.grad_scaler()

    def step():
        return train_epoch(model, batch, optimizer, device, 0.4, 5.0, precision=precision, scaler=scaler)

    return step, {"precision": precision.name, "channels_last": precision.channels_last}


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
    settings = _settings(bench_config, mode)
    torch_device = torch.device(device)
    build = _search_step if bench_config.kind == "search" else _train_step
    step, effective = build(bench_config, settings, torch_device)
    memory_after_setup = _peak_memory_mb(torch_device)
    if torch_device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(torch_device)
    times, cpu_times = [], []
    for _ in range(warmup + steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        if torch_device.type == "cuda":
            torch.cuda.synchronize(torch_device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
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
from pdarts.bench import measure
print(json.dumps(measure(**json.loads(sys.argv[1]))))
"""


def _measure_in_child(**kwargs: Any) -> dict:
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


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str) -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, device, library versions."""
    import torch
    import torchvision

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_amx": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()),
        "cpu_avx512_bf16": bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()),
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def check_options(configs: Sequence[str], modes: Sequence[str], device: str) -> None:
    """Refuses unknown configurations and modes, and fp16 off CUDA, before anything runs."""
    for name in configs:
        if name not in CONFIGS:
            raise PdartsError(f"unknown configuration {name!r}; known: {', '.join(CONFIGS)}")
    for mode in modes:
        if "fp16" in parse_mode(mode) and not device.startswith("cuda"):
            raise PdartsError(f"mode {mode!r}: fp16 needs a CUDA device (use bf16 on the CPU)")


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
            if not _applies(config, mode):
                continue
            log.info("measuring %s in mode %s", name, mode)
            result = _measure_in_child(
                config=name, mode=mode, steps=steps, warmup=warmup, device=device, threads=threads
            )
            if "error" not in result:
                if mode == "fp32":
                    baseline = result["seconds_per_step"]
                seconds = result["seconds_per_step"]
                result["speedup"] = baseline / seconds if baseline else None
                reference = config.reference_seconds
                result["speedup_vs_reference"] = reference / seconds if reference else None
            results.append(result)
            if on_result is not None:
                on_result(result)
    return {
        "machine": machine(device),
        "options": {"steps": steps, "warmup": warmup, "threads": threads, "device": device},
        "configs": {name: asdict(CONFIGS[name]) for name in configs},
        "results": results,
    }


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
