import pytest
import torch
from torch import nn

from pdarts.operations import OPS, FactorizedReduce, SepConv, build_op
from pdarts.search_space import PRIMITIVES


@pytest.mark.parametrize("name", PRIMITIVES)
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_keeps_channels_and_strides(name, stride):
    op = build_op(name, 8, stride, affine=False)
    out = op(torch.randn(2, 8, 16, 16))
    assert out.shape == (2, 8, 16 // stride, 16 // stride)


def test_table_is_canonical_and_built_by_one_signature():
    assert tuple(OPS) == PRIMITIVES
    assert len(PRIMITIVES) == 8
    for name in PRIMITIVES:
        assert isinstance(OPS[name](4, 1, True), nn.Module)


def test_none_is_zero_and_skip_is_identity_or_factorized_reduce():
    x = torch.randn(1, 4, 8, 8)
    assert torch.count_nonzero(build_op("none", 4, 2, False)(x)) == 0
    assert isinstance(build_op("skip_connect", 4, 1, False), nn.Identity)
    assert isinstance(build_op("skip_connect", 4, 2, False), FactorizedReduce)


def test_separable_conv_is_applied_twice_and_dilated_conv_once():
    sep = build_op("sep_conv_5x5", 4, 2, affine=True)
    assert isinstance(sep, SepConv)
    depthwise = [m for m in sep.modules() if isinstance(m, nn.Conv2d) and m.groups == 4]
    assert [(m.kernel_size, m.stride, m.padding) for m in depthwise] == [
        ((5, 5), (2, 2), (2, 2)),
        ((5, 5), (1, 1), (2, 2)),
    ]
    dil = build_op("dil_conv_3x3", 4, 1, affine=True)
    depthwise = [m for m in dil.modules() if isinstance(m, nn.Conv2d) and m.groups == 4]
    assert [(m.dilation, m.padding) for m in depthwise] == [((2, 2), (2, 2))]


def test_affine_false_has_no_batchnorm_parameters():
    for name in PRIMITIVES:
        op = build_op(name, 4, 2, affine=False)
        for bn in (m for m in op.modules() if isinstance(m, nn.BatchNorm2d)):
            assert bn.weight is None and bn.bias is None


def test_avg_pool_excludes_padding():
    op = build_op("avg_pool_3x3", 1, 1, affine=False)
    out = op(torch.ones(1, 1, 4, 4))
    assert torch.allclose(out, torch.ones_like(out))  # corners average 4 ones, not 4/9


def test_factorized_reduce_uses_the_shifted_input_and_handles_odd_sizes():
    fr = FactorizedReduce(2, 4, affine=True)
    assert fr(torch.randn(1, 2, 7, 7)).shape == (1, 4, 4, 4)
    with torch.no_grad():
        fr.conv_1.weight.fill_(1.0)
        fr.conv_2.weight.fill_(1.0)
    x = torch.zeros(1, 2, 4, 4)
    x[:, :, 1, 1] = 1.0  # seen only by the shifted conv (positions 1, 3 of the input)
    fr.eval()
    out = fr(x) - fr(torch.zeros_like(x))
    assert out[0, :2].abs().sum() == 0 and out[0, 2:, 0, 0].abs().sum() > 0
    assert out[0, 2:].abs().sum() == out[0, 2:, 0, 0].abs().sum()


@pytest.mark.parametrize("size", [8, 7])
@pytest.mark.parametrize("channels_last", [False, True])
def test_factorized_reduce_equals_two_strided_1x1_convs(size, channels_last):
    """Subsampling before stride-1 convs is exact: same outputs and gradients as stride-2 convs."""
    torch.manual_seed(0)
    fr = FactorizedReduce(6, 8, affine=True)
    x = torch.randn(3, 6, size, size)
    if channels_last:
        fr = fr.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    # the reference runs contiguous: oneDNN's channels_last strided 1x1 backward is the bug avoided
    x_ref = x.contiguous().clone().requires_grad_()
    x = x.requires_grad_()

    def reference(inp):
        a = torch.relu(inp)
        shifted = torch.nn.functional.pad(a, (0, 1, 0, 1))[:, :, 1:, 1:]
        one = torch.nn.functional.conv2d(a, fr.conv_1.weight.contiguous(), stride=2)
        two = torch.nn.functional.conv2d(shifted, fr.conv_2.weight.contiguous(), stride=2)
        return fr.bn(torch.cat([one, two], dim=1))

    out = fr(x)
    expected = reference(x_ref)
    assert torch.allclose(out, expected, atol=1e-6)
    grad = torch.randn_like(out)
    (w_grad,) = torch.autograd.grad(out, [fr.conv_2.weight], grad, retain_graph=True)
    (w_ref,) = torch.autograd.grad(expected, [fr.conv_2.weight], grad, retain_graph=True)
    assert torch.allclose(w_grad, w_ref, atol=1e-5)
    (x_grad,) = torch.autograd.grad(out, x, grad)
    (x_grad_ref,) = torch.autograd.grad(expected, x_ref, grad)
    assert torch.allclose(x_grad, x_grad_ref, atol=1e-6)


@pytest.mark.parametrize("name", ["dil_conv_3x3", "dil_conv_5x5"])
@pytest.mark.parametrize("size", [8, 7])
def test_strided_dilated_conv_on_even_pixels_equals_the_plain_strided_conv(name, size):
    torch.manual_seed(0)
    op = build_op(name, 4, 2, affine=True).eval()
    x = torch.randn(2, 4, size, size)
    relu, depthwise, pointwise, bn = op
    assert op._on_even_pixels
    assert torch.allclose(op(x), bn(pointwise(depthwise(relu(x)))), atol=1e-6)
