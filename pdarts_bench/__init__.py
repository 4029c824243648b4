"""pdarts_bench: speed and memory of search and training steps (issue 6), a tool beside the library.

Run as ``pdarts-bench`` or ``pdarts bench`` (the same options and output). It uses the library's public
API only, as timm's ``benchmark.py`` does timm's:

- ``configs``: the configurations of the reference table (the authors' code on 2 CPU threads, fp32,
  eager) and the modes, ``fp32`` (plain eager, the baseline), one optimisation alone (``bf16``,
  ``fp16``, ``channels_last``, ``compile``, ``checkpoint_cells``), several joined with ``+``, or ``all``;
- ``steps``: one search step (the real ``search_step`` on a supernet built by ``build_search``, as a
  search stage builds it) or one training step (the real ``train_epoch`` on one batch), on random
  inputs already on the device: the data path is not timed;
- ``measure``: the timing and peak memory, each (configuration, mode) in a fresh Python process (the
  peak resident memory of a process only ever grows);
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
