"""Search steps replayed from a CUDA graph (``search.common.cuda_graph``).

On a GPU a search step is bound by launching its thousands of small kernels, not by running them
(README "On a GPU": an H200 took about 0.4 s per stage-1 step at batch 32 and at batch 96). A CUDA
graph records one step's kernels, both updates and both optimizers included, and replays them with
one launch: on that H200 these graphed steps ran 4.1x (stage 1, batch 96) to 6.0x (stage 3, batch
32) the straightforward step's speed, in one run of ``pdarts bench``, and a stage-1 epoch took 48.7 s
against 118 s eager.

``GraphedSteps`` runs the steps of one epoch (whose learning rate, skip dropout and kind of step are
fixed; the next epoch records its own graph): a few eager steps on a side stream (lazily made state:
momentum buffers, kernel choices), then one recording, then a replay per step, each batch copied
into the recorded step's input tensors first. A batch of another shape (the last, smaller one of an
epoch) runs eagerly. What a replay returns is the recorded step's statistics, overwritten by the
next replay: a caller uses them before the next step (the epoch's meters add them up at once).

The step is the same computation as the eager one; its random draws (skip dropout) come from the
graph's own offsets of the CUDA generator, so a graphed search is not bit-identical to an eager one
(whether two graphed runs are identical to each other has not been checked on a GPU yet).
Recording needs no host synchronisation inside the step (``search_step`` keeps its statistics on
the device) and Adam's ``capturable`` (``build_search`` sets it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

__all__ = ["CudaGraph", "Graph", "GraphedSteps", "WARMUP_STEPS"]

#: Eager steps before the recording in each epoch (PyTorch's examples use 3 for a whole network).
WARMUP_STEPS = 3

Batch = tuple[torch.Tensor, torch.Tensor]
Step = Callable[[Batch, "Batch | None"], dict[str, Any]]


class Graph(Protocol):
    """What ``GraphedSteps`` needs of a graph: record a call, and replay it."""

    ran_while_recording: bool  # whether recording also ran the call (a CUDA graph's does not)

    def record(self, call: Callable[[], Any]) -> Any: ...

    def replay(self) -> None: ...


class CudaGraph:
    """A ``torch.cuda.CUDAGraph``: recording launches nothing; a replay runs the recorded kernels."""

    ran_while_recording = False

    def __init__(self) -> None:
        self.graph = torch.cuda.CUDAGraph()

    def record(self, call: Callable[[], Any]) -> Any:
        # thread_local: a loader's pin-memory thread allocating pinned memory meanwhile is no error
        # (the default, global, refuses such calls from every thread while a graph records).
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            return call()

    def replay(self) -> None:
        self.graph.replay()


def _tensors(batches: tuple[Batch | None, ...]) -> list[torch.Tensor]:
    return [t for batch in batches if batch is not None for t in batch]


class GraphedSteps:
    """``step(weight_batch, arch_batch)`` for the steps of one epoch, replayed from one graph.

    ``step`` takes batches on ``device``; the batches given here may be anywhere (a loader's pinned
    CPU tensors are copied without blocking). ``new_graph`` makes the graph (``CudaGraph``; the
    tests give one that calls the step again, to check everything around it on the CPU).
    """

    def __init__(
        self,
        step: Step,
        device: torch.device,
        new_graph: Callable[[], Graph] = CudaGraph,
        warmup_steps: int = WARMUP_STEPS,
    ) -> None:
        self.step, self.device, self.new_graph, self.warmup_steps = step, device, new_graph, warmup_steps
        self.eager_steps = 0
        self.graph: Graph | None = None
        self.inputs: list[torch.Tensor] = []  # the recorded step's batches, refilled before each replay
        self.stats: dict[str, Any] = {}
        self.shapes: list[tuple] | None = None
        self.side: torch.cuda.Stream | None = None

    def __call__(self, weight_batch: Batch, arch_batch: Batch | None) -> dict[str, Any]:
        shapes = [tuple(t.shape) for t in _tensors((weight_batch, arch_batch))]
        shapes.append((arch_batch is None,))
        if self.shapes is None:
            self.shapes = shapes
        if shapes != self.shapes:  # another shape (the epoch's last batch): eagerly
            return self.step(*self._on_device(weight_batch, arch_batch))
        if self.graph is None and self.eager_steps < self.warmup_steps:
            self.eager_steps += 1
            return self._on_side_stream(lambda: self.step(*self._on_device(weight_batch, arch_batch)))
        if self.graph is None:
            return self._record(weight_batch, arch_batch)
        self._fill(weight_batch, arch_batch)
        self.graph.replay()
        return self.stats

    def _on_device(self, weight_batch: Batch, arch_batch: Batch | None) -> tuple[Batch, Batch | None]:
        def moved(batch):
            return None if batch is None else tuple(t.to(self.device, non_blocking=True) for t in batch)

        return moved(weight_batch), moved(arch_batch)

    def _on_side_stream(self, call: Callable[[], Any]) -> Any:
        if self.device.type != "cuda":
            return call()
        if self.side is None:  # one side stream for the epoch's warm-up steps, as PyTorch's recipe
            self.side = torch.cuda.Stream(self.device)
        side = self.side
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            result = call()
        torch.cuda.current_stream(self.device).wait_stream(side)
        return result

    def _record(self, weight_batch: Batch, arch_batch: Batch | None) -> dict[str, Any]:
        weight, arch = self._on_device(weight_batch, arch_batch)
        weight = tuple(t.clone() for t in weight)  # inputs of the graph's own, never a loader's
        arch = None if arch is None else tuple(t.clone() for t in arch)
        self.inputs = _tensors((weight, arch))
        self.graph = self.new_graph()
        self.stats = self.graph.record(lambda: self.step(weight, arch))
        if not self.graph.ran_while_recording:
            self.graph.replay()  # this step itself
        return self.stats

    def _fill(self, weight_batch: Batch, arch_batch: Batch | None) -> None:
        for target, source in zip(self.inputs, _tensors((weight_batch, arch_batch))):
            target.copy_(source, non_blocking=True)
