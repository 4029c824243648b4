"""Where one step of a ``pdarts bench`` configuration spends its time, by aten op and input shape.

    python benchmarks/op_times.py stage1-b32 [--mode default] [--threads 2] [--top 25]

Each aten call of one step (after two untimed ones) is timed by a dispatch mode around it: the sum
of the ops is a step's kernel time, and the step's wall time under the mode (also printed) includes
the mode's own cost, so compare ops with each other, not with ``pdarts bench``'s seconds. Every
op and shape is printed with its calls and its mean; convolutions with their kernel, groups (g),
dilation (d) and stride (s), their backward passes with the gradients computed (input, weight, bias).
"""

from __future__ import annotations

import argparse
import collections
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pdarts_bench.configs import CONFIGS, step_settings
from pdarts_bench.steps import build_step


def _describe(func, args) -> tuple:
    name = func.overloadpacket.__name__
    first = args[0] if args and isinstance(args[0], torch.Tensor) else None
    extra = ""
    if name == "convolution":
        extra = f"{tuple(args[1].shape[2:])}{'g' if args[8] > 1 else ''}d{args[5][0]}s{args[3][0]}"
    elif name == "convolution_backward":
        extra = f"{tuple(args[2].shape[2:])}{'g' if args[9] > 1 else ''} {list(args[10])}"
    return name, tuple(first.shape) if first is not None else None, extra


class _OpTimes(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: collections.Counter = collections.Counter()
        self.calls: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        key = _describe(func, args)
        self.seconds[key] += time.perf_counter() - start
        self.calls[key] += 1
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=sorted(CONFIGS))
    parser.add_argument("--mode", default="default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = CONFIGS[args.config]
    step, effective = build_step(config, args.mode, step_settings(config, args.mode), torch.device("cpu"))
    step()
    step()
    times = _OpTimes()
    start = time.perf_counter()
    with times:
        step()
    wall = time.perf_counter() - start
    total = sum(times.seconds.values())
    print(f"{args.config} / {args.mode} {effective}: ops {total:.3f} s, wall under the mode {wall:.3f} s")
    for key, seconds in times.seconds.most_common(args.top):
        calls = times.calls[key]
        mean_us = seconds / calls * 1e6
        print(f"{seconds * 1e3:8.1f} ms {seconds / total:6.1%} {calls:5d} x {mean_us:8.1f} us  {key}")
    by_op: collections.Counter = collections.Counter()
    for (name, _, _), seconds in times.seconds.items():
        by_op[name] += seconds
    print("by op:", ", ".join(f"{name} {seconds / total:.0%}" for name, seconds in by_op.most_common(10)))


if __name__ == "__main__":
    main()
