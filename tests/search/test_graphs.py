"""search.common.cuda_graph: the steps replayed from a graph are the eager steps.

On the CPU a stand-in graph runs the step again at each replay and copies its statistics into the
recorded ones (as a CUDA graph's replay overwrites them), so everything around the graph (the eager
warm-up steps, the recorded step's own inputs refilled from each batch, the smaller last batch
run eagerly, a new graph each epoch, the statistics used before the next replay) is checked here
exactly. Where a GPU is, the real CUDA graphs are checked against eager steps too.
"""

import dataclasses
import logging

import pytest
import torch

from pdarts.search import graphs, stage
from pdarts.search.graphs import GraphedSteps
from pdarts.search.stage import run_search_stage
from pdarts.state import make_reproducible

from .test_speed import CANDIDATES, DROPOUT, FP32, STAGE, _alphas, _batches


class EagerGraph:
    """A graph that records by running the call, and replays by running it again: a CUDA graph's
    semantics (a replay overwrites the recorded outputs, reading the recorded inputs) on the CPU."""

    ran_while_recording = True
    made: list["EagerGraph"] = []

    def __init__(self) -> None:
        self.replays = 0
        EagerGraph.made.append(self)

    def record(self, call):
        self.call = call
        self.outputs = call()
        return self.outputs

    def replay(self) -> None:
        self.replays += 1
        for split, values in self.call().items():
            for recorded, value in zip(self.outputs[split], values):
                if isinstance(recorded, torch.Tensor):
                    recorded.copy_(value)
                else:
                    assert recorded == value


def _run(settings, batches: int, last: int, stage_=DROPOUT):
    """A stage over ``batches`` batches of 16 images and a last one of ``last`` (0: none)."""
    weight, arch = _batches(1, batches), _batches(2, batches)
    if last:
        weight.append(tuple(t[:last] for t in _batches(3, 1)[0]))
    return run_search_stage(CANDIDATES, settings, stage_, weight, arch, num_classes=3, in_channels=1)


def test_replayed_steps_give_exactly_the_eager_search(monkeypatch):
    settings = dataclasses.replace(FP32, epochs=3, warmup_epochs=1)
    eager = _run(settings, batches=6, last=5)
    EagerGraph.made.clear()
    monkeypatch.setattr(stage, "graph_refusal", lambda *args: None)
    monkeypatch.setattr(graphs, "CudaGraph", EagerGraph)
    graphed = _run(dataclasses.replace(settings, cuda_graph=True), batches=6, last=5)
    # One graph per epoch (a warm-up epoch's weight-only step, then full steps), each replayed for
    # the steps after the three eager ones and the recorded one; the last, smaller batch ran eagerly.
    assert [graph.replays for graph in EagerGraph.made] == [2, 2, 2]
    assert torch.equal(_alphas(eager), _alphas(graphed))
    for name, value in eager.model.state_dict().items():
        assert torch.equal(value, graphed.model.state_dict()[name]), name
    for before, after in zip(eager.history, graphed.history):
        assert {k: v for k, v in before.items() if k != "seconds"} == {
            k: v for k, v in after.items() if k != "seconds"
        }


def test_an_epoch_shorter_than_the_warm_up_runs_eagerly(monkeypatch):
    made = []
    monkeypatch.setattr(graphs, "CudaGraph", lambda: made.append(1))
    calls = []
    steps = GraphedSteps(lambda w, a: calls.append(w) or {}, torch.device("cpu"), graphs.CudaGraph)
    for batch in _batches(1, 3):
        steps(batch, None)
    assert len(calls) == 3 and not made


def test_the_setting_is_refused_with_a_warning_where_graphs_cannot_run(caplog):
    with caplog.at_level(logging.WARNING, logger="pdarts.search.stage"):
        cpu = _run(dataclasses.replace(FP32, cuda_graph=True), batches=2, last=0, stage_=STAGE)
    assert "cuda_graph: CUDA graphs need a CUDA device, not cpu; the steps run eagerly" in caplog.text
    assert torch.equal(_alphas(cpu), _alphas(_run(FP32, batches=2, last=0, stage_=STAGE)))
    on = dataclasses.replace(FP32, cuda_graph=True)
    cuda, fp32 = torch.device("cuda"), stage.FP32
    assert "compile" in stage.graph_refusal(dataclasses.replace(on, compile=True), cuda, fp32)
    assert "checkpoint" in stage.graph_refusal(dataclasses.replace(on, checkpoint_cells=True), cuda, fp32)
    fp16 = dataclasses.replace(fp32, dtype=torch.float16)
    assert "fp16" in stage.graph_refusal(on, cuda, fp16)
    assert stage.graph_refusal(on, cuda, fp32) is None


@pytest.fixture
def deterministic():
    """The pipeline's conditions (``search_loaders`` calls ``make_reproducible``), undone afterwards."""
    make_reproducible(0)
    yield
    torch.use_deterministic_algorithms(False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cuda_graphs_replay_the_eager_steps_on_a_gpu(monkeypatch, deterministic):
    replays = []

    class Counted(graphs.CudaGraph):
        def replay(self) -> None:
            replays.append(1)
            super().replay()

    monkeypatch.setattr(graphs, "CudaGraph", Counted)
    settings = dataclasses.replace(FP32, epochs=2, warmup_epochs=1, device="cuda")
    # Loaders as the pipeline's on a GPU: pinned batches, from a worker, with a pin-memory thread
    # that allocates while graphs record.
    weight, arch = (
        torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(*map(torch.cat, zip(*_batches(seed, 8)))),
            batch_size=16,
            num_workers=1,
            pin_memory=True,
        )
        for seed in (1, 2)
    )

    def run(cuda_graph: bool, stage_=STAGE):
        return run_search_stage(
            CANDIDATES, dataclasses.replace(settings, cuda_graph=cuda_graph), stage_, weight, arch,
            num_classes=3, in_channels=1, device="cuda",
        )  # fmt: skip

    eager, graphed = run(False), run(True)
    assert len(replays) == 2 * (8 - 3)  # every step after the warm-up ones: the recorded one too
    torch.testing.assert_close(_alphas(graphed), _alphas(eager), rtol=1e-4, atol=1e-5)
    for before, after in zip(eager.history, graphed.history):
        assert after["train_loss"] == pytest.approx(before["train_loss"], rel=1e-4)
    # With skip dropout, drawn through the graph's random offsets: two graphed runs alike (to float
    # rounding: some CUDA backward kernels, max pooling's, add atomically), where other masks would
    # move the alphas far more.
    first, second = _alphas(run(True, DROPOUT)), _alphas(run(True, DROPOUT))
    torch.testing.assert_close(first, second, rtol=1e-4, atol=1e-5)
