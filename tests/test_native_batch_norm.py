"""The compiled BatchNorm kernel (``pdarts/native.py``, ``csrc/batch_norm.cpp``): ATen's training-mode
statistics, values and gradients to fp32 rounding, as one autograd node, and where the library takes it."""

import dataclasses
import logging
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pdarts import fast_ops, native
from pdarts.fast_ops import BatchNorm2d, scaled_batch_norm

# Outside CI a machine without a C++ compiler skips the kernel's checks (the library then takes ATen's
# BatchNorm); CI must build it.
needs_kernels = pytest.mark.skipif(
    native.batch_norm_kernels() is None and not os.environ.get("CI"),
    reason="the kernel cannot be built here",
)

CHANNELS = [16, 32, 64, 128, 36, 8]  # compiled for 16..128; the others take the general loop
SHAPE = (8, 1, 12, 10)  # 960 rows: several blocks of rows for every channel count


def _map(channels: int, dtype=torch.float32, offset: float = 5.0, seed: int = 0) -> torch.Tensor:
    """A channels_last map whose channels sit far from zero (so a one-pass variance would lose digits)."""
    g = torch.Generator().manual_seed(seed)
    shape = (SHAPE[0], channels, *SHAPE[2:])
    x = offset + torch.randn(shape, generator=g) * torch.linspace(0.05, 2.0, channels).view(1, -1, 1, 1)
    return x.to(dtype).contiguous(memory_format=torch.channels_last)


def _vectors(channels: int):
    g = torch.Generator().manual_seed(1)
    return torch.rand(channels, generator=g) + 0.5, torch.randn(channels, generator=g)


def _close(dtype):
    # Of values divided by their largest: ATen's fp32 sums of about 1,000 terms move by 1e-5 of it with
    # the number of threads (1.03e-5 off on one thread); bf16 values may round the other way where the
    # two statistics differ in their last fp32 bits.
    return {"rtol": 5e-5, "atol": 5e-5} if dtype == torch.float32 else {"rtol": 8e-3, "atol": 8e-3}


@needs_kernels
def test_the_kernel_builds():
    assert native.batch_norm_kernels() is not None, "see the warning above for the compiler's error"


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("affine", [True, False])
def test_forward_has_atens_statistics_values_and_running_statistics(channels, dtype, affine):
    kernels = native.batch_norm_kernels()
    x = _map(channels, dtype)
    weight, bias = _vectors(channels) if affine else (None, None)
    running = [torch.randn(channels), torch.rand(channels) + 0.5]
    expected_running = [r.clone() for r in running]
    y, mean, invstd = kernels.forward(x, weight, bias, *running, 0.1, 1e-5, False)
    y_aten, mean_aten, invstd_aten = torch.native_batch_norm(
        x, weight, bias, *expected_running, True, 0.1, 1e-5
    )
    assert y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(running, expected_running, rtol=1e-6, atol=1e-6)
    # Against fp64: as close as ATen's kernel (which shares the form y = x * a + b, whose rounding
    # dominates on a map centred far from zero), statistics and values.
    exact = x.double()
    exact_mean = exact.mean((0, 2, 3))
    exact_invstd = (exact.var((0, 2, 3), unbiased=False) + 1e-5).rsqrt()
    y_exact = (exact - exact_mean.view(1, -1, 1, 1)) * exact_invstd.view(1, -1, 1, 1)
    if affine:
        y_exact = y_exact * weight.double().view(1, -1, 1, 1) + bias.double().view(1, -1, 1, 1)
    for got, aten, want in (
        (mean, mean_aten, exact_mean),
        (invstd, invstd_aten, exact_invstd),
        (y, y_aten, y_exact),
    ):
        error, aten_error = ((t.double() - want).abs().max().item() for t in (got, aten))
        assert error <= 2 * aten_error + 1e-6 * want.abs().max().item(), (error, aten_error)


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("mask", [(True, True, True), (True, False, False), (False, True, True)])
def test_backward_has_atens_gradients(channels, dtype, mask):
    kernels = native.batch_norm_kernels()
    x = _map(channels, dtype)
    grad = _map(channels, dtype, offset=0.3, seed=2)
    weight, _ = _vectors(channels)
    _, mean, invstd = torch.native_batch_norm(x, weight, None, None, None, True, 0.0, 1e-5)
    got = kernels.backward(grad, x, weight, None, mean, invstd, *mask, False)
    expected = torch.ops.aten.native_batch_norm_backward(
        grad, x, weight, None, None, mean, invstd, True, 1e-5, list(mask)
    )
    for wanted, g, e in zip(mask, got, expected):
        if not wanted:
            assert g is None
            continue
        assert g.dtype == e.dtype
        scale = e.float().abs().max()
        torch.testing.assert_close(g.float() / scale, e.float() / scale, **_close(dtype))


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_autograd_node_gives_each_input_its_gradient_and_keeps_only_its_input(dtype):
    """``train_batch_norm``: the gradients of x, weight and bias as ATen's layer gives them (each only where
    it is needed), a gradient that arrives in other strides, and a ReLU in place on its output (it keeps
    x, not y, for the backward pass)."""
    kernels = native.batch_norm_kernels()
    channels = 32
    weight, bias = _vectors(channels)
    grad = torch.randn(SHAPE[0], channels, *SHAPE[2:]).transpose(2, 3).contiguous().transpose(2, 3)
    for needs in [(True, True, True), (True, False, False), (False, True, False), (True, True, None)]:
        results = []
        for layer in (kernels.train_batch_norm, F.batch_norm):
            x = _map(channels, dtype).requires_grad_(needs[0])
            w = weight.clone().requires_grad_(needs[1])
            b = None if needs[2] is None else bias.clone().requires_grad_(needs[2])
            running = [torch.zeros(channels), torch.ones(channels)]
            if layer is F.batch_norm:
                y = F.batch_norm(x, *running, w, b, True, 0.1, 1e-5)
            else:
                y = layer(x, w, b, *running, 0.1, 1e-5, False)
            y = y.relu_()
            inputs = [t for t in (x, w, b) if t is not None and t.requires_grad]
            results.append([y, *running, *torch.autograd.grad(y, inputs, grad.to(dtype))])
        for got, expected in zip(*results):
            scale = expected.float().abs().max()
            torch.testing.assert_close(got.float() / scale, expected.float() / scale, **_close(dtype))


