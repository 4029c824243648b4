"""The evaluation cell built from a genotype, and the stack of cells both networks share
(docs/algorithm.md#search-space, docs/algorithm.md#evaluation-networks).

A cell preprocesses its two inputs (c_{k-2}, c_{k-1}) to ``channels`` channels; each of its 4
nodes is the sum of 2 ops of the genotype applied to earlier states; its output concatenates the
genotype's ``concat`` nodes. In a reduction cell the ops reading the cell inputs have stride 2.
Every op output except an identity (the stride-1 ``skip_connect``) goes through drop-path.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..fast_ops import BatchNorm2d
from ..genotype import Genotype
from ..layers import DropPath, dense_gradient
from ..operations import FactorizedReduce, ReLUConvBN, build_op
from ..search_space import NUM_NODES

__all__ = [
    "EvalCell",
    "CellStack",
    "EvalNetwork",
    "cell_inputs",
    "image_stem",
    "preprocess",
    "reads_activated",
    "reduction_indices",
    "run_cells",
    "stack_cells",
]


def image_stem(in_channels: int, channels: int) -> nn.Sequential:
    """The small-image stem of the CIFAR network and the supernet: a 3x3 convolution and BatchNorm."""
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), BatchNorm2d(channels))


def cell_inputs(
    c_prev_prev: int, c_prev: int, channels: int, reduction_prev: bool, affine: bool
) -> tuple[nn.Module, nn.Module]:
    """The preprocessing of a cell's two inputs to ``channels`` channels; input 0 is reduced when the
    previous cell was a reduction cell (it then has twice the resolution of input 1)."""
    if reduction_prev:
        preprocess0 = FactorizedReduce(c_prev_prev, channels, affine=affine)
    else:
        preprocess0 = ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine=affine)
    return preprocess0, ReLUConvBN(c_prev, channels, 1, 1, 0, affine=affine)


def preprocess(cell: nn.Module, s0: torch.Tensor, s1: torch.Tensor, activated: bool) -> list[torch.Tensor]:
    """``cell``'s two preprocessed inputs. Both preprocessing ops start with a ReLU; with ``activated``,
    ``s0`` and ``s1`` went through it already and the ops start after it."""
    if activated:
        return [cell.preprocess0.forward_activated(s0), cell.preprocess1.forward_activated(s1)]
    return [cell.preprocess0(s0), cell.preprocess1(s1)]


def reads_activated(cell: nn.Module) -> bool:
    """Whether ``cell`` can take its inputs through their ReLU (``preprocess``)."""
    return all(hasattr(op, "forward_activated") for op in (cell.preprocess0, cell.preprocess1))


def run_cells(
    cells: Sequence, s0: torch.Tensor, s1: torch.Tensor, call=None, keep: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Runs ``cells`` in turn, each reading the two states before it; returns the last cell's output and
    cell ``keep``'s. ``call(index, a0, a1, activated)`` runs cell ``index`` (default:
    ``cells[index](a0, a1, activated=activated)``).

    Every cell output but the last is read by the next two cells, each starting with a ReLU of it: the
    ReLU is computed once for both (and kept once for the backward pass) where the cells take
    activated inputs (``reads_activated``).
    """
    call = call or (lambda index, a0, a1, activated: cells[index](a0, a1, activated=activated))
    activated = all(reads_activated(cell) for cell in cells)
    if activated:
        s0, s1 = (F.relu(s0), F.relu(s1)) if s1 is not s0 else (F.relu(s0),) * 2
    out = kept = None
    for index in range(len(cells)):
        out = call(index, s0, s1, activated)
        if index == keep:
            kept = out
        s0, s1 = s1, (F.relu(out) if activated and index + 1 < len(cells) else out)
    return out, kept


def stack_cells(
    num_cells: int, c_prev_prev: int, c_prev: int, channels: int, make_cell, reduction_prev: bool = False
) -> list[nn.Module]:
    """``num_cells`` cells, reductions at L//3 and 2L//3 with the channels doubled at each.

    ``make_cell(c_prev_prev, c_prev, channels, reduction, reduction_prev)`` builds one cell, which
    says its ``out_channels``; each cell reads the outputs of the two before it.
    """
    reductions = reduction_indices(num_cells)
    cells = []
    for index in range(num_cells):
        reduction = index in reductions
        if reduction:
            channels *= 2
        cells.append(make_cell(c_prev_prev, c_prev, channels, reduction, reduction_prev))
        reduction_prev = reduction
        c_prev_prev, c_prev = c_prev, cells[-1].out_channels
    return cells


