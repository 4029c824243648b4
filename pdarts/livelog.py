"""Per-epoch metrics written with dvclive while a step runs (its ``--out-live`` folder).

As each epoch ends, its scalars go to ``FOLDER/plots/metrics/NAME.tsv`` (one ``step, NAME`` row per
epoch; ``step`` is the 0-based epoch) and the latest values, with ``step``, to
``FOLDER/metrics.json``: the files ``dvc plots`` and ``dvc metrics`` read, and nothing else. There
are no timestamps and no seconds, so the same run writes the same bytes. A resumed run first writes
the epochs its checkpoint holds again, so that its folder ends as an uninterrupted run's does.

dvclive is kept inside the folder. A plain ``Live`` opens the DVC repository around the working
folder (in a Git repository without one, it runs ``dvc init`` and stages its files), and its
``next_step`` writes a signal file for VS Code into that repository's (or ``DVC_ROOT``'s)
``.dvc/tmp``. Here no repository is opened, and each epoch does what ``next_step`` does without a
report, a dvc.yaml or Studio: log the values at the epoch's step, write the summary. DVC Studio is
never contacted, whatever token the environment or DVC's configuration holds.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import PdartsError

__all__ = ["LIVE_METRICS", "LiveMetrics", "live_metrics"]

# The per-epoch scalars of each step's history, in the order they are logged. Never the seconds (they
# differ from run to run) nor op_probabilities (nested; the report draws them from history.json).
LIVE_METRICS = {
    "search": ("train_loss", "train_acc", "arch_loss", "arch_acc", "lr", "skip_dropout"),
    "train": ("train_loss", "train_acc", "lr", "drop_path"),
    "transfer": ("train_loss", "train_acc", "lr", "drop_path"),
}

# What a live folder may hold, all removed before a run writes its first epoch: dvclive's files
# (``Live``'s own clean-up list, and the plots folder) and Snakemake's marker of a ``directory()`` output.
_DVCLIVE_FILES = {"metrics.json", "params.yaml", "plots", "report.html", "report.md", "dvc.yaml"}
_REMOVABLE = _DVCLIVE_FILES | {".snakemake_timestamp"}


def _check(folder: Path) -> None:
    """Refuses a ``folder`` that is a file or holds anything but what a live folder holds."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise PdartsError(f"the live metrics folder {folder} is a file; give a folder of its own")
    others = sorted(path.name for path in folder.iterdir() if path.name not in _REMOVABLE)
    if others:
        raise PdartsError(
            f"the live metrics folder {folder} holds files dvclive does not write ({', '.join(others[:3])}); "
            "give a folder of its own: it is emptied when the step writes its first epoch"
        )


def _folder_live_class():
    """dvclive's ``Live``, writing into its folder only (see the module's docstring)."""
    try:
        from dvclive import Live
    except ImportError:
        raise PdartsError("live metrics need dvclive: pip install 'pdarts[pipeline]'") from None

    class FolderLive(Live):
        def _init_dvc(self) -> None:  # no DVC repository: no `dvc init`, no experiment
            pass

        def _init_studio(self) -> None:  # offline: no Studio events, whatever the configuration
            self._studio_events_to_skip.update({"start", "data", "done"})

    return FolderLive


class LiveMetrics:
    """Writes the scalars ``names`` of each epoch's metrics into ``folder`` with dvclive.

    A folder that holds other files than a live folder's is refused at once. An earlier run's files
    are removed when the first epoch is written (a rerun never appends to them; a step that fails
    before its first epoch ends leaves them as they were). The epochs of ``resumed`` (a resumed run's
    history) are written at once. Call the object with each new epoch's metrics as the epoch ends
    (the ``on_epoch`` callback of the search and training loops).
    """

    def __init__(self, folder: str | Path, names: Sequence[str], resumed: Sequence[Mapping[str, Any]] = ()):
        self.folder, self.names = Path(folder), tuple(names)
        _check(self.folder)
        self._live_class, self._live = _folder_live_class(), None
        for metrics in resumed:
            self(metrics)

    def _open(self):
        _check(self.folder)
        shutil.rmtree(self.folder, ignore_errors=True)
        return self._live_class(str(self.folder), dvcyaml=None, save_dvc_exp=False, report=None)

    def __call__(self, metrics: Mapping[str, Any]) -> None:
        """Writes one epoch: each of ``names`` it holds that is not None (e.g. no architecture loss in
        a warm-up epoch), at step ``metrics["epoch"]``."""
        if self._live is None:
            self._live = self._open()
        self._live.step = metrics["epoch"]
        for name in self.names:
            value = metrics.get(name)
            if value is not None:
                self._live.log_metric(name, value, timestamp=False)
        self._live.make_summary()


def live_metrics(
    folder: str | Path | None, step: str, resume: Mapping[str, Any] | None, is_main: bool = True
) -> LiveMetrics | None:
    """The ``on_epoch`` callback that writes ``step``'s metrics (see ``LIVE_METRICS``) into ``folder``,
    with the epochs of ``resume`` (a resume state) written first; None without a folder, and in every
    process but the first."""
    if folder is None or not is_main:
        return None
    return LiveMetrics(folder, LIVE_METRICS[step], resume["history"] if resume else ())
