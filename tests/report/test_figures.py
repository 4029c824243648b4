"""Run figures: every function writes a PNG, the same bytes on every call, for stage-1-like (8 ops per
edge), stage-3-like (3 ops) and committed data; trajectories without recorded op weights are refused."""

from __future__ import annotations

import json
import math

import pytest
from matplotlib.colors import to_hex

from pdarts.errors import PdartsError
from pdarts.report import figures
from pdarts.search_space import CELL_TYPES, EDGES, PRIMITIVES

from ..conftest import ROOT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _edge_ops(index: int, keep: int) -> list[str]:
    """A different set of ``keep`` ops on every edge (canonical order)."""
    chosen = {PRIMITIVES[(index + 3 * k) % len(PRIMITIVES)] for k in range(keep)}
    return [op for op in PRIMITIVES if op in chosen]


def _softmax(values: list[float]) -> list[float]:
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def _alphas(keep: int) -> dict:
    stage = {}
    for cell_index, cell in enumerate(CELL_TYPES):
        edges = []
        for index, (node, source) in enumerate(EDGES):
            ops = _edge_ops(index + cell_index, keep)
            alpha = [0.01 * ((index * 7 + k * 3) % 5) for k in range(len(ops))]
            edges.append(
                {"source": source, "target": node + 2, "ops": ops, "alpha": alpha, "weights": _softmax(alpha)}
            )
        stage[cell] = edges
    return stage


def _history(keep: int, epochs: int = 3, warmup: int = 1) -> list[dict]:
    alphas = _alphas(keep)
    history = []
    for epoch in range(epochs):
        grow = max(0, epoch - warmup + 1)
        probabilities = {
            cell: [
                dict(zip(edge["ops"], _softmax([grow * a * 10 for a in edge["alpha"]])))
                for edge in alphas[cell]
            ]
            for cell in CELL_TYPES
        }
        history.append(
            {
                "epoch": epoch,
                "warmup": epoch < warmup,
                "lr": 0.025 / (epoch + 1),
                "skip_dropout": 0.0 if epoch < warmup else 0.1,
                "train_loss": 2.0 / (epoch + 1),
                "train_acc": 0.3 + 0.1 * epoch,
                "arch_loss": None if epoch < warmup else 2.2 / (epoch + 1),
                "arch_acc": None if epoch < warmup else 0.25 + 0.1 * epoch,
                "op_probabilities": probabilities,
            }
        )
    return history


def _training_history(drop_path: bool = True) -> list[dict]:
    history = [
        {
            "epoch": e,
            "lr": 0.05 * (1 - e / 4),
            "train_loss": 2.0 - 0.3 * e,
            "train_acc": 0.4 + 0.1 * e,
            "samples": 10,
        }
        for e in range(4)
    ]
    for entry in history:
        if drop_path:
            entry["drop_path"] = 0.02 * entry["epoch"]
    return history


def _draw(kind: str, data, path):
    draw = {
        "heatmap": figures.alpha_heatmap,
        "trajectories": figures.op_trajectories,
        "search": figures.search_curves,
        "training": figures.training_curves,
    }[kind]
    draw(data, f"{kind} test", path)
    return path.read_bytes()


CASES = {
    "heatmap": lambda: _alphas(keep=5),
    "trajectories": lambda: _history(keep=5),
    "search": lambda: _history(keep=5),
    "training": _training_history,
}


@pytest.mark.parametrize("kind", CASES)
def test_each_figure_is_a_png_with_the_same_bytes_every_time(tmp_path, kind):
    data = CASES[kind]()
    first = _draw(kind, data, tmp_path / "first.png")
    assert first.startswith(PNG_MAGIC)
    assert 10_000 < len(first) < 5_000_000
    assert _draw(kind, data, tmp_path / "second.png") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.png", "second.png"]  # no temporary left


@pytest.mark.parametrize("kind", ["heatmap", "trajectories", "search"])
def test_stage3_like_data_with_three_ops_per_edge(tmp_path, kind):
    data = _alphas(keep=3) if kind == "heatmap" else _history(keep=3, epochs=4, warmup=2)
    assert _draw(kind, data, tmp_path / f"{kind}.png").startswith(PNG_MAGIC)


def test_the_committed_stage1_op_weights_draw(tmp_path):
    """The committed history's op weights per epoch (its alphas.json is in DVC's cache, not in git)."""
    history = json.loads((ROOT / "results/search/stage1/history.json").read_text())
    assert _draw("trajectories", history, tmp_path / "trajectories.png").startswith(PNG_MAGIC)


def test_alphas_without_weights_are_softmaxed(tmp_path):
    alphas = _alphas(keep=4)
    for cell in CELL_TYPES:
        for edge in alphas[cell]:
            del edge["weights"]
    assert _draw("heatmap", alphas, tmp_path / "alphas.png").startswith(PNG_MAGIC)


def test_the_committed_histories_draw_as_curves(tmp_path):
    search = json.loads((ROOT / "results/search/stage1/history.json").read_text())
    training = json.loads((ROOT / "results/train/history.json").read_text())
    assert _draw("search", search, tmp_path / "search.png").startswith(PNG_MAGIC)
    assert _draw("training", training, tmp_path / "train.png").startswith(PNG_MAGIC)


def test_single_epoch_and_no_drop_path_still_draw(tmp_path):
    assert _draw("trajectories", _history(keep=8, epochs=1, warmup=0), tmp_path / "t.png").startswith(
        PNG_MAGIC
    )
    assert _draw("training", _training_history(drop_path=False), tmp_path / "c.png").startswith(PNG_MAGIC)


def test_trajectories_need_recorded_op_probabilities(tmp_path):
    history = _history(keep=5)
    for entry in history:
        del entry["op_probabilities"]
    with pytest.raises(PdartsError, match="op_probabilities"):
        figures.op_trajectories(history, "no weights", tmp_path / "t.png")
    assert not list(tmp_path.iterdir())


def test_bad_alphas_are_refused(tmp_path):
    alphas = _alphas(keep=5)
    alphas["reduce"] = alphas["reduce"][:10]
    with pytest.raises(PdartsError, match="14 edges"):
        figures.alpha_heatmap(alphas, "bad", tmp_path / "a.png")


def test_every_op_has_its_own_colour():
    assert set(figures.OP_COLOURS) == set(PRIMITIVES)
    colours = [to_hex(figures.OP_COLOURS[op]) for op in PRIMITIVES]
    assert len(set(colours)) == len(PRIMITIVES)


def test_edge_labels():
    assert [figures.edge_label(source, node + 2) for node, source in EDGES[:3]] == [
        "c_{k-2}→0",
        "c_{k-1}→0",
        "c_{k-2}→1",
    ]
    assert figures.edge_label(2, 3) == "0→1"


def test_all_stages_side_by_side_draw_one_png_per_call_with_the_same_bytes(tmp_path):
    histories = {"stage1": _history(8, epochs=4, warmup=2), "stage2": _history(5), "stage3": _history(3)}
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    figures.stages_curves(histories, "stages", first)
    figures.stages_curves(histories, "stages", second)
    assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and first.read_bytes() == second.read_bytes()
    with pytest.raises(PdartsError, match="no search stage"):
        figures.stages_curves({}, "stages", tmp_path / "c.png")
