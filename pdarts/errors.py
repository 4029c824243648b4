"""The one exception type for problems a user can fix (bad settings, data, genotype, checkpoint).

Entry points catch it and print its message on one line; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["PdartsError", "first_line", "oom_hint"]


class PdartsError(Exception):
    """A user-fixable problem; the message names what is wrong and how to fix it."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none), for one-line errors."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].endswith(":") and len(lines) > 1:  # a heading ("Error(s) in loading ...:") and its first item
        return f"{lines[0]} {lines[1]}"
    return lines[0]


_OOM = (
    "out of memory at batch size {batch_size} ({exc}); lower {setting} (or the processes' share of it), "
    "or use precision: bf16"
)


@contextmanager
def oom_hint(setting: str, batch_size: int) -> Iterator[None]:
    """Turns running out of memory (CUDA or CPU) into a one-line error naming the batch size to lower."""
    import torch

    try:
        yield
    except (torch.OutOfMemoryError, MemoryError) as exc:
        raise PdartsError(_OOM.format(setting=setting, batch_size=batch_size, exc=first_line(exc))) from None
    except RuntimeError as exc:
        if "can't allocate memory" not in str(exc) and "out of memory" not in str(exc):
            raise
        raise PdartsError(_OOM.format(setting=setting, batch_size=batch_size, exc=first_line(exc))) from None
