"""pdarts.fast_ops and dense_gradient: the same values and gradients as the plain ops, less kept."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from pdarts import fast_ops
from pdarts.fast_ops import depthwise_conv2d, pointwise_batch_norm, pooled_batch_norm, scaled_batch_norm
from pdarts.layers import dense_gradient
from pdarts.search_space import PRIMITIVES

LAYOUTS = [torch.contiguous_format, torch.channels_last]
#: The fast forms of BatchNorm also run on CUDA (fp32): these tests run there too where a GPU is.
_NO_GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=_NO_GPU)]


@pytest.fixture(autouse=True, params=["compiled BatchNorm", "ATen BatchNorm"])
def fast_ops_on_small_tensors(monkeypatch, request):
    """The tests' tensors are small: take the fast forms anyway; each test runs with the compiled
    BatchNorm kernel (where it can be built) and with ATen's (with the wide form where it applies)."""
    monkeypatch.setattr(fast_ops, "MIN_ELEMENTS", 0)
    if request.param == "ATen BatchNorm":
        monkeypatch.setattr(fast_ops, "batch_norm_kernels", lambda: None)


def _kept_storages(fn):
    """The storages autograd keeps for the backward pass of ``fn()``, and its result."""
    kept = set()

    def pack(t):
        kept.add(t.untyped_storage().data_ptr())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return kept, out


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "kernel,dilation,padding", [(3, 1, 1), (5, 1, 2), (3, 2, 2), (5, 2, 4), (3, 1, 0), (5, 2, 1)]
)
def test_depthwise_conv_has_the_plain_values_and_gradients(kernel, dilation, padding, layout):
    torch.manual_seed(0)
    x = torch.randn(3, 6, 9, 9).contiguous(memory_format=layout).requires_grad_()
    weight = torch.randn(6, 1, kernel, kernel, requires_grad=True)
    size = 9 + 2 * padding - dilation * (kernel - 1)
    grad = torch.randn(3, 6, size, size)
    fast = depthwise_conv2d(x, weight, (1, 1), (padding, padding), (dilation, dilation))
    plain = F.conv2d(x, weight, None, 1, padding, dilation, 6)
    # An undilated 3x3 kernel on a channels_last map takes the plain ops (oneDNN's kernels are as fast).
    form = not (kernel == 3 and dilation == 1 and layout == torch.channels_last)
    assert fast.grad_fn is not None and (type(fast.grad_fn) is not type(plain.grad_fn)) == form
    assert torch.equal(fast, plain)
    fast_grads = torch.autograd.grad(fast, (x, weight), grad)
    plain_grads = torch.autograd.grad(plain, (x, weight), grad)
    for f, p in zip(fast_grads, plain_grads):
        torch.testing.assert_close(f, p, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernel,size", [(3, 8), (5, 8), (5, 9), (3, 9)])
def test_a_strided_depthwise_conv_has_the_plain_values_and_gradients(kernel, size, layout):
    """Stride 2 (a reduction cell's separable convolution): the input gradient by a transposed
    convolution, the same numbers as the plain backward pass, on even and odd sizes."""
    torch.manual_seed(0)
    x = torch.randn(3, 6, size, size).contiguous(memory_format=layout).requires_grad_()
    weight = torch.randn(6, 1, kernel, kernel, requires_grad=True)
    padding = kernel // 2
    fast = depthwise_conv2d(x, weight, (2, 2), (padding, padding), (1, 1))
    plain = F.conv2d(x, weight, None, 2, padding, 1, 6)
    assert type(fast.grad_fn).__name__ != type(plain.grad_fn).__name__
    assert torch.equal(fast, plain)
    grad = torch.randn_like(plain)
    fast_grads = torch.autograd.grad(fast, (x, weight), grad)
    plain_grads = torch.autograd.grad(plain, (x, weight), grad)
    assert fast_grads[0].shape == x.shape
    for f, p in zip(fast_grads, plain_grads):
        torch.testing.assert_close(f, p, rtol=1e-5, atol=1e-5)


def test_depthwise_conv_keeps_its_input_only_for_a_weight_gradient():
    x = torch.randn(2, 4, 8, 8).relu().requires_grad_()  # a fresh storage of its own
    weight = torch.randn(4, 1, 3, 3)
    kept, _ = _kept_storages(lambda: depthwise_conv2d(x, weight, (1, 1), (2, 2), (2, 2)))
    assert x.untyped_storage().data_ptr() not in kept
    weight.requires_grad_()
    kept, _ = _kept_storages(lambda: depthwise_conv2d(x, weight, (1, 1), (2, 2), (2, 2)))
    assert x.untyped_storage().data_ptr() in kept


def test_depthwise_conv_is_plain_where_its_form_does_not_apply():
    x, weight = torch.randn(2, 4, 8, 8, requires_grad=True), torch.randn(4, 1, 3, 3)
    wide = torch.randn(2, 8, 8, 8, requires_grad=True)
    grouped = depthwise_conv2d(wide, torch.randn(4, 2, 3, 3), (1, 1), (1, 1), (1, 1))  # not depthwise
    assert type(grouped.grad_fn).__name__ == "ConvolutionBackward0"
    with torch.autocast("cpu", dtype=torch.float16):
        reduced = depthwise_conv2d(x, weight, (1, 1), (1, 1), (1, 1))
    assert reduced.dtype == torch.float16 and type(reduced.grad_fn).__name__ == "ConvolutionBackward0"
    with pytest.raises(RuntimeError, match="should be the same"):  # mixed dtypes: F.conv2d's error
        depthwise_conv2d(x.bfloat16(), weight, (1, 1), (1, 1), (1, 1))


def _error(value: torch.Tensor, exact: torch.Tensor) -> float:
    return ((value.float() - exact).norm() / exact.norm()).item()


@pytest.mark.parametrize(
    "kernel,dilation,padding,stride",
    [(3, 1, 1, 1), (5, 1, 2, 1), (3, 2, 2, 1), (5, 2, 4, 1), (3, 1, 1, 2), (5, 1, 2, 2)],
)
def test_depthwise_conv_under_bf16_autocast_is_as_close_to_fp32_as_the_plain_one(
    kernel, dilation, padding, stride
):
    """Under bf16 autocast (channels_last): stride 1 in bf16, the same forward values as autocast's
    convolution and gradients as close to fp32's as its backward pass; stride 2 in fp32, exactly
    the fp32 convolution (oneDNN's strided bf16 depthwise kernels are the slow ones)."""
    torch.manual_seed(0)
    x = torch.randn(4, 16, 12, 12).contiguous(memory_format=torch.channels_last).requires_grad_()
    weight = torch.randn(16, 1, kernel, kernel, requires_grad=True)
    args = (stride, padding, dilation, 16)
    exact = F.conv2d(x, weight, None, *args)
    grad = torch.randn_like(exact)
    exact_grads = torch.autograd.grad(exact, (x, weight), grad)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = depthwise_conv2d(x, weight, (stride, stride), (padding, padding), (dilation, dilation))
        plain = F.conv2d(x, weight, None, *args)
    form = (kernel, dilation, stride) != (3, 1, 1)  # an undilated 3x3 takes the plain ops
    assert (type(fast.grad_fn) is not type(plain.grad_fn)) == form
    fast_grads = torch.autograd.grad(fast, (x, weight), grad)
    assert [g.dtype for g in fast_grads] == [torch.float32, torch.float32]
    if stride > 1:
        assert fast.dtype == torch.float32 and torch.equal(fast, exact)
        for f, e in zip(fast_grads, exact_grads):
            torch.testing.assert_close(f, e, rtol=1e-5, atol=1e-5)
        return
    assert fast.dtype == torch.bfloat16 and torch.equal(fast, plain)
    plain_grads = torch.autograd.grad(plain, (x, weight), grad)
    for f, p, e in zip(fast_grads, plain_grads, exact_grads):
        assert _error(f, e) < 1e-2 and _error(f, e) <= 2 * _error(p, e) + 1e-3


@pytest.mark.parametrize("momentum", [0.1, None])
def test_scaled_batch_norm_is_the_scale_times_batch_norm_with_the_same_statistics(momentum):
    torch.manual_seed(0)
    plain, scaled = (
        nn.BatchNorm2d(5, affine=False, momentum=momentum),
        nn.BatchNorm2d(5, affine=False, momentum=momentum),
    )
    x = torch.randn(4, 5, 6, 6) * 3 + 1
    scale = torch.tensor(0.37, requires_grad=True)
    for _ in range(2):
        torch.testing.assert_close(scaled_batch_norm(scaled, x, scale), scale * plain(x))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(plain, name), getattr(scaled, name)), name
    plain.eval(), scaled.eval()
    torch.testing.assert_close(scaled_batch_norm(scaled, x, scale), scale * plain(x))
    assert scaled_batch_norm(scaled, x, None).equal(plain(x))
    with pytest.raises(ValueError, match="without affine"):
        scaled_batch_norm(nn.BatchNorm2d(5), x, scale)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("weights_trained", [True, False])
