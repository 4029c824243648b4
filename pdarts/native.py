"""The library's one compiled kernel, built on first use: the search's skip dropout in one pass over
memory each way (``csrc/skip_dropout.cpp``).

numpy draws ``SkipDropout``'s mask at 2.4 ns a 64-bit word on this project's CPU (0.31 ms of the
0.41 ms a 32x16x32x32 mask took), and torch then needs two passes to apply it and three for the
backward pass, each its own autograd node: skip dropout was 15 % of a stage-3 search step at the
paper's batch of 96 (5.02 s against 4.26 s with the same supernet without it). The kernel draws
the same mask (numpy's PCG64 stream, bit for bit, each thread jumping ahead to its part) and
applies it in the same pass.

``torch.utils.cpp_extension`` compiles it the first time a process needs it (about 25 s; cached in
torch's extensions folder, ``TORCH_EXTENSIONS_DIR``), with the C++ compiler that building Python
packages needs anyway. Where that fails, or with ``PDARTS_NATIVE=0`` in the environment, the search
takes the plain ops, which give the same masks and forward values (a warning says so once).
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

__all__ = ["ENV_SWITCH", "skip_dropout_kernels"]

#: Set to 0 to keep to the plain ops (no compiler needed).
ENV_SWITCH = "PDARTS_NATIVE"

_SOURCE = Path(__file__).with_name("csrc") / "skip_dropout.cpp"
_lock = threading.Lock()
_loaded: dict[str, ModuleType | None] = {}
_log = logging.getLogger(__name__)


def skip_dropout_kernels() -> ModuleType | None:
    """The compiled skip-dropout kernels, built on the first call; ``None`` where they are switched off
    (``PDARTS_NATIVE=0``) or cannot be built (a warning names the cause, once per process)."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    with _lock:
        if "skip_dropout" not in _loaded:
            _loaded["skip_dropout"] = _build()
        return _loaded["skip_dropout"]


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


def _build() -> ModuleType | None:
    try:
        extensions = logging.getLogger("torch.utils.cpp_extension")
        level = extensions.level
        extensions.setLevel(logging.ERROR)  # not its "No CUDA runtime is found" on every CPU machine
        try:
            from torch.utils.cpp_extension import load
        finally:
            extensions.setLevel(level)

        _log.info("skip dropout: loading the compiled kernel (built on a machine's first use: about 25 s)")
        with _ninja_on_path():
            return load(
                name="pdarts_skip_dropout",
                sources=[str(_SOURCE)],
                # OpenMP: torch's at::parallel_for is inline; its libgomp (the one torch loads) runs it
                extra_cflags=["-O3", "-fopenmp"],
                extra_ldflags=["-fopenmp"],
                verbose=False,
            )
    except Exception as error:  # no compiler, no ninja, headers missing: the plain ops instead
        lines = str(error).strip().splitlines() or [type(error).__name__]
        first_line = next((line.strip() for line in lines if "error:" in line), lines[0].strip())
        _log.warning(
            "skip dropout: could not build the compiled kernel (%s); using the plain ops, which give "
            "the same masks, more slowly (set %s=0 to skip the attempt)",
            first_line,
            ENV_SWITCH,
        )
        return None
