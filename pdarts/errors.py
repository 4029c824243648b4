"""The one exception type for problems a user can fix (bad settings, data, genotype, checkpoint).

Entry points catch it and print its message on one line; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

__all__ = ["PdartsError"]


class PdartsError(Exception):
    """A user-fixable problem; the message names what is wrong and how to fix it."""
