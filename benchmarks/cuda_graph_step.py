"""Whether a CUDA graph of the whole search step pays on a GPU: eager steps against graph replays.

    python benchmarks/cuda_graph_step.py [--device cuda] [--steps 10] [--out f.json]

On an H200 the search step is bound by launching kernels, not by computing them (``pdarts bench
--device cuda``: about 0.4 s per step at stage 1 whether the batch is 32 or 96). A CUDA graph
records one step's kernels once and replays them with one launch. This measures, for stage 1 at
batch 96 and stage 3 at batch 32 (the bench's configurations), in bf16 (the default on CUDA) and
fp32, both channels_last: the median eager step, the median replayed step, the peak memory of each,
and the weight step's loss of every step each way from the same start (three eager warm-up steps,
then the timed eager steps or the graph's replays: the same values up to float rounding if the
graph replays the step faithfully). Written for a GPU; prints one JSON object.

Capture needs: Adam's ``capturable`` (its step count on the device; ``build_search`` gives it with
``cuda_graph``), a static batch (copied into before each replay), and no host sync inside the step
(``search_step`` keeps its statistics on the device). The library's own form of this is
``search.common.cuda_graph`` (``pdarts/search/graphs.py``), timed by ``pdarts bench``'s
``cuda_graph`` mode; this script, outside the library, measured the README's first figures.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from pdarts.search.stage import search_step
from pdarts_bench.configs import CONFIGS, BenchConfig
from pdarts_bench.steps import random_batch, search_parts, search_settings

CASES = ("stage1-b96", "stage3-b32")  # configurations of pdarts bench


def _timed(step, count: int, device) -> tuple[float, list[float]]:
    times, losses = [], []
    for _ in range(count):
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        stats = step()
        torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        losses.append(float(stats["train"][0]))
    return sorted(times)[len(times) // 2], losses


def measure(config: BenchConfig, precision: str, device, steps: int) -> dict:
    # cuda_graph: build_search gives Adam its capturable form (the same update) for both ways.
    mode = {"precision": precision, "channels_last": True, "cuda_graph": True}
    settings, stage = search_settings(config, mode)
    weight, arch = random_batch(config, device, 1), random_batch(config, device, 2)

    def step_of(parts):
        return lambda: search_step(
            parts.model, weight, arch, parts.weight_optimizer, parts.alpha_optimizer,
            settings.grad_clip, parts.precision,
        )  # fmt: skip

    result = {}
    torch.cuda.reset_peak_memory_stats(device)
    eager = step_of(search_parts(config, settings, stage, device))
    eager_losses = _timed(eager, 3, device)[1]  # from the start, as the graph's warm-up below
    result["eager_s"], timed_losses = _timed(eager, steps, device)
    result["eager_peak_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    del eager
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    step = step_of(search_parts(config, settings, stage, device))
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
        graph_losses = [float(step()["train"][0]) for _ in range(3)]
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    start = time.perf_counter()
    with torch.cuda.graph(graph):
        captured = step()
    result["capture_s"] = time.perf_counter() - start

    def replay():
        graph.replay()
        return captured

    result["graph_s"], replay_losses = _timed(replay, steps, device)
    result["graph_peak_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    result["speedup"] = result["eager_s"] / result["graph_s"]
    result["losses"] = {"eager": eager_losses + timed_losses, "graph": graph_losses + replay_losses}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out")
    args = parser.parse_args()
    device = torch.device(args.device)
    report = {"device": torch.cuda.get_device_name(device), "torch": torch.__version__, "cases": {}}
    for precision in ("bf16", "fp32"):
        for name in CASES:
            key = f"{name}/{precision}"
            try:
                report["cases"][key] = measure(CONFIGS[name], precision, device, args.steps)
            except Exception as error:  # a measurement, not the library: report and go on
                report["cases"][key] = {"failed": f"{type(error).__name__}: {error}"[:300]}
            print(key, json.dumps(report["cases"][key]), flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
