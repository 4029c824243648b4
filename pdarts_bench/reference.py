"""The straightforward implementation of a search step and a training step: the benchmark's baseline.

Written from docs/algorithm.md as a first implementation would be, so that "pdarts / straightforward"
is measured in the same run on any machine: every op alive on an edge is computed (``none`` too)
and multiplied by its softmax weight, the products summed; plain ReLUs (never in place), plain
``nn.Dropout`` after every stride-1 skip-connect, stride-2 convolutions as they are written, fp32 in
the contiguous layout; each update runs one backward pass over all parameters (weights and alphas)
and steps its own optimizer, as the authors' first-order search does.

The modules are named as the library's, so a library model's ``state_dict`` loads into its
reference twin: ``tests/bench/test_reference.py`` checks that both compute the same losses and
gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pdarts import fast_ops
from pdarts.networks.cell import image_stem, stack_cells
from pdarts.search_space import CELL_TYPES, EDGES, NUM_NODES, Candidates, canonical_order

__all__ = ["ReferenceSupernet", "reference_op", "reference_search_step", "to_reference"]


class Zero(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convolutions (the second on the input shifted by one pixel), concat, BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _relu_conv(c: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool) -> nn.Sequential:
    """ReLU, depthwise kxk convolution, pointwise 1x1 convolution, BN."""
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c, c, kernel, stride, padding, dilation, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c, affine=affine),
    )


def reference_op(name: str, c: int, stride: int, affine: bool, search: bool, dropout: bool) -> nn.Module:
    """Op ``name`` as docs/algorithm.md describes it; in a supernet (``search``) pooling is followed by
    BN, and a stride-1 skip-connect by dropout when the stage has skip dropout."""
    if name == "none":
        return Zero(stride)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        pool = (
            nn.MaxPool2d(3, stride, 1)
            if name == "max_pool_3x3"
            else nn.AvgPool2d(3, stride, 1, count_include_pad=False)
        )
        return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False)) if search else pool
    if name == "skip_connect":
        if stride == 2:
            return FactorizedReduce(c, c, affine)
        return nn.Sequential(nn.Identity(), nn.Dropout(0.0)) if dropout else nn.Identity()
    kernel = int(name[-1])
    if name.startswith("sep_conv"):
        padding = kernel // 2
        return nn.Sequential(
            _relu_conv(c, kernel, stride, padding, 1, affine), _relu_conv(c, kernel, 1, padding, 1, affine)
        )
    return _relu_conv(c, kernel, stride, kernel - 1, 2, affine)  # dil_conv_kxk


class MixedOp(nn.Module):
    """``sum_o softmax(alpha)_o * o(x)`` over every op alive on the edge, ``none`` included."""

    def __init__(self, c: int, stride: int, op_names: Sequence[str], dropout: bool) -> None:
        super().__init__()
        self.ops = nn.ModuleDict(
            {name: reference_op(name, c, stride, False, True, dropout) for name in op_names}
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops.values()))


class Cell(nn.Module):
    def __init__(self, candidates, c_prev_prev, c_prev, c, reduction, reduction_prev, dropout) -> None:
        super().__init__()
        self.reduction = reduction
        self.out_channels = NUM_NODES * c
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(c_prev_prev, c, False)
        else:
            self.preprocess0 = _preprocess(c_prev_prev, c)
        self.preprocess1 = _preprocess(c_prev, c)
        self.edges = nn.ModuleList(
            MixedOp(c, 2 if reduction and source < 2 else 1, ops, dropout)
            for (_, source), ops in zip(EDGES, candidates)
        )

    def forward(self, s0, s1, weights):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        edge = 0
        for _ in range(NUM_NODES):
            node = sum(self.edges[edge + i](h, weights[edge + i]) for i, h in enumerate(states))
            edge += len(states)
            states.append(node)
        return torch.cat(states[2:], dim=1)


def _preprocess(c_in: int, c_out: int) -> nn.Sequential:
    """ReLU, 1x1 convolution, BN (affine=False in the supernet)."""
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, affine=False)
    )


class Alphas(nn.Module):
    def __init__(self, candidates: Candidates) -> None:
        super().__init__()
        for cell in CELL_TYPES:
            self.register_module(
                cell, nn.ParameterList(nn.Parameter(1e-3 * torch.randn(len(ops))) for ops in candidates[cell])
            )


class ReferenceSupernet(nn.Module):
    """The supernet of a search stage: stem, ``num_cells`` cells (reductions at L//3, 2L//3), classifier."""

    def __init__(
        self,
        candidates: Candidates,
        num_cells: int,
        c: int,
        num_classes: int,
        in_channels: int,
        dropout: bool,
    ) -> None:
        super().__init__()
        candidates = {cell: [canonical_order(ops) for ops in candidates[cell]] for cell in CELL_TYPES}
        self.stem = _plain_batch_norms(image_stem(in_channels, 3 * c))

        def make_cell(c_prev_prev, c_prev, channels, reduction, reduction_prev):
            ops = candidates["reduce" if reduction else "normal"]
            return Cell(ops, c_prev_prev, c_prev, channels, reduction, reduction_prev, dropout)

        self.cells = nn.ModuleList(stack_cells(num_cells, 3 * c, 3 * c, c, make_cell))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.cells[-1].out_channels, num_classes)
        self.alphas = Alphas(candidates)

    def set_skip_dropout(self, rate: float) -> None:
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = {cell: [F.softmax(a, dim=-1) for a in getattr(self.alphas, cell)] for cell in CELL_TYPES}
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights["reduce" if cell.reduction else "normal"])
        return self.classifier(self.global_pooling(s1).flatten(1))


