"""The compiled skip-dropout kernel (``pdarts/native.py``): numpy's stream and masks bit for bit, the
plain ops' values both ways, and the plain ops where it cannot be built."""

import logging
import os

import numpy as np
import pytest
import torch

from pdarts import native
from pdarts.search import model
from pdarts.search.model import SkipDropout, _thresholds, keep_mask, pcg64_arguments

# Outside CI a machine without a C++ compiler skips the kernel's checks (the search then takes the
# plain ops); CI must build it.
needs_kernels = pytest.mark.skipif(
    native.skip_dropout_kernels() is None and not os.environ.get("CI"),
    reason="the kernel cannot be built here",
)


@needs_kernels
def test_the_kernel_builds():
    assert native.skip_dropout_kernels() is not None, "see the warning above for the compiler's error"


@needs_kernels
@pytest.mark.parametrize("seed", [0, 1, 2**63 - 2])
@pytest.mark.parametrize("skip", [0, 3, 1_000_003])
def test_the_kernel_draws_numpys_pcg64_stream_from_any_word(seed, skip):
    expected = np.random.PCG64(seed)
    expected.advance(skip)
    words = native.skip_dropout_kernels().raw_words(*pcg64_arguments(seed), skip, 999).numpy().view(np.uint64)
    assert np.array_equal(words, expected.random_raw(999))


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("p", [0.7, 0.4, 0.123456])
@pytest.mark.parametrize("shape", [(3, 5, 7, 9), (8, 16, 32, 32)])
def test_the_kernel_draws_keep_mask_and_gives_the_plain_values(dtype, layout, p, shape):
    torch.manual_seed(0)
    x = torch.randn(shape).to(dtype).contiguous(memory_format=layout)
    seed, scale = 987654321, torch.tensor(0.37) * (1 / (1 - p))
    y, keep = native.skip_dropout_kernels().forward(x, float(scale), *pcg64_arguments(seed), *_thresholds(p))
    expected_keep = keep_mask(seed, x.numel(), p)
    assert np.array_equal(keep.numpy(), expected_keep)
    plain = x * torch.from_numpy(expected_keep).as_strided(x.shape, x.stride()) * scale
    assert y.stride() == x.stride() and y.dtype == dtype
    assert torch.equal(y.view(torch.int16 if dtype == torch.bfloat16 else torch.int32),
                       plain.view(torch.int16 if dtype == torch.bfloat16 else torch.int32))  # fmt: skip
    if x.numel() > 100_000:  # the rare ties (1 in 65,536) were settled by the second draw
        first = np.random.PCG64(seed).random_raw(-(-x.numel() // 4)).view(np.uint16)[: x.numel()]
        assert (first == _thresholds(p)[0]).sum() > 0


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    ("shape", "layout"),
    [((8, 16, 32, 32), torch.channels_last), ((8, 16, 32, 32), torch.contiguous_format),
     ((256, 256, 1, 1), torch.channels_last)],  # the last both layouts at once: its gradient comes in another
)  # fmt: skip
def test_skip_dropout_by_the_kernel_gives_the_plain_ops_values_and_gradients(
    monkeypatch, dtype, shape, layout
):
    """Same output and input gradient, bit for bit; the scale's gradient, summed in fp32, within 1e-5 of
    the exact sum (torch's bf16 products are further off)."""
    x = torch.randn(shape).to(dtype).contiguous(memory_format=layout)
    grad = torch.randn(shape).to(dtype)  # contiguous
    dropout = SkipDropout()
    dropout.set_rate(0.3)
    results = {}
    for name, kernels in (("kernel", native.skip_dropout_kernels), ("plain", lambda: None)):
        monkeypatch.setattr(model, "skip_dropout_kernels", kernels)
        inputs = x.clone().requires_grad_()
        weight = torch.tensor(0.4, requires_grad=True)
        torch.manual_seed(3)
        y = dropout(inputs, weight)
        y.backward(grad)
        results[name] = y, inputs.grad, weight.grad
    (y, grad_x, grad_w), (plain_y, plain_grad_x, plain_grad_w) = results["kernel"], results["plain"]
    assert torch.equal(y, plain_y) and torch.equal(grad_x, plain_grad_x)
    keep = (y != 0).double()
    exact = (grad.double() * x.double() * keep).sum() / 0.7
    assert abs(grad_w.item() - exact.item()) <= 1e-5 * abs(exact.item())
    assert abs(plain_grad_w.item() - exact.item()) <= 1e-2 * abs(exact.item())
    assert (keep.mean() - 0.7).abs() < 0.01


def test_a_kernel_that_cannot_be_built_leaves_the_plain_ops_with_one_warning(monkeypatch, caplog):
    import torch.utils.cpp_extension

    calls = []

    def failing_load(**kwargs):
        calls.append(kwargs["name"])
        raise RuntimeError("Error building extension:\nskip_dropout.cpp:1:10: error: no C++ compiler here")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", failing_load)
    monkeypatch.setattr(native, "_loaded", {})
    with caplog.at_level(logging.WARNING, logger="pdarts.native"):
        assert native.skip_dropout_kernels() is None
        assert native.skip_dropout_kernels() is None
    assert calls == ["pdarts_skip_dropout"]  # tried once per process
    (record,) = caplog.records
    assert "error: no C++ compiler here" in record.getMessage() and "plain ops" in record.getMessage()
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert native.skip_dropout_kernels() is None and calls == ["pdarts_skip_dropout"]


def test_the_build_finds_the_ninja_package_where_the_path_has_none(monkeypatch):
    import ninja

    monkeypatch.setenv("PATH", "/nowhere")
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    with native._ninja_on_path():
        assert os.environ["PATH"].split(os.pathsep)[0] == ninja.BIN_DIR
    assert os.environ["PATH"] == "/nowhere"
