"""Seconds per training step of the evaluation networks in each precision / memory layout.

    python benchmarks/train_step.py [--steps 5] [--threads 2] [--out results.json]

A shortcut for ``pdarts-bench`` (the ``pdarts_bench`` tool, also ``pdarts bench``) on the training
configurations: the CIFAR and ImageNet PDARTS networks and the default run's network, each in fp32,
bf16 and channels_last.
"""

from __future__ import annotations

import sys

from pdarts_bench.cli import main

CONFIGS = ["cifar-train-b32", "imagenet-train-b8", "digits-train-b64"]
MODES = ["fp32", "bf16", "channels_last", "bf16+channels_last"]

if __name__ == "__main__":
    sys.exit(main(["--configs", *CONFIGS, "--modes", *MODES, *sys.argv[1:]]))
