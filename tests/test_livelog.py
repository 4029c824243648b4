"""Live metrics (``--out-live``): dvclive's files, one row per epoch equal to the history, the same
bytes on a rerun and after a resume, and nothing written outside the folder, nothing sent anywhere."""

import copy
import csv
import json
import subprocess

import pytest
import torch

from pdarts.errors import PdartsError
from pdarts.genotype import GENOTYPES
from pdarts.livelog import LIVE_METRICS, LiveMetrics, live_metrics
from pdarts.search.stage import SearchSettings, Stage, run_search_stage
from pdarts.search_space import full_candidates

CANDIDATES = full_candidates(["none", "skip_connect", "sep_conv_3x3"])
SEARCH_FILES = ["metrics.json"] + [f"plots/metrics/{name}.tsv" for name in sorted(LIVE_METRICS["search"])]
TRAIN_FILES = ["metrics.json"] + [f"plots/metrics/{name}.tsv" for name in sorted(LIVE_METRICS["train"])]


def _batches(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 1, 8, 8, generator=g), torch.randint(0, 3, (4,), generator=g)) for _ in range(2)]


def _search(on_epoch=None, resume=None, save_state=None):
    """A 3-epoch stage (1 warm-up) of a 2-cell supernet on random 8x8 images."""
    settings = SearchSettings.defaults(
        epochs=3, warmup_epochs=1, init_channels=2, precision="fp32", channels_last=False
    )
    return run_search_stage(
        CANDIDATES, settings, Stage("s", cells=2, skip_dropout=0.3), _batches(1), _batches(2), 3, 1,
        on_epoch=on_epoch, resume=resume, save_state=save_state,
    )  # fmt: skip


def _train(on_epoch=None, resume=None, save_state=None):
    """3 epochs of a 3-cell network on 16 digits."""
    from pdarts.data import ArrayDataset, dataset_info, load_arrays, train_transform
    from pdarts.settings import TrainSettings
    from pdarts.training import network_spec, train_network

    images, labels = load_arrays("digits", "", train=True)
    dataset = ArrayDataset(images[:16], labels[:16], train_transform(dataset_info("digits")))
    settings = TrainSettings.defaults(
        cells=3, init_channels=4, epochs=3, batch_size=8, precision="fp32", channels_last=False, cutout=0
    )
    spec = network_spec(GENOTYPES["PDARTS"], settings, num_classes=10, in_channels=1)
    return train_network(spec, settings, dataset, resume=resume, save_state=save_state, on_epoch=on_epoch)