class EvalCell(nn.Module):
    """One cell of an evaluation network (all BatchNorm affine).

    Args:
        genotype: the architecture; its ``reduce`` or ``normal`` half is used.
        c_prev_prev: channels of input 0 (the output of the cell before the previous one).
        c_prev: channels of input 1 (the output of the previous cell).
        channels: channels of every node; the output has ``len(concat) * channels``.
        reduction: whether this is a reduction cell (half resolution).
        reduction_prev: whether the previous cell was one (input 0 then has twice this
            cell's resolution and is reduced by a ``FactorizedReduce``).
    """

    def __init__(
        self,
        genotype: Genotype,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = cell_inputs(c_prev_prev, c_prev, channels, reduction_prev, True)
        pairs = genotype.reduce if reduction else genotype.normal
        self.concat: tuple[int, ...] = tuple(genotype.reduce_concat if reduction else genotype.normal_concat)
        self.inputs: tuple[int, ...] = tuple(source for _, source in pairs)
        self.ops = nn.ModuleList(
            build_op(name, channels, 2 if reduction and source < 2 else 1, affine=True)
            for name, source in pairs
        )
        # Drop-path on every op output but an identity's (DARTS's evaluation cell does the same).
        self.drop_path = DropPath()
        self._drops_path = tuple(not isinstance(op, nn.Identity) for op in self.ops)
        self.out_channels = len(self.concat) * channels

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, activated: bool = False) -> torch.Tensor:
        """The cell on its inputs, or on their ReLUs with ``activated`` (see ``preprocess``)."""
        states = preprocess(self, s0, s1, activated)
        ops_per_node = len(self.ops) // NUM_NODES
        for node in range(NUM_NODES):
            node_sum = None
            for k in range(node * ops_per_node, (node + 1) * ops_per_node):
                out = self.ops[k](states[self.inputs[k]])
                if self._drops_path[k]:
                    out = self.drop_path(out)
                node_sum = out if node_sum is None else node_sum + out
            states.append(dense_gradient(node_sum))
        return torch.cat([states[i] for i in self.concat], dim=1)


class CellStack(nn.ModuleList):
    """``num_cells`` evaluation cells, reductions at L//3 and 2L//3 (channels doubled at each).

    Args:
        genotype: the architecture of every cell.
        num_cells: L.
        c_prev_prev: channels of the first cell's input 0.
        c_prev: channels of the first cell's input 1.
        channels: C, the node channels of the first cells.
        reduction_prev: whether the first cell's input 0 has twice its input 1's resolution
            (the ImageNet stem).

    Attributes:
        out_channels: channels of the last cell's output.
        auxiliary_index: the cell after which an auxiliary head reads (2L//3, the second reduction).
        auxiliary_channels: channels of that cell's output.
    """

    def __init__(
        self,
        genotype: Genotype,
        num_cells: int,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction_prev: bool = False,
    ) -> None:
        if num_cells < 1:
            raise ValueError(f"num_cells must be >= 1, got {num_cells}")
        super().__init__(
            stack_cells(num_cells, c_prev_prev, c_prev, channels, partial(EvalCell, genotype), reduction_prev)
        )
        self.auxiliary_index = 2 * num_cells // 3
        self.auxiliary_channels = self[self.auxiliary_index].out_channels  # 2L//3 < L: always a cell
        self.out_channels = self[-1].out_channels
        self._drop_path_prob = 0.0

    @property
    def drop_path_prob(self) -> float:
        """The drop-path rate of every cell (CIFAR: 0.3 * epoch / epochs, set by the training loop;
        docs/algorithm.md#cifar-training-recipe)."""
        return self._drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, value: float) -> None:
        for cell in self:
            cell.drop_path.drop_prob = value
        self._drop_path_prob = float(value)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Runs every cell.

        Returns:
            The last cell's output and the output of cell ``auxiliary_index``.
        """
        return run_cells(self, s0, s1, keep=self.auxiliary_index)


def reduction_indices(num_cells: int) -> Sequence[int]:
    """Indices of the reduction cells: L//3 and 2L//3 (one cell when they coincide)."""
    return sorted({num_cells // 3, 2 * num_cells // 3})


class EvalNetwork(nn.Module):
    """What the CIFAR and ImageNet networks share: their cells, the auxiliary head read after cell
    2L//3 (in training only), global average pooling and the classifier. A subclass builds
    ``cells``, ``auxiliary_head`` (or None) and ``classifier``, and defines ``stems``.
    """

    cells: CellStack
    auxiliary_head: nn.Module | None
    classifier: nn.Linear

    def stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two inputs of the first cell."""
        raise NotImplementedError

    @property
    def drop_path_prob(self) -> float:
        return self.cells.drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, value: float) -> None:
        self.cells.drop_path_prob = value

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns ``(logits, auxiliary_logits)``; the latter is None unless training with the head."""
        out, auxiliary_input = self.cells(*self.stems(x))
        # Global average pooling (DARTS: AvgPool2d(7) on ImageNet's 7x7 map; the mean fits any size).
        logits = self.classifier(out.mean((2, 3)))
        auxiliary_logits = None
        if self.auxiliary_head is not None and self.training:
            auxiliary_logits = self.auxiliary_head(auxiliary_input)
        return logits, auxiliary_logits
