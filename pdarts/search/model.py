"""The supernet of one search stage (docs/algorithm.md#search-space).

Every edge is a ``MixedOp`` over the op names still searched on it; the architecture parameters
(one logit per op name per edge, for each cell type) live in ``ArchitectureParameters``, a
registered submodule owned apart from the network weights: ``SearchNetwork.weight_parameters()``
and ``SearchNetwork.arch_parameters()`` never overlap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..fast_ops import _DTYPES, MIN_ELEMENTS, pooled_batch_norm, pools_shared, shared_pooled_batch_norm
from ..layers import dense_gradient
from ..native import skip_dropout_kernels
from ..networks.cell import cell_inputs, image_stem, preprocess, run_cells, stack_cells
from ..operations import build_op
from ..search_space import CELL_TYPES, EDGES, NUM_NODES, Candidates, canonical_order

__all__ = [
    "ArchitectureParameters",
    "MixedOp",
    "PoolBN",
    "SearchCell",
    "SearchNetwork",
    "SkipDropout",
    "keep_mask",
]

ALPHA_INIT_SCALE = 1e-3  # alpha ~ 1e-3 * N(0, 1), as in DARTS and P-DARTS


def _thresholds(p: float) -> tuple[int, int]:
    """The high and low 16 bits of ``p * 2**32``: ``keep_mask``'s comparisons."""
    return divmod(min(round(p * 2**32), 2**32 - 1), 2**16)


