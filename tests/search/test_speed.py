"""The speed and memory settings of a search stage keep what it decides (issue 6).

Each check runs one search epoch (four architecture + weight steps) of a 3-cell supernet on 8x8 images
whose label depends on the image, in fp32 and in a fast setting, from the same seed and batches, and
compares the alphas and the pruning they lead to.
"""

import dataclasses
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from pdarts import fast_ops
from pdarts.search.pruning import prune_candidates
from pdarts.search.stage import SearchSettings, Stage, StageResult, build_search, run_search_stage
from pdarts.search_space import full_candidates

CANDIDATES = full_candidates(["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3"])
FP32 = SearchSettings.defaults(
    epochs=1, warmup_epochs=0, init_channels=4, precision="fp32", channels_last=False
)
STAGE = Stage("test", cells=3, skip_dropout=0.0)
DROPOUT = Stage("test", cells=3, skip_dropout=0.3)


def _batches(seed: int, n: int = 4, size: int = 16):
    """Images whose class (0..2) is the number of image halves with a positive mean: learnable."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        x = torch.randn(size, 1, 8, 8, generator=g)
        y = (x[:, 0, :4].mean((1, 2)) > 0).long() + (x[:, 0, 4:].mean((1, 2)) > 0).long()
        batches.append((x, y))
    return batches


def _search(settings: SearchSettings, reverse: bool = False, stage: Stage = STAGE):
    weight_batches, arch_batches = _batches(1), _batches(2)
    if reverse:
        weight_batches, arch_batches = weight_batches[::-1], arch_batches[::-1]
    return run_search_stage(
        CANDIDATES, settings, stage, weight_batches, arch_batches, num_classes=3, in_channels=1
    )


def _alphas(result) -> torch.Tensor:
    return torch.tensor([edge["alpha"] for cell in ("normal", "reduce") for edge in result.alphas[cell]])


def _by_name(result):
    return {
        cell: [dict(zip(edge["ops"], edge["alpha"])) for edge in result.alphas[cell]]
        for cell in ("normal", "reduce")
    }


def _kept(result) -> list:
    """The pruning for every number of ops kept (1..4 of 5): the decisions a stage hands on."""
    return [prune_candidates(_by_name(result), keep) for keep in range(1, len(CANDIDATES["normal"][0]))]


def _agreement(a, b) -> int:
    """How many (keep, cell, edge) pruning decisions two results share."""
    return sum(
        x == y for ka, kb in zip(_kept(a), _kept(b)) for cell in ka for x, y in zip(ka[cell], kb[cell])
    )


def test_checkpoint_cells_gives_the_same_search():
    # Recomputing each cell in the backward pass replays its dropout masks and normalises with the
    # same batch statistics: the same numbers in the same order, so equality is exact (including the
    # weights and BatchNorm running statistics, which the recomputation must not update twice).
    settings = dataclasses.replace(FP32, epochs=2, warmup_epochs=1)
    plain = _search(settings, stage=DROPOUT)
    checkpointed = _search(dataclasses.replace(settings, checkpoint_cells=True), stage=DROPOUT)
    assert torch.equal(_alphas(plain), _alphas(checkpointed))
    for name, value in plain.model.state_dict().items():
        assert torch.equal(value, checkpointed.model.state_dict()[name]), name
    assert _kept(plain) == _kept(checkpointed)


def test_the_compiled_skip_dropout_keeps_the_search_and_replays_its_masks(monkeypatch):
    """The compiled kernel (on every map here: ``MIN_ELEMENTS`` 0) draws the plain ops' masks and values;
    only the weight's gradient is summed in another order. The search keeps its alphas (to 1e-5) and
    pruning, and a checkpointed cell's recomputation replays the kernel's masks exactly."""
    from pdarts import native
    from pdarts.search import model

    if native.skip_dropout_kernels() is None:
        pytest.skip("the kernel cannot be built here")
    settings = dataclasses.replace(FP32, epochs=2, warmup_epochs=1)
    plain = _search(settings, stage=DROPOUT)
    monkeypatch.setattr(model, "MIN_ELEMENTS", 0)
    used = []
    monkeypatch.setattr(
        model, "skip_dropout_kernels", lambda: used.append(1) or native.skip_dropout_kernels()
    )
    compiled = _search(settings, stage=DROPOUT)
    assert used  # the search went through the kernel
    assert_same_search_and_replay(compiled, plain, settings)


def assert_same_search_and_replay(
    compiled: StageResult, plain: StageResult, settings: SearchSettings
) -> None:
    """``compiled`` (a search through a compiled kernel) keeps ``plain``'s alphas (to 1e-5) and pruning,
    and the same search with checkpointed cells (``settings``'s, recomputed in the backward pass)
    gives ``compiled``'s alphas, weights and statistics exactly."""
    assert (_alphas(compiled) - _alphas(plain)).abs().max() < 1e-5
    assert _kept(compiled) == _kept(plain)
    checkpointed = _search(dataclasses.replace(settings, checkpoint_cells=True), stage=DROPOUT)
    assert torch.equal(_alphas(compiled), _alphas(checkpointed))
    for name, value in compiled.model.state_dict().items():
        assert torch.equal(value, checkpointed.model.state_dict()[name]), name


def test_channels_last_keeps_the_alphas_and_the_pruning():
    # fp32 in the NHWC layout sums in another order: rounding differences (~1e-6 of the gradient,
    # measured). Adam divides each gradient by its own magnitude, which can magnify the change of a
    # near-zero one, so the bound is 1e-5, against alphas that move by ~1e-3 in this epoch.
    # (Without skip dropout: its masks are drawn in memory order, so NHWC draws other, equally
    # random, masks.)
    plain = _search(FP32)
    fast = _search(dataclasses.replace(FP32, channels_last=True))
    torch.manual_seed(0)  # as the stage does: the initial alphas
    initial = build_search(CANDIDATES, FP32, STAGE, 3, 1, torch.device("cpu")).model.alphas.to_dict()
    assert (_alphas(plain) - _alphas(StageResult(initial))).abs().mean() > 5e-4
    assert (_alphas(fast) - _alphas(plain)).abs().max() < 1e-5
    assert _kept(fast) == _kept(plain)


def _alpha_gradient(settings: SearchSettings, batch) -> torch.Tensor:
    torch.manual_seed(0)
    model, _, _, precision = build_search(CANDIDATES, settings, STAGE, 3, 1, torch.device("cpu"))
    images, target = batch
    with precision.autocast():
        loss = F.cross_entropy(model(precision.inputs(images)).float(), target)
    loss.backward(inputs=model.arch_parameters())
    return torch.cat([alpha.grad for alpha in model.arch_parameters()])


def test_bf16_keeps_the_architecture_gradient_within_the_noise_of_a_batch():
    # The search follows stochastic gradients: two batches' architecture gradients differ by more
    # than their own size (measured: 165% of it). bf16 rounds to 8 bits of mantissa; its error in
    # the gradient (measured: 26%, a sixth of that noise) must stay under a quarter of the noise.
    settings = dataclasses.replace(FP32, init_channels=8)
    batch, other = _batches(1, n=1, size=32)[0], _batches(2, n=1, size=32)[0]
    fp32 = _alpha_gradient(settings, batch)
    noise = (_alpha_gradient(settings, other) - fp32).norm()
    error = (_alpha_gradient(dataclasses.replace(settings, precision="bf16"), batch) - fp32).norm()
    assert error < 0.25 * noise


@pytest.mark.parametrize("forms", [False, True])
def test_bf16_changes_the_search_less_than_the_order_of_its_batches(forms, monkeypatch):
    # The loaders shuffle, so the order of the batches is a perturbation every search lives with.
    # Adam normalises each step, so a bf16 rounding that flips the sign of a near-zero gradient
    # moves that alpha by a whole step: alphas after one epoch cannot match to rounding level. The
    # tolerance is the batch order's own effect: bf16 must change the alphas less than half as much
    # as reversing the batches (measured: 0.20 of it), and keep more of fp32's pruning decisions
    # than the reversed order does (measured: 92 of 112 against 39). With ``forms``, in channels_last
    # with fast_ops' forms on these small maps, as a CIFAR-size search runs (measured: 0.21, 94).
    settings = FP32
    if forms:
        monkeypatch.setattr(fast_ops, "MIN_ELEMENTS", 0)
        settings = dataclasses.replace(FP32, channels_last=True)
    plain = _search(settings)
    reordered = _search(settings, reverse=True)
    bf16 = _search(dataclasses.replace(settings, precision="bf16"))
    order_effect = (_alphas(reordered) - _alphas(plain)).abs().mean()
    assert (_alphas(bf16) - _alphas(plain)).abs().mean() < 0.5 * order_effect
    assert _agreement(bf16, plain) > _agreement(reordered, plain)


def test_auto_precision_of_a_search_follows_the_size_of_its_first_maps(caplog):
    """``precision: auto`` on the CPU: bf16 + channels_last where the CPU has native bf16, except on maps
    under ``fast_ops.MIN_ELEMENTS`` (the digits search: 64 x 8 channels x 8 x 8), where fp32 is faster."""
    from pdarts.precision import native_bf16

    settings = dataclasses.replace(FP32, precision="auto", channels_last=True, init_channels=8)
    large = "bf16" if native_bf16() else "fp32"
    for example, expected in ((torch.zeros(64, 1, 8, 8), "fp32"), (torch.zeros(32, 1, 32, 32), large)):
        parts = build_search(CANDIDATES, settings, STAGE, 3, 1, torch.device("cpu"), example=example)
        assert parts.precision.name == expected, example.shape
    # A stage reads the size from its batches (16 images of 8 x 8 here: fp32) and says what it chose.
    with caplog.at_level("INFO", logger="pdarts"):
        _search(settings)
    assert "skip dropout 0.00, fp32 + channels_last" in caplog.text


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_fast_settings_together_run_a_stage(precision):
    settings = dataclasses.replace(FP32, precision=precision, channels_last=True, checkpoint_cells=True)
    result = _search(settings, stage=DROPOUT)
    assert torch.isfinite(_alphas(result)).all()
    assert result.history[-1]["arch_loss"] > 0


def test_a_compiler_failure_leaves_the_cells_eager_with_a_warning(monkeypatch, caplog):
    def failing_compile(module, **kwargs):
        def call(*args, **kwargs):
            raise RuntimeError("no compiler here")

        return call

    monkeypatch.setattr(torch, "compile", failing_compile)
    with caplog.at_level("WARNING", logger="pdarts"):
        compiled = _search(dataclasses.replace(FP32, compile=True))
    assert "torch.compile of the search cells failed (no compiler here)" in caplog.text
    assert torch.equal(_alphas(compiled), _alphas(_search(FP32)))


def test_compiled_skip_dropout_drops_at_each_rate_without_compiling_again():
    # numpy's masks cannot be traced (a graph break there crashed a compiled stage-3 step in torch's
    # alias handling); compiled, the mask is torch's, from the rate as a tensor: one graph for every
    # epoch's rate.
    from torch._dynamo.testing import CompileCounterWithBackend

    from pdarts.search.model import SkipDropout

    torch._dynamo.reset()
    dropout = SkipDropout(0.3).train()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(dropout, backend=counter, fullgraph=True)  # fullgraph: no graph break
    x = torch.ones(16, 16, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()
    scale = torch.tensor(0.5, requires_grad=True)
    for rate in (0.3, 0.7, 0.0):
        dropout.set_rate(rate)
        x.grad = scale.grad = None
        y = compiled(x, scale)
        kept = y != 0
        assert abs(kept.float().mean().item() - (1 - rate)) < 0.01  # 65536 draws
        assert torch.allclose(y[kept], torch.tensor(0.5 / (1 - rate)))
        y.sum().backward()
        assert torch.allclose(x.grad, y.detach())
        assert torch.allclose(scale.grad, kept.sum() / (1 - rate))
    assert counter.frame_count == 1
    assert torch.equal(compiled.eval()(x, scale), 0.5 * x)


def test_a_compiled_search_runs_stages_with_skip_dropout(monkeypatch, caplog):
    # The whole stage through torch's tracing (aot_eager: the graphs torch's compiler would lower,
    # run by eager kernels, in seconds), two epochs of different skip-dropout rates.
    import functools

    from torch._dynamo.utils import counters

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    torch._dynamo.reset()
    counters.clear()
    settings = dataclasses.replace(FP32, epochs=2, warmup_epochs=1, compile=True)
    with caplog.at_level("WARNING", logger="pdarts"):
        result = _search(settings, stage=DROPOUT)
    assert "torch.compile of the search cells failed" not in caplog.text
    assert counters["stats"]["unique_graphs"] > 0
    assert [epoch["skip_dropout"] for epoch in result.history] == [0.15, 0.3]
    assert torch.isfinite(_alphas(result)).all()
    # Without dropout (the one op whose draws differ), the traced cells compute the eager search.
    traced, eager = (_search(dataclasses.replace(settings, compile=on)) for on in (True, False))
    assert torch.allclose(_alphas(traced), _alphas(eager), atol=1e-6)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_skip_dropout_drops_at_its_rate_scales_and_replays_from_torch_seed(layout):
    from pdarts.search.model import SkipDropout

    dropout = SkipDropout(0.7).train()
    x = torch.ones(8, 16, 16, 16).contiguous(memory_format=layout).requires_grad_()
    torch.manual_seed(0)
    y = dropout(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.3) < 0.01  # 32768 draws: the standard error is 0.0025
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.3))
    assert y.is_contiguous(memory_format=layout)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient passes where the mask keeps
    torch.manual_seed(0)
    assert torch.equal(dropout(x), y)  # the mask comes from torch's generator
    assert dropout.eval()(x) is x