def _files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _rows(folder, name) -> list[tuple[int, float]]:
    with open(folder / "plots" / "metrics" / f"{name}.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [(int(row["step"]), float(row[name])) for row in rows]


def _assert_matches(folder, history, names):
    for name in names:
        want = [(epoch["epoch"], epoch[name]) for epoch in history if epoch.get(name) is not None]
        assert _rows(folder, name) == want, name  # exact: a float's text reads back to the same float
    summary = json.loads((folder / "metrics.json").read_text())
    assert summary == {"step": history[-1]["epoch"], **{name: history[-1][name] for name in names}}


def _uninterrupted(tmp_path_factory, kind: str, run):
    """An uninterrupted run with its live folder, and the resume state saved after each epoch."""
    folder, states = tmp_path_factory.mktemp(kind) / "live", []
    result = run(
        LiveMetrics(folder, LIVE_METRICS[kind]), save_state=lambda s: states.append(copy.deepcopy(s))
    )
    return folder, result, states


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    return _uninterrupted(tmp_path_factory, "search", _search)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _uninterrupted(tmp_path_factory, "train", _train)


def test_a_search_stage_writes_one_row_per_epoch_equal_to_its_history(searched):
    folder, result, _ = searched
    assert sorted(_files(folder)) == SEARCH_FILES
    _assert_matches(folder, result.history, LIVE_METRICS["search"])
    assert [step for step, _ in _rows(folder, "arch_loss")] == [1, 2]  # none in the warm-up epoch
    assert "seconds" not in (folder / "metrics.json").read_text()


def test_training_writes_one_row_per_epoch_equal_to_its_history(trained):
    folder, result, _ = trained
    assert sorted(_files(folder)) == TRAIN_FILES
    _assert_matches(folder, result.history, LIVE_METRICS["train"])
    assert LIVE_METRICS["transfer"] == LIVE_METRICS["train"]


def test_the_same_run_writes_the_same_bytes(searched, tmp_path):
    _search(LiveMetrics(tmp_path / "again", LIVE_METRICS["search"]))
    assert _files(tmp_path / "again") == _files(searched[0])


@pytest.mark.parametrize(("run", "step"), [(_search, "search"), (_train, "train")])
def test_a_resumed_run_ends_with_the_uninterrupted_runs_folder(searched, trained, tmp_path, run, step):
    folder, _, states = searched if step == "search" else trained
    resume = states[0]  # saved after the first of three epochs
    run(live_metrics(tmp_path / "live", step, resume), resume=resume)
    assert _files(tmp_path / "live") == _files(folder)


def test_an_earlier_runs_files_go_when_the_first_epoch_is_written(searched, tmp_path):
    folder = tmp_path / "live"
    (folder / "plots" / "metrics").mkdir(parents=True)
    (folder / "plots" / "metrics" / "train_loss.tsv").write_text("step\ttrain_loss\n0\t9.0\n")
    (folder / "plots" / "metrics" / "old.tsv").write_text("step\told\n0\t1.0\n")
    (folder / ".snakemake_timestamp").touch()  # Snakemake's marker of a directory() output
    earlier = _files(folder)
    live = LiveMetrics(folder, LIVE_METRICS["search"])
    assert _files(folder) == earlier  # kept while no epoch has ended: a failed start changes nothing
    for epoch in searched[1].history:
        live(epoch)
    assert _files(folder) == _files(searched[0])  # nothing appended, nothing left over
    LiveMetrics(folder, LIVE_METRICS["search"], searched[1].history[:1])  # a resume: replaced at once
    assert _files(folder)["plots/metrics/train_loss.tsv"].count(b"\n") == 2


def test_a_folder_with_other_files_is_refused_at_once(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "model.pt").write_bytes(b"weights")
    with pytest.raises(PdartsError, match="holds files dvclive does not write \\(model.pt\\)"):
        LiveMetrics(tmp_path / "results", LIVE_METRICS["train"])
    with pytest.raises(PdartsError, match="is a file"):
        LiveMetrics(tmp_path / "results" / "model.pt", LIVE_METRICS["train"])
    assert _files(tmp_path / "results") == {"model.pt": b"weights"}
    assert live_metrics(None, "train", None) is None  # no folder asked for
    assert live_metrics(tmp_path / "live", "train", None, is_main=False) is None  # not the first process
    assert not (tmp_path / "live").exists()


def test_the_files_are_those_of_dvclives_own_next_step_loop(searched, tmp_path, monkeypatch):
    from dvclive import Live

    monkeypatch.chdir(tmp_path)  # outside any repository: a plain Live writes into the one it is in
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "1")
    live = Live(str(tmp_path / "stock"), dvcyaml=None, save_dvc_exp=False, report=None)
    for epoch in searched[1].history:
        for name in LIVE_METRICS["search"]:
            if epoch[name] is not None:
                live.log_metric(name, epoch[name], timestamp=False)
        live.next_step()
    assert _files(tmp_path / "stock") == _files(searched[0])


def test_nothing_is_written_outside_the_folder_nor_sent_to_studio(searched, tmp_path, monkeypatch):
    """In a Git repository without DVC (where a plain Live runs `dvc init`), under `dvc repro`
    (DVC_ROOT: a plain Live's next_step writes .dvc/tmp/exps/run/...) and with a Studio token."""
    import dvclive.studio

    posts = []
    monkeypatch.setattr(dvclive.studio, "post_live_metrics", lambda *args, **kwargs: posts.append(args))
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (tmp_path / "pipeline" / ".dvc").mkdir(parents=True)
    monkeypatch.chdir(repo)
    for name, value in {"DVC_ROOT": tmp_path / "pipeline", "DVC_STUDIO_TOKEN": "isat_x"}.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("DVC_STUDIO_REPO_URL", "https://example.invalid/repo.git")
    monkeypatch.delenv("DVC_STUDIO_OFFLINE", raising=False)
    LiveMetrics("live", LIVE_METRICS["search"], searched[1].history)
    everything = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if ".git" not in p.parts)
    live = ["repo/live", *[f"repo/live/{name}" for name in _tree(SEARCH_FILES)]]
    assert everything == sorted(["pipeline", "pipeline/.dvc", "repo", *live])
    assert not posts
    status = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True)
    assert status.stdout == "?? live/\n"  # nothing staged, nothing else new


def _tree(files):
    """The files and the folders above them."""
    entries = set(files)
    for name in files:
        parts = name.split("/")
        entries |= {"/".join(parts[:i]) for i in range(1, len(parts))}
    return sorted(entries)