def keep_mask(seed: int, count: int, p: float) -> np.ndarray:
    """``count`` bytes, each 1 with probability ``1 - p`` (to 2**-32) and 0 otherwise, from numpy's PCG64
    seeded with ``seed``: ``SkipDropout``'s mask.

    Each byte compares a 16-bit number (PCG64's raw words, four per word) with the high half of
    ``p * 2**32``; where the two are equal (one in 65,536) a second 16-bit number, drawn after the
    first ones, decides against the low half. That is ``u >= p`` for a 32-bit uniform ``u``.
    The compiled kernel (``native.py``) draws the same bytes.
    """
    high, low = _thresholds(p)
    bits = np.random.PCG64(seed)
    first = bits.random_raw(-(-count // 4)).view(np.uint16)[:count]
    # One array for the ties' positions, then the mask: a second temporary of this size costs more
    # than the draw (fresh pages from the allocator: 1.2 ms against 0.4 for a 32x16x32x32 mask).
    keep = np.equal(first, high)
    ties = np.flatnonzero(keep)
    np.greater(first, high, out=keep)
    if ties.size:
        second = bits.random_raw(-(-ties.size // 4)).view(np.uint16)[: ties.size]
        keep[ties] = second >= low
    return keep.view(np.uint8)


def _signed_halves(value: int) -> tuple[int, int]:
    """A 128-bit number as its high and low 64 bits, each as a signed int64 (the kernel's arguments)."""
    return tuple(half - 2**64 if half >= 2**63 else half for half in divmod(value, 2**64))


def pcg64_arguments(seed: int) -> tuple[int, int, int, int]:
    """The state and increment that numpy's ``PCG64(seed)`` starts from, as the compiled kernel takes
    them (high and low halves of each)."""
    state = np.random.PCG64(seed).state["state"]
    return (*_signed_halves(state["state"]), *_signed_halves(state["inc"]))


class _CompiledSkipDropout(torch.autograd.Function):
    """``x * keep_mask(seed, ...) * scale`` by the compiled kernel (``native.py``): one pass each way, the
    same mask and forward values (bit for bit) as the plain ops. The input gradient is the plain ops'
    too; the scale's, ``sum(grad * x * keep)``, is summed in fp32 per block instead of torch's bf16
    products, so it can differ in the last bits. Keeps ``x`` (when the scale needs a gradient) and the
    mask bytes."""

    @staticmethod
    def forward(ctx, x, scale, seed, p, kernels):
        y, keep = kernels.forward(x, float(scale), *pcg64_arguments(seed), *_thresholds(p))
        ctx.kernels, ctx.shape, ctx.strides = kernels, x.shape, x.stride()
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, keep, scale)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, keep, scale = ctx.saved_tensors
        if grad.stride() != ctx.strides:  # the mask is in x's memory order: read the gradient in it
            grad = torch.empty_strided(ctx.shape, ctx.strides, dtype=grad.dtype).copy_(grad)
        # grad_x is None unless asked for
        grad_x, total = ctx.kernels.backward(grad, x, keep, float(scale), ctx.needs_input_grad[0])
        grad_scale = torch.tensor(total, dtype=scale.dtype) if ctx.needs_input_grad[1] else None
        return grad_x, grad_scale, None, None, None


class SkipDropout(nn.Dropout):
    """Element-wise dropout (``nn.Dropout``), with its mask drawn by numpy's PCG64 on the CPU.

    torch draws CPU Bernoulli masks one Mersenne-twister number at a time (MKL's vectorised path is
    for Intel CPUs only): 5.4 ms for the mask and backward pass of a 32x16x32x32 output on 2 cores
    (measured), a third of a stage-3 search step. The mask here is ``keep_mask``: PCG64's raw 64-bit
    words read as four 16-bit numbers each, 2.4x faster than numpy's float draws (0.41 ms against
    0.98 ms for that output) and, with the rare ties settled by 16 more bits, a 32-bit uniform draw's
    distribution. Its seed is one draw from torch's generator, so searches stay reproducible and
    resumable, and a checkpointed cell's recomputation (which restores that generator) redraws the
    same mask. On maps of ``MIN_ELEMENTS`` or more with a scale (a search edge's), the compiled kernel
    (``native.py``) draws the same mask and applies it in the same pass, each way. Elsewhere (CUDA, an
    unusual memory layout), plain dropout.

    In a compiled cell (``compile: true``) the mask is ``torch.rand_like(x) >= rate``, ``rate`` being the
    rate as a tensor (a buffer, not saved): numpy cannot be traced, and the compiler takes a float
    attribute for a constant, so that each epoch's new rate would compile every cell again.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__(p)
        self.register_buffer("rate", torch.tensor(float(p)), persistent=False)

    def set_rate(self, rate: float) -> None:
        """The dropout rate from now on (``p`` and its tensor)."""
        self.p = rate
        self.rate.fill_(rate)

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """``dropout(x)``, or ``scale * dropout(x)`` (a search edge's weight of the skip-connect) with the
        scale and dropout's ``1 / (1 - p)`` multiplied in together: one pass over ``x`` less, each way."""
        if torch.compiler.is_compiling():
            if not self.training:
                return x if scale is None else scale * x
            factor = 1.0 / (1.0 - self.rate)
            keep = torch.rand_like(x) >= self.rate
            return x * keep * (factor if scale is None else scale * factor)
        dense = x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)
        if not self.training or self.p == 0 or x.device.type != "cpu" or not dense:
            out = super().forward(x)
            return out if scale is None else scale * out
        seed = int(torch.randint(0, 2**63 - 1, ()))
        factor = 1.0 / (1.0 - self.p)
        kernels = None
        if scale is not None and x.numel() >= MIN_ELEMENTS and x.dtype in _DTYPES:
            kernels = skip_dropout_kernels()
        if kernels is not None:
            return _CompiledSkipDropout.apply(x, scale * factor, seed, self.p, kernels)
        # Laid out in x's memory order; the kept values scaled by 1 / (1 - p), as torch's dropout
        # does. The mask is multiplied in as bytes (0 or 1): the backward pass keeps a quarter of a
        # float mask's memory, and a product runs vectorised where torch.where with a boolean mask
        # does not (forward and backward of a 32x16x32x32 output on 2 cores: 0.46 ms against
        # 1.72 ms, ``benchmarks/fast_ops.py``).
        keep = torch.from_numpy(keep_mask(seed, x.numel(), self.p)).as_strided(x.shape, x.stride())
        return x * factor * keep if scale is None else x * keep * (scale * factor)


class PoolBN(nn.Sequential):
    """A pooling op followed by BatchNorm without affine parameters (a pool's form in the supernet)."""

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        pool, bn = self
        return pooled_batch_norm(x, pool, bn, scale)


class MixedOp(nn.Module):
    """``sum_o softmax(alpha)_o * o(x)`` over the op names alive on one edge.

    ``none`` contributes exactly zero to the sum, so it is not computed; its weight still takes
    part in the softmax (and so in the architecture gradient), as in the paper. Every op that ends
    in BatchNorm (all but the skip-connect) takes its weight as BatchNorm's scale
    (``scaled_batch_norm``): the weighted sum is a plain sum, and the architecture update keeps no
    op output for its backward pass.
    """

    def __init__(
        self, channels: int, stride: int, op_names: Sequence[str], skip_dropout: bool = False
    ) -> None:
        super().__init__()
        self.op_names = tuple(op_names)
        self.stride = stride
        self.ops = nn.ModuleDict()
        for name in self.op_names:
            if name == "none":
                continue
            op = build_op(name, channels, stride, affine=False)
            if "pool" in name:
                op = PoolBN(op, nn.BatchNorm2d(channels, affine=False))
            elif name == "skip_connect" and stride == 1 and skip_dropout:
                # P-DARTS search-space regularization; the rate is set per epoch by the stage.
                op = nn.Sequential(op, SkipDropout(p=0.0))
            self.ops[name] = op
        # Index of each computed op in op_names, to pick its weight.
        self._weight_index = [self.op_names.index(name) for name in self.ops]
        # How each op is called: on the edge's input after a ReLU that the cell computes once per
        # state for every convolution reading it (convolutions, factorized reduce), on the input
        # with its weight as BatchNorm's scale (pools), through the skip dropout with its weight as
        # the dropout's scale, or on the input, then weighted (skip).
        self._kinds = [
            "activated"
            if hasattr(op, "forward_activated")
            else "scaled"
            if isinstance(op, PoolBN)
            else "dropped"
            if isinstance(op, nn.Sequential) and isinstance(op[-1], SkipDropout)
            else "plain"
            for op in self.ops.values()
        ]

    @property
    def reads_activated(self) -> bool:
        """Whether an op of this edge reads ``relu(x)``."""
        return "activated" in self._kinds

    @property
    def pool_names(self) -> list[str]:
        """The names of this edge's pooling ops."""
        return [name for name, kind in zip(self.ops, self._kinds) if kind == "scaled"]

    def forward(
        self,
        x: torch.Tensor,
        op_probabilities: torch.Tensor,
        activated: torch.Tensor | None = None,
        computed: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The weighted sum on ``x``; ``activated`` is ``relu(x)`` if the caller has it already, and
        ``computed`` holds weighted op outputs (by op name) that the caller computed already."""
        if not self.ops:  # only `none` is alive: zeros of the strided shape
            return x[:, :, :: self.stride, :: self.stride].mul(0.0)
        out = None
        computed = computed or {}
        for index, (name, op), kind in zip(self._weight_index, self.ops.items(), self._kinds):
            probability = op_probabilities[index]
            if name in computed:
                term = computed[name]
            elif kind == "activated":
                activated = F.relu(x) if activated is None else activated
                term = op.forward_activated(activated, probability)
            elif kind == "scaled":
                term = op(x, probability)
            elif kind == "dropped":
                term = op[-1](op[0](x), probability)
            else:
                term = probability * op(x)
            # Summed in place: no op's backward pass needs the terms themselves.
            out = term if out is None else out.add_(term)
        return out


class SearchCell(nn.Module):
    """A searched cell: preprocessing of its two inputs, 14 mixed edges, 4 nodes concatenated."""

    def __init__(
        self,
        candidates: Sequence[Sequence[str]],
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
        skip_dropout: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.out_channels = NUM_NODES * channels
        self.preprocess0, self.preprocess1 = cell_inputs(c_prev_prev, c_prev, channels, reduction_prev, False)
        # Skip dropout on every stride-1 skip-connect, in both cell types: a reduction cell's six
        # edges between its nodes; its stride-2 skips (FactorizedReduce) are never dropped
        # (docs/algorithm.md#skip-connect-dropout).
        self.edges = nn.ModuleList(
            MixedOp(channels, 2 if reduction and source < 2 else 1, ops, skip_dropout=skip_dropout)
            for (_, source), ops in zip(EDGES, candidates)
        )
        # The edges that read each state (2 inputs, then the nodes).
        self._edges_from = [
            [e for e, (_, source) in enumerate(EDGES) if source == s] for s in range(NUM_NODES + 2)
        ]

    def _pools(
        self, state: int, h: torch.Tensor, op_probabilities: Sequence[torch.Tensor], computed: list[dict]
    ) -> None:
        """The pooling ops of the edges that leave ``state`` (``h``), each pool name's map computed once
        for all of them (``shared_pooled_batch_norm``), into ``computed[edge][name]``."""
        by_name: dict[str, list[int]] = {}
        for e in self._edges_from[state]:
            for name in self.edges[e].pool_names:
                by_name.setdefault(name, []).append(e)
        for name, edges in by_name.items():
            ops = [self.edges[e].ops[name] for e in edges]
            if not pools_shared(h, [op[1] for op in ops]):
                continue  # each edge pools when its turn comes, as the plain ops do
            scales = [op_probabilities[e][self.edges[e].op_names.index(name)] for e in edges]
            terms = shared_pooled_batch_norm(h, ops[0][0], [op[1] for op in ops], scales)
            for e, term in zip(edges, terms):
                computed[e][name] = term

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        op_probabilities: Sequence[torch.Tensor],
        activated: bool = False,
    ) -> torch.Tensor:
        """The cell on its inputs, or on their ReLUs with ``activated`` (``networks.cell.preprocess``)."""
        states = preprocess(self, s0, s1, activated)
        # relu(state), computed once for all the edges that leave a state (kept once for the
        # backward pass too, which sums their gradients before the ReLU's); likewise each pool.
        relus: list[torch.Tensor | None] = [None, None]
        computed: list[dict[str, torch.Tensor]] = [{} for _ in self.edges]
        for i, h in enumerate(states):
            self._pools(i, h, op_probabilities, computed)
        edge = 0
        for _ in range(NUM_NODES):
            node = None
            for i, h in enumerate(states):
                mixed = self.edges[edge + i]
                if relus[i] is None and mixed.reads_activated:
                    relus[i] = F.relu(h)
                term = mixed(h, op_probabilities[edge + i], relus[i], computed[edge + i])
                computed[edge + i] = {}  # the terms' memory goes with the sum
                node = term if node is None else node.add_(term)  # a fresh sum: in place
            edge += len(states)
            states.append(dense_gradient(node))
            relus.append(None)
            if len(states) < NUM_NODES + 2:
                self._pools(len(states) - 1, states[-1], op_probabilities, computed)
        return torch.cat(states[2:], dim=1)


class ArchitectureParameters(nn.Module):
    """The alphas of both cell types, by name: per edge one logit per candidate op name."""

    def __init__(self, candidates: Candidates, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.candidates = {cell: [tuple(ops) for ops in candidates[cell]] for cell in CELL_TYPES}
        for cell in CELL_TYPES:
            self.register_module(
                cell,
                nn.ParameterList(
                    nn.Parameter(ALPHA_INIT_SCALE * torch.randn(len(ops), generator=generator))
                    for ops in self.candidates[cell]
                ),
            )

    def logits(self, cell: str) -> list[torch.Tensor]:
        return list(getattr(self, cell))

    def op_probabilities(self, cell: str) -> list[torch.Tensor]:
        """softmax(alpha) per edge, over the ops still alive on it."""
        return [F.softmax(alpha, dim=-1) for alpha in getattr(self, cell)]

    def probabilities_by_name(self, digits: int = 6) -> dict[str, list[dict[str, float]]]:
        """softmax(alpha) of every edge as ``{op name: probability}`` (edges in ``EDGES`` order), per
        cell type, rounded to ``digits``: what a stage's history records at the end of each epoch."""
        with torch.no_grad():
            return {
                cell: [
                    {op: round(p, digits) for op, p in zip(ops, F.softmax(alpha, -1).tolist())}
                    for ops, alpha in zip(self.candidates[cell], getattr(self, cell))
                ]
                for cell in CELL_TYPES
            }

    def to_dict(self) -> dict[str, list[dict[str, object]]]:
        """The alphas in the ``pdarts derive --alphas`` format (raw logits, op names, softmax)."""
        result = {}
        with torch.no_grad():
            for cell in CELL_TYPES:
                result[cell] = [
                    {
                        "source": source,
                        "target": node + 2,
                        "ops": list(ops),
                        "alpha": alpha.tolist(),
                        "weights": F.softmax(alpha, -1).tolist(),
                    }
                    for (node, source), ops, alpha in zip(EDGES, self.candidates[cell], getattr(self, cell))
                ]
        return result


@contextlib.contextmanager
def _running_statistics_kept(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers of ``module`` leave their running statistics as they are.

    Momentum 0 keeps the running mean and variance; the batch counter is put back after. (Turning
    tracking off instead would change what BatchNorm saves for the backward pass, which a
    checkpoint's recomputation must reproduce exactly.)
    """
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [layer.momentum for layer in layers]
    counts = [
        None if layer.num_batches_tracked is None else layer.num_batches_tracked.clone() for layer in layers
    ]
    for layer in layers:
        layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, momentum, count in zip(layers, momenta, counts):
            layer.momentum = momentum
            if count is not None:
                layer.num_batches_tracked.copy_(count)


def _checkpointed(
    cell: nn.Module,
    s0: torch.Tensor,
    s1: torch.Tensor,
    op_probabilities: list[torch.Tensor],
    activated: bool,
) -> torch.Tensor:
    """``cell(s0, s1, op_probabilities, activated)`` keeping only its inputs for the backward pass, which
    recomputes it.

    The recomputation replays the cell's dropout masks (checkpoint restores the RNG state) and
    normalises with the same batch statistics, without updating BatchNorm running statistics again.
    """

    def contexts():
        return contextlib.nullcontext(), _running_statistics_kept(cell)

    return checkpoint(cell, s0, s1, op_probabilities, activated, use_reentrant=False, context_fn=contexts)


class SearchNetwork(nn.Module):
    """The supernet: stem, ``num_cells`` searched cells (reductions at L//3 and 2L//3), classifier.

    Args:
        candidates: op names per edge for each cell type.
        num_cells: L, the number of cells.
        init_channels: C, channels of the first cells (the stem gives 3*C).
        num_classes: classifier outputs.
        in_channels: image channels.
        skip_dropout: whether the stride-1 skip-connects of both cell types carry a dropout layer
            (the stage's rate > 0); its rate is set with ``set_skip_dropout``.
        generator: random generator for the alpha initialisation.
        checkpoint_cells: keep only each cell's inputs for the backward pass and recompute the
            rest (activation checkpointing): less memory, one more forward pass per cell.
    """

    def __init__(
        self,
        candidates: Candidates,
        num_cells: int,
        init_channels: int,
        num_classes: int,
        in_channels: int = 3,
        skip_dropout: bool = False,
        stem_multiplier: int = 3,
        generator: torch.Generator | None = None,
        checkpoint_cells: bool = False,
    ) -> None:
        super().__init__()
        self.checkpoint_cells = checkpoint_cells
        self._parameter_cache: tuple[list[nn.Parameter], list[nn.Parameter]] | None = None
        self._compiled_cells: list[nn.Module] | None = None  # a plain list: not registered modules
        candidates = {cell: [canonical_order(ops) for ops in candidates[cell]] for cell in CELL_TYPES}
        c_stem = stem_multiplier * init_channels
        # The stem's BN is the one affine BN of the supernet (DARTS's default; the paper's 1,275,834
        # stage-1 weights count its 2 * 3C parameters).
        self.stem = image_stem(in_channels, c_stem)

        def make_cell(c_prev_prev, c_prev, channels, reduction, reduction_prev):
            cell_candidates = candidates["reduce" if reduction else "normal"]
            return SearchCell(
                cell_candidates, c_prev_prev, c_prev, channels, reduction, reduction_prev, skip_dropout
            )

        self.cells = nn.ModuleList(stack_cells(num_cells, c_stem, c_stem, init_channels, make_cell))
        c_prev = self.cells[-1].out_channels
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)
        self.alphas = ArchitectureParameters(candidates, generator=generator)

    def weight_parameters(self) -> list[nn.Parameter]:
        """The network weights (everything but the alphas)."""
        return list(self._parameter_lists()[0])

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture parameters (alphas of both cell types)."""
        return list(self._parameter_lists()[1])

    def _parameter_lists(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """The weights and the alphas, listed once: every update asks for both, and walking the
        supernet's modules took 5.8 ms a call at stage 3 (17 cells, 1,500 weight tensors). Listed
        again after ``_apply`` (``to``, ``cuda``, ...), which may put new parameters in place."""
        if self._parameter_cache is None:
            weights = [p for name, p in self.named_parameters() if not name.startswith("alphas.")]
            self._parameter_cache = (weights, list(self.alphas.parameters()))
        return self._parameter_cache

    def _apply(self, fn, recurse=True):
        self._parameter_cache = None
        return super()._apply(fn, recurse)

    def compile_cells(self, enabled: bool = True) -> None:
        """Runs every cell through ``torch.compile`` from now on (``False``: eagerly again).

        The compiled cells wrap the registered ones, so parameter and state-dict names stay the
        same. Compilation happens at a cell's first call, once per input shape and per set of
        parameters that need gradients (the architecture and the weight step differ). All cells run
        one compiled ``SearchCell.forward`` (torch inlines the modules, their parameters being its
        inputs), so its cache holds an entry for each of those per cell shape: torch's recompile limit
        is raised to two per cell, or the cells past its default eight (stage 3 has nine shapes) would
        run eagerly. (Older torch, which pyproject allows from 2.4, names that limit ``cache_size_limit``.)
        """
        if enabled:
            config = torch._dynamo.config
            name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
            setattr(config, name, max(getattr(config, name), 2 * len(self.cells)))
        self._compiled_cells = [torch.compile(cell) for cell in self.cells] if enabled else None

    @property
    def cells_compiled(self) -> bool:
        """Whether the cells run through ``torch.compile``."""
        return self._compiled_cells is not None

    def set_skip_dropout(self, rate: float) -> None:
        """Sets the dropout rate after every stride-1 skip-connect of both cell types."""
        for module in self.modules():
            if isinstance(module, SkipDropout):
                module.set_rate(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op_probabilities = {cell: self.alphas.op_probabilities(cell) for cell in CELL_TYPES}
        calls = self._compiled_cells or self.cells
        checkpointed = self.checkpoint_cells and torch.is_grad_enabled()

        def call(index, s0, s1, activated):
            probabilities = op_probabilities["reduce" if self.cells[index].reduction else "normal"]
            if checkpointed:
                return _checkpointed(calls[index], s0, s1, probabilities, activated)
            return calls[index](s0, s1, probabilities, activated)

        s = self.stem(x)
        out, _ = run_cells(self.cells, s, s, call)
        out = self.global_pooling(out)
        return self.classifier(out.flatten(1))
