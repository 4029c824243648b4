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


NO_GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=NO_GPU)]


def _graphed_steps(monkeypatch, device: str, stage_):
    """A supernet's parts on ``device`` and its graphed step of an epoch of full steps, recorded
    after the eager warm-up steps (on the CPU, with the stand-in graph), and the next batches."""
    if device == "cpu":
        monkeypatch.setattr(stage, "graph_refusal", lambda *args: None)
        monkeypatch.setattr(graphs, "CudaGraph", EagerGraph)
    settings = dataclasses.replace(FP32, cuda_graph=True, device=device)
    torch.manual_seed(0)
    parts = stage.build_search(CANDIDATES, settings, stage_, 3, 1, torch.device(device))
    parts.model.set_skip_dropout(stage_.skip_dropout)
    parts.model.train()
    steps = stage.epoch_step(parts, parts.precision.grad_scaler(), settings, torch.device(device), False)
    assert isinstance(steps, GraphedSteps)
    pin = device == "cuda"  # as the pipeline's loaders give them on a GPU
    pairs = [
        tuple(tuple(t.pin_memory() if pin else t for t in batch) for batch in pair)
        for pair in zip(_batches(1, 6), _batches(2, 6))
    ]
    for weight, arch in pairs[: graphs.WARMUP_STEPS + 1]:  # the eager ones, then the recorded one
        steps(weight, arch)
    assert steps.graph is not None
    return parts, steps, pairs[graphs.WARMUP_STEPS + 1 :]


def _state(parts) -> dict[str, torch.Tensor]:
    """Every tensor a step changes, live: the network's parameters and buffers, both optimizers' state."""
    tensors = {f"model.{name}": value for name, value in parts.model.state_dict().items()}
    for name, optimizer in (("weight", parts.weight_optimizer), ("alpha", parts.alpha_optimizer)):
        for index, state in enumerate(optimizer.state.values()):
            tensors.update({f"{name}.{index}.{k}": v for k, v in state.items() if torch.is_tensor(v)})
    return tensors


def _copy(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in tensors.items()}


def _restore(parts, saved: dict[str, torch.Tensor]) -> None:
    """Back to ``saved``, in place: a recorded graph reads and writes these very tensors."""
    live = _state(parts)
    assert live.keys() == saved.keys()
    for name, value in saved.items():
        live[name].copy_(value)


def _stats(stats) -> list[torch.Tensor]:
    return [torch.as_tensor(v).detach().cpu().clone() for split in ("arch", "train") for v in stats[split]]


@pytest.mark.parametrize("device", DEVICES)
def test_a_replay_is_the_eager_step_from_the_same_state(monkeypatch, deterministic, device):
    """Replayed on a batch that is not the recorded one (so its inputs must be refilled), a graph
    changes every parameter, buffer and optimizer state as the eager step does from the same state.

    One step from one state: over several steps, float rounding grows (CUDA's max-pool backward adds
    atomically; on the CPU a 1e-7 relative change of the inputs moved these alphas by 6e-5 after ten
    steps), so longer runs are compared on their losses (below) and here on one step exactly.
    """
    parts, steps, (pair, *_) = _graphed_steps(monkeypatch, device, STAGE)
    before = _copy(_state(parts))
    replayed_stats = _stats(steps(*pair))
    replayed = _copy(_state(parts))
    _restore(parts, before)
    eager_stats = _stats(steps.step(*(tuple(t.to(device) for t in batch) for batch in pair)))
    eager = _copy(_state(parts))
    alphas = [name for name in before if "alpha" in name and name.startswith("model.")]
    assert alphas and all(not torch.equal(replayed[name], before[name]) for name in alphas)
    for name, value in eager.items():
        if device == "cpu":
            assert torch.equal(replayed[name], value), name
        else:  # float rounding: some CUDA backward kernels (max pooling's) add atomically
            torch.testing.assert_close(replayed[name], value, rtol=1e-5, atol=1e-6, msg=name)
    torch.testing.assert_close(replayed_stats, eager_stats, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_each_replay_draws_new_skip_dropout_masks(monkeypatch, deterministic, device):
    """Twice from the same state on the same batch, with skip dropout: the masks are drawn anew at each
    replay (on CUDA from the graph's own random offsets), not fixed when the graph was recorded."""
    parts, steps, (pair, *_) = _graphed_steps(monkeypatch, device, DROPOUT)
    before = _copy(_state(parts))
    first = _stats(steps(*pair))
    _restore(parts, before)
    second = _stats(steps(*pair))
    arch_loss = first[0], second[0]  # the step's first forward pass: only the masks differ
    assert abs(arch_loss[0] - arch_loss[1]) > 1e-4 * abs(arch_loss[0])  # far above float rounding


@NO_GPU
def test_a_graphed_stage_fed_by_pinned_loaders_on_a_gpu(monkeypatch, deterministic):
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

    def run(cuda_graph: bool):
        return run_search_stage(
            CANDIDATES, dataclasses.replace(settings, cuda_graph=cuda_graph), STAGE, weight, arch,
            num_classes=3, in_channels=1, device="cuda",
        )  # fmt: skip

    eager, graphed = run(False), run(True)
    assert len(replays) == 2 * (8 - 3)  # every step after the warm-up ones: the recorded one too
    # Ten steps apart, float rounding has grown (see above): the losses agree, the alphas are close.
    for before, after in zip(eager.history, graphed.history, strict=True):
        for key in ("train_loss", "arch_loss"):  # no architecture update in the warm-up epoch
            assert after[key] == (None if before[key] is None else pytest.approx(before[key], rel=1e-3))
    torch.testing.assert_close(_alphas(graphed), _alphas(eager), rtol=0, atol=1e-3)
