"""pdarts_bench: speed and memory of search and training steps, a tool beside the library.

Run as ``pdarts-bench`` or ``pdarts bench`` (the same options and output). It uses the library's public
API only, as timm's ``benchmark.py`` does timm's:

- ``configs``: the configurations (search steps of each stage, training steps of the CIFAR and
  ImageNet networks) and the modes: ``reference`` (the straightforward implementation, the baseline
  of every ratio), ``default`` (the library with the schema's default settings), ``fp32`` (the
  library, eager), one optimisation alone (``bf16``, ``fp16``, ``channels_last``, ``compile``,
  ``checkpoint_cells``, ``cuda_graph``), several joined with ``+``, or ``all``;
- ``reference``: the straightforward search and training step, written from docs/algorithm.md, whose
  losses and gradients equal the library's (``tests/test_bench_reference.py``);
- ``steps``: one search step (the real ``search_step`` on a supernet built by ``build_search``, as a
  search stage builds it) or one training step (the real ``train_epoch`` on one batch), or the
  reference's, on random inputs already on the device: the data path is not timed;
- ``measure``: the timing and peak memory, each (configuration, mode) in a fresh Python process (the
  peak resident memory of a process only ever grows), the modes in turn for ``rounds`` rounds, and
  each ratio against the baseline of the same round;
- ``machine``: what the numbers were measured on; ``report``: the markdown table and the JSON file;
- ``cli``: the options and ``main``.
"""

from .configs import CONFIGS, DEFAULT_MODES, LEVERS, BenchConfig, check_options, parse_mode
from .machine import machine
from .measure import measure, run_bench
from .report import table

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