@pytest.mark.parametrize("channels", [16, 20])  # 20 in channels_last on the CPU: the wide BatchNorm
def test_pointwise_batch_norm_has_the_plain_values_gradients_and_statistics(
    channels, weights_trained, layout, device
):
    torch.manual_seed(0)
    fast_bn, plain_bn = nn.BatchNorm2d(channels, affine=False), nn.BatchNorm2d(channels, affine=False)
    fast_bn, plain_bn = fast_bn.to(device), plain_bn.to(device)
    x = torch.randn(4, 5, 8, 8, device=device).contiguous(memory_format=layout).relu().requires_grad_()
    weight = torch.randn(channels, 5, 1, 1, device=device, requires_grad=weights_trained)
    # A weight step's scale is a constant (no gradient), an architecture step's weight too.
    scale = torch.tensor(0.6, device=device, requires_grad=not weights_trained)
    grad = torch.randn(4, channels, 8, 8, device=device).transpose(2, 3)  # strided, as from a cat
    kept, fast = _kept_storages(lambda: pointwise_batch_norm(x, weight, fast_bn, scale))
    plain = scale * plain_bn(F.conv2d(x, weight))
    torch.testing.assert_close(fast, plain)
    inputs = [t for t in (x, weight, scale) if t.requires_grad]
    for f, p in zip(torch.autograd.grad(fast, inputs, grad), torch.autograd.grad(plain, inputs, grad)):
        torch.testing.assert_close(f, p, rtol=1e-4, atol=1e-5)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(fast_bn, name), getattr(plain_bn, name), msg=name)
    # One activation kept, not two: the input for the weight gradient, or the convolution's output.
    assert (x.untyped_storage().data_ptr() in kept) == weights_trained
    assert sum(1 for _ in kept) <= 5  # input or output, weight, scale, mean, invstd


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scale_trained", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("pool", [nn.MaxPool2d(3, 1, 1), nn.AvgPool2d(3, 1, 1, count_include_pad=False)])
@pytest.mark.parametrize("channels", [5, 20])  # 20 in channels_last on the CPU: the wide BatchNorm
def test_pooled_batch_norm_has_the_plain_values_gradients_and_statistics_and_keeps_only_its_input(
    channels, pool, layout, scale_trained, device
):
    torch.manual_seed(0)
    fast_bn, plain_bn = nn.BatchNorm2d(channels, affine=False), nn.BatchNorm2d(channels, affine=False)
    fast_bn, plain_bn = fast_bn.to(device), plain_bn.to(device)
    x = torch.randn(4, channels, 7, 7, device=device).contiguous(memory_format=layout).requires_grad_()
    scale = torch.tensor(0.6, device=device, requires_grad=scale_trained)
    grad = torch.randn(4, channels, 7, 7, device=device).transpose(2, 3)
    kept, fast = _kept_storages(lambda: pooled_batch_norm(x, pool, fast_bn, scale))
    plain = scale * plain_bn(pool(x))
    torch.testing.assert_close(fast, plain)
    inputs = [t for t in (x, scale) if t.requires_grad]
    for f, p in zip(torch.autograd.grad(fast, inputs, grad), torch.autograd.grad(plain, inputs, grad)):
        torch.testing.assert_close(f, p, rtol=1e-4, atol=1e-5)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(fast_bn, name), getattr(plain_bn, name), msg=name)
    big = {ptr for ptr in kept if ptr != x.untyped_storage().data_ptr()}
    assert x.untyped_storage().data_ptr() in kept and len(big) <= 3  # scale, mean, invstd or var


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scale_trained", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("pool", [nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(3, 1, 1, count_include_pad=False)])
@pytest.mark.parametrize("channels", [5, 20])  # 20 in channels_last: the wide BatchNorm
def test_shared_pooled_batch_norm_is_each_edges_pooled_batch_norm_and_keeps_only_its_input(
    channels, pool, layout, scale_trained, device
):
    """Three edges leaving one state with the same pool: one pooling and BatchNorm, the same outputs,
    gradients and running statistics as three plain ones, twice (the statistics compound)."""
    torch.manual_seed(0)
    fast_bns = [nn.BatchNorm2d(channels, affine=False).to(device) for _ in range(3)]
    plain_bns = [nn.BatchNorm2d(channels, affine=False).to(device) for _ in range(3)]
    scales = [torch.tensor(s, device=device, requires_grad=scale_trained) for s in (0.6, 0.3, 1.7)]
    for _ in range(2):
        x = 2 * torch.randn(4, channels, 8, 8, device=device) + 1
        x = x.contiguous(memory_format=layout).requires_grad_()
        kept, fast = _kept_storages(lambda x=x: fast_ops.shared_pooled_batch_norm(x, pool, fast_bns, scales))
        plain = [s * bn(pool(x)) for s, bn in zip(scales, plain_bns)]
        size = plain[0].shape[-1]
        grads = [torch.randn(4, channels, size, size, device=device).transpose(2, 3) for _ in plain]
        for f, p in zip(fast, plain):
            torch.testing.assert_close(f, p)
        inputs = [x] + [s for s in scales if s.requires_grad]
        fast_grads = torch.autograd.grad(fast, inputs, grads)
        plain_grads = torch.autograd.grad(plain, inputs, grads)
        for f, p in zip(fast_grads, plain_grads):
            torch.testing.assert_close(f, p, rtol=1e-4, atol=1e-5)
        for fast_bn, plain_bn in zip(fast_bns, plain_bns):
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                torch.testing.assert_close(getattr(fast_bn, name), getattr(plain_bn, name))
        big = {ptr for ptr in kept if ptr != x.untyped_storage().data_ptr()}
        assert x.untyped_storage().data_ptr() in kept and len(big) <= 5  # mean, invstd, 3 scales