@pytest.mark.parametrize("stride", [1, 2])
def test_mixed_op_with_one_shared_relu_equals_the_plain_weighted_sum(stride):
    from pdarts.search.model import MixedOp
    from pdarts.search_space import PRIMITIVES

    torch.manual_seed(0)
    mixed = MixedOp(4, stride, PRIMITIVES)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    weights = torch.softmax(torch.randn(len(PRIMITIVES)), 0).requires_grad_()
    plain = sum(weights[PRIMITIVES.index(name)] * op(x) for name, op in mixed.ops.items())
    fast = mixed(x, weights)
    assert torch.allclose(fast, plain, atol=1e-6)
    (plain_x, plain_w), (fast_x, fast_w) = (torch.autograd.grad(y.sum(), (x, weights)) for y in (plain, fast))
    assert torch.allclose(fast_x, plain_x, atol=1e-5) and torch.allclose(fast_w, plain_w, atol=1e-5)


_SMALL_CHANNELS_LAST_STEPS = """
import torch
from pdarts.search.stage import SearchSettings, Stage, build_search, search_step
from pdarts.search_space import full_candidates
torch.manual_seed(0)
for channels, batch in ((2, 3), (4, 5), (2, 1)):
    settings = SearchSettings.defaults(init_channels=channels, channels_last=True, precision="fp32")
    ops = full_candidates(["skip_connect", "sep_conv_3x3"])
    p = build_search(ops, settings, Stage("s", 2, 0.0), 10, 3, torch.device("cpu"))
    p.model.train()
    for _ in range(3):
        x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
        search_step(p.model, (x, y), (x, y), p.weight_optimizer, p.alpha_optimizer, 5.0, p.precision)
print("ok")
"""


