"""Progress bars of the long loops: a search stage, training, evaluation.

One bar per loop counts its batches over all of its epochs, with tqdm's rate and time left, and shows
the epoch and the running training loss. It is drawn on stderr by the first process only, and only
when stderr is a terminal: a log file or a pipe gets the log's one line per epoch and nothing else.
``PDARTS_PROGRESS=1`` draws it anyway, ``PDARTS_PROGRESS=0`` never. While a bar is drawn, log lines
on the console go through ``tqdm.write``, so they print above it instead of through it.

A bar only looks: it draws no random numbers and changes no tensor. The running loss it shows is a
device value read at most once per :data:`POSTFIX_SECONDS` (one sync), and only while a bar is drawn.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

__all__ = ["POSTFIX_SECONDS", "PROGRESS_ENV", "Progress", "batch_count", "progress", "progress_wanted"]

PROGRESS_ENV = "PDARTS_PROGRESS"
POSTFIX_SECONDS = 1.0  # how often the running loss is read from the device, while a bar is drawn

_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

T = TypeVar("T")


def progress_wanted(is_main: bool = True) -> bool | None:
    """tqdm's ``disable`` for this process: True (no bar) outside the first process or with
    ``PDARTS_PROGRESS=0``, False with ``PDARTS_PROGRESS=1``, else None (a bar if stderr is a terminal)."""
    if not is_main:
        return True
    value = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if value in _ON:
        return False
    if value in _OFF:
        return True
    return None


def batch_count(batches: Iterable[Any]) -> int | None:
    """The number of batches per pass over ``batches`` (a loader or a list); None if unknown."""
    try:
        return len(batches)  # type: ignore[arg-type]
    except TypeError:
        return None


class Progress:
    """A loop's bar (None: not drawn, and then every method is a no-op)."""

    def __init__(self, bar: Any | None, epochs: int) -> None:
        self.bar, self.epochs = bar, epochs
        self._postfix: dict[str, str] = {}
        self._shown_at = time.monotonic()

    def epoch(self, epoch: int) -> None:
        """Shows that epoch ``epoch`` (0-based) starts."""
        if self.bar is not None and self.epochs > 1:
            self._postfix = {"epoch": f"{epoch + 1}/{self.epochs}"}
            self.bar.set_postfix(self._postfix, refresh=False)

    def batches(self, batches: Iterable[T], running_loss: Callable[[], Any] | None = None) -> Iterable[T]:
        """``batches``, counted on the bar as each one's step ends; ``running_loss`` (a number or a
        0-d tensor, None while unknown) is shown now and then. Without a bar: ``batches`` itself."""
        if self.bar is None:
            return batches
        return self._counted(batches, running_loss)

    def _counted(self, batches: Iterable[T], running_loss: Callable[[], Any] | None) -> Iterator[T]:
        for batch in batches:
            yield batch  # the step runs here
            if running_loss is not None and time.monotonic() - self._shown_at >= POSTFIX_SECONDS:
                self._show_loss(running_loss())
            self.bar.update()

    def _show_loss(self, loss: Any) -> None:
        self._shown_at = time.monotonic()
        if loss is not None:
            self.bar.set_postfix({**self._postfix, "loss": f"{float(loss):.4f}"}, refresh=False)


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.stderr)


@contextmanager
def progress(
    what: str, epochs: int, batches_per_epoch: int | None, done_epochs: int = 0, is_main: bool = True
) -> Iterator[Progress]:
    """A bar named ``what`` over ``epochs`` epochs of ``batches_per_epoch`` batches, starting after
    ``done_epochs`` (a resumed run); it is erased when the loop ends (or fails)."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    per_epoch = batches_per_epoch or 0
    bar = tqdm(
        total=epochs * per_epoch if batches_per_epoch is not None else None,
        initial=done_epochs * per_epoch,
        desc=what,
        unit="batch",
        file=sys.stderr,
        disable=progress_wanted(is_main),
        leave=False,  # erased at the end: the log keeps its lines, not the bar's last state
        dynamic_ncols=True,
    )
    if bar.disable:
        yield Progress(None, epochs)
        return
    # Console log lines print above the bar; the log file's handler is left as it is.
    redirect = logging_redirect_tqdm() if any(map(_is_console, logging.root.handlers)) else nullcontext()
    try:
        with redirect:
            yield Progress(bar, epochs)
    finally:
        bar.close()
