"""The channels_last heap corruption of CPU search steps (torch 2.14, oneDNN), and pdarts' workaround.

    python benchmarks/repro_channels_last_abort.py 3            # pdarts search steps: ok (worked around)
    python benchmarks/repro_channels_last_abort.py 3 --plain    # the upstream bug alone: aborts

The cause is oneDNN's ``brgconv_strided:avx512_core`` backward-data of a 1x1 stride-2 convolution in
channels_last (``ONEDNN_VERBOSE=1`` shows the abort right after it). Plain torch reproduces it:

    c = torch.nn.Conv2d(6, 4, 1, stride=2, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(3, 6, 32, 32).to(memory_format=torch.channels_last).requires_grad_()
    c(x).sum().backward()   # repeated a few times: heap corruption (batch 3; batch 4 or 16->8 ok)

FactorizedReduce (the skip connection and preprocessing of reduction cells) had exactly that shape
in a C=2 supernet on batches of 3. It now subsamples its input and runs stride-1 1x1 convs, which is
bit-identical and never calls the strided kernel; before that, the pdarts form below aborted with
"double free or corruption" at batches of 3 and 5 (tests/search/test_speed.py keeps it fixed).
"""

import sys

import torch

from pdarts.search.stage import SearchSettings, Stage, build_search, search_step
from pdarts.search_space import full_candidates

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 3
torch.manual_seed(0)
if "--plain" in sys.argv:
    conv = torch.nn.Conv2d(6, 4, 1, stride=2, bias=False).to(memory_format=torch.channels_last)
    for _ in range(20):
        x = torch.randn(batch, 6, 32, 32).to(memory_format=torch.channels_last).requires_grad_()
        conv(x).sum().backward()
    print("ok (plain strided 1x1 conv)")
    sys.exit(0)
settings = SearchSettings.defaults(init_channels=2, channels_last=True, precision="fp32")
p = build_search(full_candidates(["sep_conv_3x3"]), settings, Stage("s", 2, 0.0), 10, 3, torch.device("cpu"))
p.model.train()
for _ in range(3):
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    search_step(p.model, (x, y), (x, y), p.weight_optimizer, p.alpha_optimizer, 5.0, p.precision)
print("ok")