def test_channels_last_search_steps_on_small_batches_do_not_corrupt_memory():
    """oneDNN's channels_last backward of a strided 1x1 conv corrupts the heap on batches of 3 or 5
    (torch 2.14, AVX-512; benchmarks/repro_channels_last_abort.py): FactorizedReduce must not use it.
    In a child process, because the corruption aborts the interpreter ("double free or corruption")."""
    done = subprocess.run(
        [sys.executable, "-c", _SMALL_CHANNELS_LAST_STEPS], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


class _CountPools(TorchDispatchMode):
    """Counts the max-pool kernels run under it."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls += "max_pool2d" in func.__name__ and "backward" not in func.__name__
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("reduction", [False, True])
def test_a_search_cell_pools_each_state_once_with_the_plain_cells_values(monkeypatch, reduction):
    """The edges leaving one state with the same pool share one pooling and BatchNorm
    (``shared_pooled_batch_norm``): 5 max pools a forward pass instead of 14 (the last node's state has
    one edge), the same output, gradients and every edge's running statistics as the cell pooling per
    edge (the plain ops, on maps under ``MIN_ELEMENTS``)."""
    from pdarts import fast_ops
    from pdarts.search.model import SearchCell
    from pdarts.search_space import EDGES, PRIMITIVES

    torch.manual_seed(0)
    cells = [SearchCell([PRIMITIVES] * len(EDGES), 6, 6, 4, reduction, False, False) for _ in range(2)]
    cells[1].load_state_dict(cells[0].state_dict())
    s0, s1 = torch.randn(2, 6, 8, 8), torch.randn(2, 6, 8, 8)
    alphas = [torch.randn(len(PRIMITIVES), requires_grad=True) for _ in EDGES]
    grad = torch.randn(2, 16, 4 if reduction else 8, 4 if reduction else 8)
    results = []
    for cell, shared in zip(cells, (False, True)):
        monkeypatch.setattr(fast_ops, "MIN_ELEMENTS", 0 if shared else 1 << 30)
        with _CountPools() as counted:
            out = cell(s0, s1, [a.softmax(0) for a in alphas])
        grads = torch.autograd.grad(out, alphas + list(cell.parameters()), grad)
        results.append((counted.calls, out, grads))
    (plain_pools, plain, plain_grads), (pools, fast, fast_grads) = results
    assert (plain_pools, pools) == (14, 5)
    torch.testing.assert_close(fast, plain)
    for f, p in zip(fast_grads, plain_grads):
        torch.testing.assert_close(f, p, rtol=1e-4, atol=1e-5)
    for name, value in cells[0].state_dict().items():
        torch.testing.assert_close(cells[1].state_dict()[name], value, msg=name)
