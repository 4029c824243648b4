"""Progress bars: drawn on a terminal or with PDARTS_PROGRESS=1, never into a pipe or a log file nor
outside the first process; log lines print above them; and they change no result."""

import logging
import re

import pytest
import torch

import pdarts.progress
from pdarts.genotype import GENOTYPES
from pdarts.progress import PROGRESS_ENV, progress, progress_wanted

from .test_livelog import _search, _train

# tqdm's counter, elapsed<left time and rate: " 6/6 [00:01<00:00,  4.51batch/s"
RATE_AND_ETA = re.compile(r"\d+/\d+ \[\d\d:\d\d<\d\d:\d\d, +[\d.]+(batch/s|s/batch)")


def _alpha_values(alphas):
    return [edge["alpha"] for cell in ("normal", "reduce") for edge in alphas[cell]]


def _without_seconds(history):
    return [{key: value for key, value in epoch.items() if key != "seconds"} for epoch in history]


@pytest.mark.parametrize(
    ("value", "is_main", "wanted"),
    [(None, True, None), ("1", True, False), ("0", True, True), ("1", False, True), ("", True, None)],
)
def test_the_environment_variable_overrides_the_terminal_check(monkeypatch, value, is_main, wanted):
    if value is None:
        monkeypatch.delenv(PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(PROGRESS_ENV, value)
    assert progress_wanted(is_main) is wanted  # tqdm's disable: None draws only on a terminal


@pytest.mark.parametrize(("run", "logger"), [(_search, "pdarts.search.stage"), (_train, "pdarts.train")])
def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch, capsys, caplog, run, logger):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    with caplog.at_level(logging.INFO):
        result = run()
    assert capsys.readouterr().err == ""  # pytest's capture is no terminal
    lines = [r.getMessage() for r in caplog.records if r.name == logger and "epoch" in r.getMessage()]
    assert len(lines) == len(result.history) == 3  # the log keeps one line per epoch, with its seconds
    assert all(re.search(r"epoch \d/3 .* \(\d+\.\d s\)$", line) for line in lines), lines


@pytest.fixture
def every_step(monkeypatch):
    """A bar that reads the running loss from the device at every step and redraws at every step: with
    tqdm's default 0.1 s between redraws, a training of six batches that took under 0.1 s drew only its
    first state, without a rate (CI, 2026-12-05)."""
    import functools

    import tqdm

    monkeypatch.setattr(pdarts.progress, "POSTFIX_SECONDS", 0.0)
    monkeypatch.setattr(tqdm.tqdm, "__init__", functools.partialmethod(tqdm.tqdm.__init__, mininterval=0.0))


def test_a_forced_bar_shows_rate_and_time_left_and_changes_no_result(monkeypatch, capsys, every_step):
    monkeypatch.setenv(PROGRESS_ENV, "0")
    quiet = _search()
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(PROGRESS_ENV, "1")
    shown = _search()
    err = capsys.readouterr().err
    assert RATE_AND_ETA.search(err) and "stage s:" in err and "/6 [" in err, err
    assert re.search(r"epoch=\d/3, loss=\d\.\d{4}", err), err
    assert err.endswith("\r")  # erased at the end (leave=False): what follows starts on a clean line
    assert _alpha_values(shown.alphas) == _alpha_values(quiet.alphas)
    assert _without_seconds(shown.history) == _without_seconds(quiet.history)


def test_a_forced_bar_changes_no_training_result(monkeypatch, capsys, every_step):
    monkeypatch.setenv(PROGRESS_ENV, "0")
    quiet = _train()
    monkeypatch.setenv(PROGRESS_ENV, "1")
    shown = _train()
    err = capsys.readouterr().err
    assert RATE_AND_ETA.search(err) and "train:" in err and re.search(r"epoch=\d/3, loss=\d\.\d{4}", err), err
    assert _without_seconds(shown.history) == _without_seconds(quiet.history)
    for name, value in quiet.network.state_dict().items():
        assert torch.equal(value, shown.network.state_dict()[name]), name


def test_log_lines_print_above_the_bar_and_the_handlers_are_put_back(monkeypatch, capsys):
    monkeypatch.setenv(PROGRESS_ENV, "1")
    handler = logging.StreamHandler()  # on sys.stderr, as pdarts.runlog sets it up
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(root, "level", logging.INFO)
    with progress("loop", 2, 3) as bar:
        for epoch in range(2):
            bar.epoch(epoch)
            for _ in bar.batches(range(3)):
                pass
            logging.getLogger("pdarts.test").info("epoch %d done", epoch + 1)
    assert root.handlers == [handler]
    lines = capsys.readouterr().err.split("\n")
    logged = [line.rsplit("\r", 1)[-1] for line in lines if "LOG" in line]
    assert logged == ["LOG epoch 1 done", "LOG epoch 2 done"]  # whole lines, after the bar is cleared


def test_no_bar_outside_the_first_process(monkeypatch, capsys):
    monkeypatch.setenv(PROGRESS_ENV, "1")
    with progress("loop", 1, 2, is_main=False) as bar:
        batches = [1, 2]
        assert bar.batches(batches) is batches  # no wrapper at all
    assert capsys.readouterr().err == ""


def test_evaluation_counts_its_batches_and_scores_the_same(monkeypatch, capsys):
    from pdarts.data import ArrayDataset, dataset_info, eval_transform, load_arrays
    from pdarts.networks import CifarNetwork
    from pdarts.settings import EvaluateSettings
    from pdarts.training import evaluate_network

    images, labels = load_arrays("digits", "", train=False)
    dataset = ArrayDataset(images[:12], labels[:12], eval_transform(dataset_info("digits")))
    settings = EvaluateSettings.defaults(batch_size=4, precision="fp32", latency_batch_sizes=[], workers=0)
    torch.manual_seed(0)
    network = CifarNetwork(GENOTYPES["PDARTS"], num_cells=3, init_channels=4, num_classes=10, in_channels=1)
    scores = []
    for value in ("0", "1"):
        monkeypatch.setenv(PROGRESS_ENV, value)
        scores.append(evaluate_network(network, dataset, (1, 8, 8), settings, torch.device("cpu")).metrics)
    err = capsys.readouterr().err
    assert "evaluate:" in err and "/3 [" in err and scores[0] == scores[1]
