#!/usr/bin/env bash
# The GPU measurements of issue 15, as one short run on a CUDA machine (not run yet: no GPU lent so far):
#   1. pdarts bench --device cuda: every configuration, reference and default, two rounds;
#   2. one epoch of search stage 1 at the paper's size (batch 96) and the projection of the whole
#      CIFAR-10 search (3 stages x 25 epochs) with its peak memory (benchmarks/search_epoch.py).
# Writes bench-cuda.json and search-epoch.json to ${OUT:-.}. The machine needs torch, numpy, pyyaml,
# tqdm, matplotlib, scikit-learn and jsonschema (with its needs); the package runs from the source
# tree (PYTHONPATH), nothing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
python3 -m pdarts bench --device cuda --rounds 2 --steps 10 --warmup 3 --modes reference default \
  --configs stage1-b32 stage1-b96 stage2-b32 stage3-b32 cifar-train-b32 imagenet-train-b8 \
  --out "$out/bench-cuda.json"
python3 benchmarks/search_epoch.py --device cuda --batch-size 96 --out "$out/search-epoch.json"