@needs_kernels
def test_the_library_takes_the_kernel_on_large_channels_last_maps_with_the_plain_results(monkeypatch):
    """``scaled_batch_norm`` (a search edge's last BatchNorm) and ``BatchNorm2d`` take the kernel on
    channels_last maps of ``MIN_ELEMENTS`` or more in training, with the plain layer's values, gradients,
    running statistics and batch count; ATen's elsewhere."""
    calls = []
    monkeypatch.setattr(
        fast_ops, "batch_norm_kernels", lambda: calls.append(1) or native.batch_norm_kernels()
    )
    x = (torch.randn(32, 16, 16, 8) + 1).contiguous(memory_format=torch.channels_last)
    assert x.numel() >= fast_ops.MIN_ELEMENTS
    grad = torch.randn_like(x)
    scale = torch.tensor(0.3, requires_grad=True)
    for make in (lambda: nn.BatchNorm2d(16, affine=False), lambda: BatchNorm2d(16)):
        results = []
        for fast in (True, False):
            bn = make()
            xi = x.clone().requires_grad_()
            calls.clear()
            if fast:
                y = scaled_batch_norm(bn, xi, scale) if not bn.affine else bn(xi)
            else:
                # contiguous: ATen's channels_last backward kernel gets the input gradient wrong with a
                # stride-0 weight (torch 2.14, CPU; 1.5 off at this size)
                weight = scale.expand(16).contiguous() if not bn.affine else bn.weight
                y = F.batch_norm(xi, bn.running_mean, bn.running_var, weight, bn.bias, True, 0.1, bn.eps)
                bn.num_batches_tracked += 1
            assert bool(calls) == fast
            params = [xi, scale] if not bn.affine else [xi, bn.weight, bn.bias]
            grads = torch.autograd.grad(y, params, grad)
            results.append([y, *grads, bn.running_mean, bn.running_var, bn.num_batches_tracked])
        for got, expected in zip(*results):  # sums of 4,096 terms near 1: ATen's fp32 sums are off by 1e-4
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=2e-4)
    calls.clear()
    small = torch.randn(2, 16, 4, 4).contiguous(memory_format=torch.channels_last)
    bn = nn.BatchNorm2d(16, affine=False)
    scaled_batch_norm(bn, small, scale)  # under MIN_ELEMENTS
    scaled_batch_norm(bn, x.contiguous(), scale)  # NCHW
    odd = torch.randn(3, 20, 33, 37).contiguous(memory_format=torch.channels_last)
    assert odd.numel() >= fast_ops.MIN_ELEMENTS
    scaled_batch_norm(nn.BatchNorm2d(20, affine=False), odd, scale)  # 3,663 pixels: not rows of 4
    bn.eval()
    scaled_batch_norm(bn, x, scale)  # eval mode: the running statistics
    assert not calls


