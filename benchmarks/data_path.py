"""Images per second of the training data paths, to set beside the model's (does the loader starve it?).

    python benchmarks/data_path.py [--workers 0 1 2] [--batches 20] [--threads 1]

Two loaders, as the pipeline builds them (``pdarts.data``):

- CIFAR: in-memory uint8 images (what the CIFAR reader returns) through the training augmentation
  (pad-4 random crop, flip, normalization, 16-pixel cutout), batch 96;
- ImageNet: an ImageFolder of 256x256 JPEG files decoded and augmented to 224x224 (random resized
  crop, flip, colour jitter), batch 8, the files written to a temporary folder first.

Each loader runs with each number of workers (``workers`` in params.yaml); the first batch (worker
start-up) is not timed. Compare the figures with ``pdarts bench``'s images/s of the step they feed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pdarts.data import (
    ArrayDataset,
    dataset_info,
    image_folder,
    imagenet_train_transform,
    make_loader,
    train_transform,
)


def images_per_second(loader, batches: int) -> float:
    iterator = iter(loader)
    next(iterator)  # worker start-up
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        images, _ = next(iterator)
        count += len(images)
    return count / (time.perf_counter() - start)


def cifar_dataset(size: int) -> ArrayDataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (size, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size)
    return ArrayDataset(images, labels, train_transform(dataset_info("cifar10"), cutout=16))


def imagenet_dataset(root: Path, size: int):
    rng = np.random.default_rng(0)
    for index in range(size):
        folder = root / "train" / f"n{index % 4:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:05d}.JPEG", quality=90)
    return image_folder(root, "train", imagenet_train_transform(224))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=20, help="timed batches per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        loaders = {
            "CIFAR train, batch 96": (cifar_dataset(96 * (args.batches + 1)), 96),
            "ImageNet train JPEG, batch 8": (imagenet_dataset(Path(tmp), 8 * (args.batches + 1)), 8),
        }
        print("| data path | workers | images/s |")
        print("|---|---|---|")
        for name, (dataset, batch) in loaders.items():
            for workers in args.workers:
                runs = [
                    images_per_second(make_loader(dataset, batch, True, seed, workers), args.batches)
                    for seed in range(args.repeats)
                ]
                print(f"| {name} | {workers} | {statistics.median(runs):.0f} |", flush=True)


if __name__ == "__main__":
    main()
