"""The library's compiled kernels, each built on first use: the search's skip dropout in one pass over
memory each way (``csrc/skip_dropout.cpp``), and training-mode BatchNorm of channels_last maps in two
passes each way (``csrc/batch_norm.cpp``).

numpy draws ``SkipDropout``'s mask at 2.4 ns a 64-bit word on this project's CPU (0.31 ms of the
0.41 ms a 32x16x32x32 mask took), and torch then needs two passes to apply it and three for the
backward pass, each its own autograd node: skip dropout was 15 % of a stage-3 search step at the
paper's batch of 96 (5.02 s against 4.26 s with the same supernet without it). The kernel draws
the same mask (numpy's PCG64 stream, bit for bit, each thread jumping ahead to its part) and
applies it in the same pass.

ATen's channels_last BatchNorm kernels take 2-3x a product's time on the search's maps (a bf16
32x16x32x32 map: 154 us forward, 199 us backward, against 44 us for ``x * 2``), and a slow path on
channel counts that are not a multiple of 16. The kernel reads the map as rows of C channels, with
the loops compiled for the search's channel counts (16, 32, 64, 128): 78 and 90 us there. Each
block of rows (about 8,192 values, in the cache) gives its mean and then its squared deviations;
the blocks are combined in fp64, so the statistics need one pass over memory and are as accurate
as a two-pass variance.

``torch.utils.cpp_extension`` compiles it the first time a process needs it (about 25 s; cached in
torch's extensions folder, ``TORCH_EXTENSIONS_DIR``), with the C++ compiler that building Python
packages needs anyway. Where that fails, or with ``PDARTS_NATIVE=0`` in the environment, the search
takes the plain ops, which give the same masks and forward values, and ATen's BatchNorm (a warning
says so once per kernel).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

__all__ = ["ENV_SWITCH", "batch_norm_kernels", "skip_dropout_kernels"]

#: Set to 0 to keep to the plain ops (no compiler needed).
ENV_SWITCH = "PDARTS_NATIVE"

_SOURCES = Path(__file__).with_name("csrc")
_lock = threading.Lock()
_loaded: dict[str, ModuleType | None] = {}
_log = logging.getLogger(__name__)


def skip_dropout_kernels() -> ModuleType | None:
    """The compiled skip-dropout kernels, built on the first call; ``None`` where they are switched off
    (``PDARTS_NATIVE=0``) or cannot be built (a warning names the cause, once per process)."""
    return _kernels("skip_dropout", "skip dropout", "the same masks")


def batch_norm_kernels() -> ModuleType | None:
    """The compiled BatchNorm kernels (``forward``, ``backward``), as ``skip_dropout_kernels``."""
    return _kernels("batch_norm", "BatchNorm", "the same statistics to fp32 rounding")


def _kernels(name: str, what: str, same: str) -> ModuleType | None:
    """The compiled extension ``csrc/<name>.cpp``, built once per process (see the module's docstring)."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    with _lock:
        if name not in _loaded:
            _loaded[name] = _build(name, what, same)
        return _loaded[name]


@contextlib.contextmanager
def _ninja_on_path() -> Iterator[None]:
    """torch builds with ``ninja`` from ``PATH``: where there is none, the ``ninja`` package's (a
    dependency) for the build, ``PATH`` as it was after."""
    path = os.environ.get("PATH", "")
    try:
        if shutil.which("ninja") is None:
            import ninja

            os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, path])
        yield
    finally:
        os.environ["PATH"] = path


def _build(name: str, what: str, same: str) -> ModuleType | None:
    try:
        extensions = logging.getLogger("torch.utils.cpp_extension")
        level = extensions.level
        extensions.setLevel(logging.ERROR)  # not its "No CUDA runtime is found" on every CPU machine
        try:
            from torch.utils.cpp_extension import load
        finally:
            extensions.setLevel(level)

        _log.info("%s: loading the compiled kernel (built on a machine's first use: about 25 s)", what)
        with _ninja_on_path():
            return load(
                name=f"pdarts_{name}",
                sources=[str(_SOURCES / f"{name}.cpp")],
                # OpenMP: torch's at::parallel_for is inline; its libgomp (the one torch loads) runs it
                extra_cflags=["-O3", "-fopenmp"],
                extra_ldflags=["-fopenmp"],
                verbose=False,
            )
    except Exception as error:  # no compiler, no ninja, headers missing: the plain ops instead
        lines = str(error).strip().splitlines() or [type(error).__name__]
        first_line = next((line.strip() for line in lines if "error:" in line), lines[0].strip())
        _log.warning(
            "%s: could not build the compiled kernel (%s); using the plain ops, which give %s, more "
            "slowly (set %s=0 to skip the attempt)",
            what,
            first_line,
            same,
            ENV_SWITCH,
        )
        return None