def test_without_the_kernel_the_library_takes_atens_batch_norm(monkeypatch, caplog):
    """A build that fails gives one warning naming the compiler's error, and ATen's BatchNorm; so does
    ``PDARTS_NATIVE=0``, without trying."""
    import torch.utils.cpp_extension

    calls = []

    def failing_load(**kwargs):
        calls.append(kwargs["name"])
        raise RuntimeError("Error building extension:\nbatch_norm.cpp:1:10: error: no C++ compiler here")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", failing_load)
    monkeypatch.setattr(native, "_loaded", {})
    x = (torch.randn(32, 16, 16, 8) + 1).contiguous(memory_format=torch.channels_last)
    bn = nn.BatchNorm2d(16, affine=False)
    with caplog.at_level(logging.WARNING, logger="pdarts.native"):
        y = scaled_batch_norm(bn, x, torch.tensor(0.5))
        assert native.batch_norm_kernels() is None
    assert calls == ["pdarts_batch_norm"]  # tried once per process
    (record,) = caplog.records
    assert "BatchNorm" in record.getMessage() and "error: no C++ compiler here" in record.getMessage()
    torch.testing.assert_close(y, 0.5 * F.batch_norm(x, None, None, training=True))
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert native.batch_norm_kernels() is None and calls == ["pdarts_batch_norm"]


@needs_kernels
def test_a_search_with_the_kernel_keeps_its_alphas_and_pruning_and_checkpoints_replay_it(monkeypatch):
    """A channels_last search with every BatchNorm through the kernel (``MIN_ELEMENTS`` 0) against the same
    search through ATen's: the alphas to 1e-5 and the same pruning; the kernel is deterministic, so a
    checkpointed cell's recomputation gives the same search exactly."""
    from tests.search.test_speed import DROPOUT, FP32, _search, assert_same_search_and_replay

    settings = dataclasses.replace(FP32, epochs=2, warmup_epochs=1, channels_last=True)
    monkeypatch.setattr(fast_ops, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(fast_ops, "batch_norm_kernels", lambda: None)
    plain = _search(settings, stage=DROPOUT)
    used = []
    monkeypatch.setattr(fast_ops, "batch_norm_kernels", lambda: used.append(1) or native.batch_norm_kernels())
    compiled = _search(settings, stage=DROPOUT)
    assert used
    assert_same_search_and_replay(compiled, plain, settings)


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels", [16, 36])
@pytest.mark.parametrize("affine", [True, False])
def test_the_fused_relu_has_the_values_and_gradients_of_batch_norm_then_relu(channels, dtype, affine):
    """``relu=True``: BatchNorm and a ReLU as one node, its gradient gated by the pre-activation
    recomputed from x (nothing more kept): the two ops' values and gradients."""
    kernels = native.batch_norm_kernels()
    weight, bias = _vectors(channels) if affine else (None, None)
    grad = _map(channels, dtype, offset=0.0, seed=3)
    results = []
    for fused in (True, False):
        x = _map(channels, dtype, offset=0.5).requires_grad_()
        params = [p.clone().requires_grad_() for p in (weight, bias) if p is not None]
        w, b = params if affine else (None, None)
        running = [torch.zeros(channels), torch.ones(channels)]
        if fused:
            y = kernels.train_batch_norm(x, w, b, *running, 0.1, 1e-5, True)
        else:
            y = F.batch_norm(x, *running, w, b, True, 0.1, 1e-5).relu()
        assert 0.2 < (y == 0).float().mean() < 0.8  # the gate matters
        results.append([y, *running, *torch.autograd.grad(y, [x, *params], grad)])
    for got, expected in zip(*results):
        scale = expected.float().abs().max()
        torch.testing.assert_close(got.float() / scale, expected.float() / scale, **_close(dtype))


def test_batch_norm_relu_and_a_separable_convolution_are_the_plain_ops_with_or_without_the_kernel(
    monkeypatch,
):
    """``batch_norm_relu`` and ``SepConv`` (whose first half ends in it) against ``relu(bn(x))`` and the
    plain sequence of modules: with the kernel, without it (ATen's BatchNorm and an in-place ReLU), and
    in eval mode."""
    from pdarts.fast_ops import batch_norm_relu
    from pdarts.operations import SepConv

    torch.manual_seed(0)
    x = (torch.randn(32, 16, 16, 8) + 0.3).contiguous(memory_format=torch.channels_last)
    for kernels in (native.batch_norm_kernels, lambda: None):
        monkeypatch.setattr(fast_ops, "batch_norm_kernels", kernels)
        for training in (True, False):
            bn, plain = BatchNorm2d(16), nn.BatchNorm2d(16)
            plain.load_state_dict(bn.state_dict())
            bn.train(training), plain.train(training)
            torch.testing.assert_close(batch_norm_relu(bn, x), plain(x).relu(), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(bn.running_var, plain.running_var)
            op = SepConv(16, 16, 3, 1, 1, affine=True).train(training)
            reference = SepConv(16, 16, 3, 1, 1, affine=True).train(training)
            reference.load_state_dict(op.state_dict())
            xi, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
            y, expected = op(xi), nn.Sequential.forward(reference, xr)
            torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)
            if training:
                g = torch.randn_like(y)
                got = torch.autograd.grad(y, [xi, *op.parameters()], g)
                want = torch.autograd.grad(expected, [xr, *reference.parameters()], g)
                for a, b in zip(got, want):
                    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
