"""The one exception type for problems a user can fix (bad settings, data, genotype, checkpoint).

Entry points catch it and print its message on one line; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

__all__ = ["PdartsError", "first_line"]


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
