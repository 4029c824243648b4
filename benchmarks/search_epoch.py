"""One epoch of search stage 1 at the paper's size, and a projection of the whole CIFAR-10 search.

    python benchmarks/search_epoch.py [--device cuda] [--batch-size 96] [--sample-steps 20] [--images 25000]
        [--cuda-graph] [--out f.json]

Runs the library's own stage loop (``run_search_stage``: architecture and weight update per step,
the default settings of ``search.common``) for one epoch of stage 1 (5 cells, 8 ops, C=16) over
25,000 + 25,000 CIFAR-shaped images (the two halves of the CIFAR-10 training set; random pixels,
already on the device: the data path is not timed), then times ``--sample-steps`` steps of each
stage, weight-only (a warm-up epoch's) and full, to project the whole search: 3 stages x 25 epochs,
10 of them warm-up, ``ceil(25000 / batch)`` steps each. Prints one JSON object: seconds, peak memory
(``torch.cuda.max_memory_allocated`` on CUDA, the process's peak RSS on the CPU) and the projection.
Written for a GPU (``benchmarks/gpu_check.sh``); on a CPU it takes hours at batch 96. With
``--cuda-graph`` the epoch replays its steps from a CUDA graph (``search.common.cuda_graph``); the
sampled steps stay eager, and the projection is then scaled by the graphed epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time

import torch

from pdarts.search.stage import build_search, run_search_stage, search_step
from pdarts.search_space import PRIMITIVES, full_candidates
from pdarts.settings import SearchSettings, Stage

HALF = 25_000  # images in each half of the CIFAR-10 training set
STAGES = [  # the paper's schedule (docs/algorithm.md#progressive-search-stages)
    (Stage("stage1", 5, 0.0), PRIMITIVES),
    (Stage("stage2", 11, 0.4), ("none", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3")),
    (Stage("stage3", 17, 0.7), ("skip_connect", "sep_conv_3x3", "dil_conv_3x3")),
]
EPOCHS, WARMUP = 25, 10


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _batches(count: int, batch_size: int, device: torch.device, seed: int):
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(batch_size, 3, 32, 32, generator=generator).to(device),
            torch.randint(0, 10, (batch_size,), generator=generator).to(device),
        )
        for _ in range(count)
    ]


def one_epoch(settings: SearchSettings, batch_size: int, images: int, device: torch.device) -> dict:
    """One full epoch (architecture and weight update every step) of stage 1 over ``images`` per half."""
    steps = math.ceil(images / batch_size)
    weight, arch = _batches(steps, batch_size, device, 1), _batches(steps, batch_size, device, 2)
    stage, ops = STAGES[0]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    one = settings.replace(epochs=1, warmup_epochs=0)
    run_search_stage(full_candidates(ops), one, stage, weight, arch, 10, 3, device)
    _sync(device)
    return {"steps": steps, "seconds": time.perf_counter() - start, "peak_gb": _peak_gb(device)}


def step_seconds(settings: SearchSettings, batch_size: int, device: torch.device, steps: int) -> dict:
    """Median seconds of a weight-only step and of a full step, and the peak memory, per stage."""
    result = {}
    for stage, ops in STAGES:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        parts = build_search(full_candidates(ops), settings, stage, 10, 3, device)
        parts.model.set_skip_dropout(stage.skip_dropout)
        parts.model.train()
        weight, arch = _batches(1, batch_size, device, 1)[0], _batches(1, batch_size, device, 2)[0]
        times = {}
        for kind, arch_batch in (("weight_only", None), ("full", arch)):
            samples = []
            for index in range(steps + 2):  # two warm-up steps
                _sync(device)
                start = time.perf_counter()
                search_step(parts.model, weight, arch_batch, parts.weight_optimizer, parts.alpha_optimizer,
                            settings.grad_clip, parts.precision)  # fmt: skip
                _sync(device)
                if index >= 2:
                    samples.append(time.perf_counter() - start)
            times[kind] = sorted(samples)[len(samples) // 2]
        result[stage.name] = {**times, "peak_gb": _peak_gb(device)}
        del parts
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--sample-steps", type=int, default=20)
    parser.add_argument("--images", type=int, default=HALF, help="images per half (a smaller run to try it)")
    parser.add_argument("--cuda-graph", action="store_true", help="replay the epoch's steps from a graph")
    parser.add_argument("--out")
    args = parser.parse_args()
    device = torch.device(args.device)
    settings = SearchSettings.defaults(batch_size=args.batch_size)
    epoch = one_epoch(settings.replace(cuda_graph=args.cuda_graph), args.batch_size, args.images, device)
    steps = step_seconds(settings, args.batch_size, device, args.sample_steps)
    per_epoch = math.ceil(HALF / args.batch_size)  # the projection is for the real data set
    projected = {
        name: per_epoch * (WARMUP * t["weight_only"] + (EPOCHS - WARMUP) * t["full"])
        for name, t in steps.items()
    }
    # Scale the sampled steps by the measured epoch (data loop, logging, the epoch's own overheads).
    scale = epoch["seconds"] / (epoch["steps"] * steps["stage1"]["full"])
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "cuda_graph": args.cuda_graph,
        "stage1_epoch": epoch,
        "step_seconds": steps,
        "projected_stage_hours": {name: seconds * scale / 3600 for name, seconds in projected.items()},
        "projected_search_hours": sum(projected.values()) * scale / 3600,
        "peak_gb": _peak_gb(device),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
