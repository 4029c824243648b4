"""Seconds per training step of the evaluation networks in each precision / memory-layout setting.

    python benchmarks/train_step.py [--steps 5] [--threads 2]

Prints one line per (network, setting): the median of ``--steps`` timed steps after one warm-up
step (forward with the auxiliary head, backward, SGD step), on the CPU. The README's precision
table comes from this script.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from pdarts.genotype import GENOTYPES
from pdarts.networks import CifarNetwork, ImageNetNetwork
from pdarts.precision import resolve_precision

GENOTYPE = GENOTYPES["PDARTS"]
CASES = {
    # name: (network builder, batch shape, classes)
    "CIFAR PDARTS 20 cells C=36, batch 32": (lambda: CifarNetwork(GENOTYPE, 20, 36, 10), (32, 3, 32, 32), 10),
    "ImageNet PDARTS 14 cells C=48, batch 8, 224px": (
        lambda: ImageNetNetwork(GENOTYPE, 14, 48, 1000),
        (8, 3, 224, 224),
        1000,
    ),
    "default run: train net 8 cells C=16, batch 64, 8x8": (
        lambda: CifarNetwork(GENOTYPE, 8, 16, 10, in_channels=1),
        (64, 1, 8, 8),
        10,
    ),
}
SETTINGS = [("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True)]


def step_seconds(build, shape, classes, precision_name, channels_last, steps):
    torch.manual_seed(0)
    precision = resolve_precision(precision_name, torch.device("cpu"), channels_last)
    model = precision.prepare(build())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, target = precision.inputs(torch.randn(shape)), torch.randint(0, classes, (shape[0],))
    model.train()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with precision.autocast():
            logits, aux = model(images)
            loss = F.cross_entropy(logits.float(), target) + 0.4 * F.cross_entropy(aux.float(), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    times = sorted(times[1:])
    return times[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU")
    for name, (build, shape, classes) in CASES.items():
        base = None
        for precision_name, channels_last in SETTINGS:
            seconds = step_seconds(build, shape, classes, precision_name, channels_last, args.steps)
            base = base or seconds
            layout = "channels_last" if channels_last else "contiguous"
            print(
                f"{name:55s} {precision_name:5s} {layout:13s} {seconds:7.3f} s/step  x{base / seconds:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