def _search_form(form: str, x, bns, scales, pool):
    """One of the search's pooling forms of ``fast_ops`` on ``x`` (a list of outputs)."""
    if form == "pooled":
        return [pooled_batch_norm(x, pool, bns[0], scales[0])]
    return fast_ops.shared_pooled_batch_norm(x, pool, bns, scales)


@pytest.mark.parametrize("x_dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("form", ["pooled", "shared"])
@pytest.mark.parametrize("channels", [16, 20])  # ATen's BatchNorm kernels, the wide BatchNorm
def test_search_forms_under_bf16_autocast_are_as_close_to_fp32_as_the_plain_ops(channels, form, x_dtype):
    """A bf16 search step (CPU autocast, channels_last): each pooling form runs (not the plain ops),
    its map in the dtype autocast gives it (a pool's: its input's), with fp32 running statistics and
    gradients in each input's dtype, as close to the fp32 results as the plain ops under autocast."""
    torch.manual_seed(0)
    pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    size = 8
    x = (2 * torch.randn(4, channels, size, size) + 1).contiguous(memory_format=torch.channels_last)
    grads = [
        torch.randn(4, channels, size, size).contiguous(memory_format=torch.channels_last) for _ in range(3)
    ]
    results = {}
    for name in ("fast", "plain", "exact"):
        bns = [nn.BatchNorm2d(channels, affine=False) for _ in range(3 if form == "shared" else 1)]
        scales = [torch.tensor(s, requires_grad=True) for s in (0.6, 0.3, 1.7)][: len(bns)]
        xi = (x if name == "exact" else x.to(x_dtype)).detach().requires_grad_()
        inputs = [xi, *scales]
        if name == "exact":
            outs = [s * bn(pool(xi)) for s, bn in zip(scales, bns)]
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                if name == "plain":
                    z = pool(xi)
                    outs = [s * bn(z) for s, bn in zip(scales, bns)]
                else:
                    outs = _search_form(form, xi, bns, scales, pool)
        grad_fns = {type(out.grad_fn).__name__ for out in outs}
        got = torch.autograd.grad(outs, inputs, [g.to(o.dtype) for g, o in zip(grads, outs)])
        results[name] = (
            outs,
            got,
            [bn.running_mean for bn in bns] + [bn.running_var for bn in bns],
            grad_fns,
        )
    (fast, fast_grads, fast_stats, fast_fns), (plain, plain_grads, plain_stats, plain_fns) = (
        results["fast"],
        results["plain"],
    )
    exact, exact_grads, exact_stats, _ = results["exact"]
    assert fast_fns.isdisjoint(plain_fns)  # the form ran
    assert {out.dtype for out in fast} == {x_dtype} == {out.dtype for out in plain}
    assert (
        [g.dtype for g in fast_grads]
        == [g.dtype for g in plain_grads]
        == [x_dtype] + [torch.float32] * (len(fast_grads) - 1)
    )
    assert {t.dtype for t in fast_stats} == {torch.float32}
    for f, p, e in zip(
        [*fast, *fast_grads, *fast_stats],
        [*plain, *plain_grads, *plain_stats],
        [*exact, *exact_grads, *exact_stats],
    ):
        if f.numel() == 1:
            # A scale's gradient is one sum of bf16 products that largely cancel: its error is the
            # plain ops' order (2-10 % on some draws), bounded against theirs.
            assert _error(f, e) <= 2 * _error(p, e) + 2e-2
        else:
            assert _error(f, e) < 2e-2 and _error(f, e) <= 2 * _error(p, e) + 1e-3


def test_pointwise_batch_norm_is_plain_in_eval_mode_and_without_gradients():
    bn = nn.BatchNorm2d(3, affine=False).eval()
    x, weight = torch.randn(2, 4, 5, 5), torch.randn(3, 4, 1, 1)
    torch.testing.assert_close(pointwise_batch_norm(x, weight, bn), bn(F.conv2d(x, weight)))
    bn.train()
    with torch.no_grad():
        out = pointwise_batch_norm(x, weight, bn)
    assert out.grad_fn is None and int(bn.num_batches_tracked) == 1


def test_pointwise_batch_norm_takes_the_plain_ops_under_bf16_autocast():
    """Under the CPU's bf16 autocast the 1x1 convolution and its BatchNorm are the plain ops (faster
    there; bf16 halves the memory the form saves): the same values, gradients and statistics, bit for
    bit, and no ``_PointwiseBatchNorm`` in the graph; in fp32 the form."""
    torch.manual_seed(0)
    x = torch.randn(4, 12, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    weight = torch.randn(16, 12, 1, 1, requires_grad=True)
    scale = torch.tensor(0.4, requires_grad=True)
    results = []
    for fast in (True, False):
        bn = nn.BatchNorm2d(16, affine=False)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = (
                pointwise_batch_norm(x, weight, bn, scale)
                if fast
                else scaled_batch_norm(bn, F.conv2d(x, weight), scale)
            )
        assert out.dtype == torch.bfloat16 and "Pointwise" not in type(out.grad_fn).__name__
        grads = torch.autograd.grad(out, (x, weight, scale), torch.ones_like(out))
        results.append([out, *grads, bn.running_mean, bn.running_var])
    for a, b in zip(*results):
        assert torch.equal(a, b)
    fp32 = pointwise_batch_norm(x, weight, nn.BatchNorm2d(16, affine=False), scale)
    assert "Pointwise" in type(fp32.grad_fn).__name__


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("channels", [36, 20, 6])
def test_batch_norm_of_a_channels_last_map_has_the_plain_values_gradients_and_statistics(channels, affine):
    """``fast_ops.BatchNorm2d`` over widths that are not multiples of 16 (rows of 4, 4 and 8 pixels),
    on an offset map (the centring matters), twice (the running statistics compound)."""
    torch.manual_seed(0)
    plain = nn.BatchNorm2d(channels, affine=affine)
    if affine:
        nn.init.uniform_(plain.weight, 0.5, 1.5)
        nn.init.normal_(plain.bias)
    fast = fast_ops.BatchNorm2d(channels, affine=affine)
    fast.load_state_dict(plain.state_dict())
    x = (3 * torch.randn(4, channels, 6, 6) + 2).contiguous(memory_format=torch.channels_last)
    assert fast_ops._train_form_applies(x, fast)
    grad = torch.randn(4, channels, 6, 6).transpose(2, 3)  # strided, as from a cat
    results = {}
    for name, bn in (("plain", plain), ("fast", fast)):
        xi = x.clone().requires_grad_()
        for _ in range(2):
            out = bn(xi).relu_()  # in place, as SepConv's second ReLU: a tensor of its own, not a view
            out.backward(grad)
        assert out.is_contiguous(memory_format=torch.channels_last)
        results[name] = [out, xi.grad, *(p.grad for p in bn.parameters())]
        results[name] += [bn.running_mean, bn.running_var, bn.num_batches_tracked]
    assert type(results["fast"][0].grad_fn.next_functions[0][0]) is not type(
        results["plain"][0].grad_fn.next_functions[0][0]
    )
    assert len(results["fast"]) == len(results["plain"]) == (7 if affine else 5)
    for f, p in zip(results["fast"], results["plain"]):
        torch.testing.assert_close(f, p, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels", [36, 20])
def test_batch_norm_of_a_bf16_map_is_as_close_to_fp32_as_the_plain_one(channels):
    """``fast_ops.BatchNorm2d`` over a bf16 channels_last map (a bf16 autocast training step): fp32
    statistics and parameter gradients, values and input gradient as close to fp32's as ATen's
    mixed-precision kernels."""
    torch.manual_seed(0)
    plain = nn.BatchNorm2d(channels)
    nn.init.uniform_(plain.weight, 0.5, 1.5)
    nn.init.normal_(plain.bias)
    fast = fast_ops.BatchNorm2d(channels)
    exact = nn.BatchNorm2d(channels)
    fast.load_state_dict(plain.state_dict())
    exact.load_state_dict(plain.state_dict())
    x = (3 * torch.randn(4, channels, 8, 8) + 2).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(4, channels, 8, 8).contiguous(memory_format=torch.channels_last)
    assert fast_ops._train_form_applies(x.bfloat16(), fast)
    results = {}
    for name, bn, xi in (("plain", plain, x.bfloat16()), ("fast", fast, x.bfloat16()), ("exact", exact, x)):
        xi.requires_grad_()
        out = bn(xi)
        out.backward(grad.to(out.dtype))
        results[name] = [out, xi.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var]
    assert results["fast"][0].dtype == torch.bfloat16
    assert [t.dtype for t in results["fast"][2:]] == [torch.float32] * 4
    for f, p, e in zip(results["fast"], results["plain"], results["exact"]):
        assert _error(f, e) < 2e-2 and _error(f, e) <= 2 * _error(p, e) + 1e-3


def test_batch_norm_is_plain_where_its_form_does_not_apply():
    bn = fast_ops.BatchNorm2d(20)
    channels_last = torch.randn(4, 20, 6, 6).contiguous(memory_format=torch.channels_last)
    assert fast_ops._wide_applies(channels_last) and fast_ops._train_form_applies(channels_last, bn)
    assert not fast_ops._wide_applies(channels_last.contiguous())  # NCHW: fast already
    assert not fast_ops._train_form_applies(channels_last.contiguous(), bn)
    assert not fast_ops._wide_applies(channels_last[:, :16].contiguous(memory_format=torch.channels_last))
    assert not fast_ops._wide_applies(channels_last[:1, :, :3, :3])  # 9 pixels, rows of 4
    assert not fast_ops._train_form_applies(channels_last.double(), bn)
    bn.eval()
    assert not fast_ops._train_form_applies(channels_last, bn)
    torch.testing.assert_close(
        bn(channels_last), F.batch_norm(channels_last, bn.running_mean, bn.running_var, bn.weight, bn.bias)
    )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_subsample_has_the_slices_values_and_hands_back_one_gradient_in_the_input_layout(layout):
    x = torch.randn(2, 6, 8, 8).contiguous(memory_format=layout).relu().requires_grad_()
    even, odd = fast_ops.subsample(x, 0, 1)
    assert torch.equal(even, x[:, :, ::2, ::2]) and torch.equal(odd, x[:, :, 1::2, 1::2])
    grads = torch.randn(2, 6, 4, 4), torch.randn(2, 6, 4, 4).transpose(2, 3)
    (fast,) = torch.autograd.grad((even, odd), x, grads)
    (plain,) = torch.autograd.grad((x[:, :, ::2, ::2], x[:, :, 1::2, 1::2]), x, grads)
    assert torch.equal(fast, plain)
    assert fast.is_contiguous(memory_format=layout)
    if layout == torch.channels_last:  # a plain slice's gradient comes back in the other layout
        assert not plain.is_contiguous(memory_format=layout)
    (only_even,) = torch.autograd.grad(fast_ops.subsample(x, 0), x, grads[0])
    assert torch.equal(only_even, torch.autograd.grad(x[:, :, ::2, ::2], x, grads[0])[0])


def test_dense_gradient_hands_on_the_same_gradient_in_the_input_layout():
    x = torch.randn(2, 4, 5, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    seen = []
    y = dense_gradient(x * 1.0)
    y.register_hook(lambda g: seen.append(g))
    x.retain_grad()
    grad = torch.randn(2, 8, 5, 5)[:, 2:6]  # a channel slice: strided
    y.backward(grad)
    assert torch.equal(x.grad, grad)
    assert x.grad.is_contiguous(memory_format=torch.channels_last)
    plain = torch.randn(3)
    assert dense_gradient(plain) is plain  # nothing to do without a gradient


class _CountRelus(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func is torch.ops.aten.relu.default
        return func(*args, **(kwargs or {}))


def test_a_search_cell_computes_one_relu_per_state_for_all_its_convolutions():
    from pdarts.search.model import SearchCell
    from pdarts.search_space import full_candidates

    cell = SearchCell(
        full_candidates(["sep_conv_3x3", "skip_connect"])["normal"], 8, 8, 4, False, False, False
    )
    probabilities = [torch.full((3,), 1 / 3) for _ in range(14)]
    x = torch.randn(2, 8, 6, 6)
    with _CountRelus() as relus:
        cell(x, x, probabilities)
    # 2 preprocessing ReLUs, then one per state read by a convolution: s0, s1 and nodes 0-2
    # (not one per edge: 14); the second ReLU of each separable convolution is in place.
    assert relus.count == 2 + 5


def _search_steps(steps: int = 2, precision: str = "fp32"):
    from pdarts.search.stage import build_search, search_step
    from pdarts.search_space import full_candidates
    from pdarts.settings import SearchSettings, Stage

    torch.manual_seed(0)
    settings = SearchSettings.defaults(init_channels=4, channels_last=True, precision=precision)
    search = build_search(
        full_candidates(PRIMITIVES), settings, Stage("s", 3, 0.3), 10, 3, torch.device("cpu")
    )
    search.model.set_skip_dropout(0.3)
    search.model.train()
    for _ in range(steps):
        x, y = torch.randn(6, 3, 16, 16), torch.randint(0, 10, (6,))
        search_step(
            search.model,
            (x, y),
            (x, y),
            search.weight_optimizer,
            search.alpha_optimizer,
            5.0,
            search.precision,
        )
    return search.model.state_dict()


def test_search_steps_with_the_fast_forms_repeat_exactly_and_match_the_plain_ops(monkeypatch):
    fast, again = _search_steps(), _search_steps()
    assert all(torch.equal(fast[name], again[name]) for name in fast)  # deterministic: resumable
    monkeypatch.setattr(fast_ops, "MIN_ELEMENTS", 2**62)
    plain = _search_steps()
    for name in fast:
        torch.testing.assert_close(fast[name], plain[name], rtol=1e-4, atol=1e-5, msg=name)


def test_bf16_search_steps_with_the_fast_forms_repeat_exactly_and_stay_near_the_plain_ops(monkeypatch):
    """bf16 search steps with the forms are deterministic (a resumed search repeats them); after two
    steps their weights, alphas and running statistics are, summed over the tensors, at most twice
    as far (relative error) from fp32's as the plain bf16 ops'."""
    fast, again = _search_steps(precision="bf16"), _search_steps(precision="bf16")
    assert all(torch.equal(fast[name], again[name]) for name in fast)
    exact = _search_steps()
    monkeypatch.setattr(fast_ops, "MIN_ELEMENTS", 2**62)
    plain = _search_steps(precision="bf16")
    floats = [name for name in fast if fast[name].is_floating_point()]
    error = {k: sum(_error(s[n], exact[n]) for n in floats) for k, s in (("fast", fast), ("plain", plain))}
    assert 0 < error["fast"] <= 2 * error["plain"] + 1e-3, error
