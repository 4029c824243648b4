"""Reproduces the open heap corruption of channels_last search steps on the CPU (torch 2.14).

    python benchmarks/repro_channels_last_abort.py 3        # aborts: "double free or corruption"
    python benchmarks/repro_channels_last_abort.py 2        # ok

A C=2 supernet of 2 cells over one op, 32x32 RGB images, channels_last, fp32: a batch of 3 aborts
the process for every op tried, with skip dropout on or off; batches of 1 and 2, the contiguous
layout, and a plain conv stack in channels_last do not. Until its cause is found, search
channels_last is off by default (README).

The cause is below pdarts: ONEDNN_VERBOSE=1 shows the abort right after oneDNN's
``brgconv_strided:avx512_core`` backward-data of a 1x1 stride-2 convolution (FactorizedReduce's
shape), and plain torch reproduces it:

    c = torch.nn.Conv2d(6, 4, 1, stride=2, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(3, 6, 32, 32).to(memory_format=torch.channels_last).requires_grad_()
    c(x).sum().backward()   # repeated a few times: heap corruption (batch 3; batch 4 or 16->8 ok)
"""

import sys

import torch

from pdarts.search.stage import SearchSettings, build_search, search_step
from pdarts.search_space import full_candidates

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 3
torch.manual_seed(0)
settings = SearchSettings(num_cells=2, init_channels=2, channels_last=True)
parts = build_search(full_candidates(["sep_conv_3x3"]), settings, 10, 3, torch.device("cpu"))
parts.model.train()
for _ in range(3):
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    search_step(parts.model, (x, y), (x, y), parts.weight_optimizer, parts.alpha_optimizer, 5.0, parts.precision)
print("ok")