def _update(model, batch, optimizer, params, grad_clip):
    """Forward, one backward pass over every parameter, clipping of the updated ones, a step."""
    images, target = batch
    optimizer.zero_grad()
    model.zero_grad()
    loss = F.cross_entropy(model(images), target)
    loss.backward()
    nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return loss.detach()


def reference_search_step(model, weight_batch, arch_batch, weight_optimizer, alpha_optimizer, grad_clip):
    """The architecture update on ``arch_batch``, then the weight update on ``weight_batch``."""
    alphas = list(model.alphas.parameters())
    weights = [p for name, p in model.named_parameters() if not name.startswith("alphas.")]
    arch_loss = _update(model, arch_batch, alpha_optimizer, alphas, grad_clip)
    return arch_loss, _update(model, weight_batch, weight_optimizer, weights, grad_clip)


def _plain_batch_norms(module: nn.Module) -> nn.Module:
    """``module`` with every ``fast_ops.BatchNorm2d`` replaced by an ``nn.BatchNorm2d`` with its state."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, fast_ops.BatchNorm2d):
                twin = nn.BatchNorm2d(
                    child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
                )
                twin.load_state_dict(child.state_dict())
                setattr(parent, name, twin.to(child.running_mean.device).train(child.training))
    return module


def to_reference(network: nn.Module) -> nn.Module:
    """An evaluation network with every op and cell input replaced by its reference twin (same
    parameter names and values), its BatchNorm layers plain: the straightforward version of the
    library's training network."""
    from pdarts import operations

    for module in list(network.modules()):
        for name, child in list(module.named_children()):
            twin = None
            if isinstance(child, operations.ReLUConvBN):
                # The same modules, without forward_activated: each cell rectifies its own inputs.
                twin = nn.Sequential(*child)
            elif isinstance(child, operations.FactorizedReduce):
                twin = FactorizedReduce(child.conv_1.in_channels, 2 * child.conv_1.out_channels, True)
            elif isinstance(child, operations.SepConv):
                depthwise = child[0][1]
                kernel, stride, padding = depthwise.kernel_size[0], depthwise.stride[0], depthwise.padding[0]
                c = depthwise.in_channels
                twin = nn.Sequential(
                    _relu_conv(c, kernel, stride, padding, 1, True),
                    _relu_conv(c, kernel, 1, padding, 1, True),
                )
            elif isinstance(child, operations.DilConv):
                depthwise = child[1]
                c, kernel = depthwise.in_channels, depthwise.kernel_size[0]
                twin = _relu_conv(
                    c, kernel, depthwise.stride[0], depthwise.padding[0], depthwise.dilation[0], True
                )
            if twin is not None:
                twin.load_state_dict(child.state_dict())
                setattr(module, name, twin.to(next(child.parameters()).device))
    return _plain_batch_norms(network)


def reference_train_step(network, batch, optimizer, auxiliary_weight, grad_clip):
    """One training step: loss = CE + auxiliary_weight * CE(auxiliary head), backward, clipping, SGD."""
    images, target = batch
    logits, auxiliary_logits = network(images)
    loss = F.cross_entropy(logits, target) + auxiliary_weight * F.cross_entropy(auxiliary_logits, target)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(network.parameters(), grad_clip)
    optimizer.step()
    return loss.detach()
