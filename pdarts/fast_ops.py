"""The search's and training's hot ops, each with the same values as its plain form and a faster or
leaner backward pass (``benchmarks/fast_ops.py`` measures each against its plain form).

``depthwise_conv2d``: a depthwise convolution with a faster backward pass on the CPU.

oneDNN's backward-data kernels for depthwise convolutions are slow for dilated and 5x5 kernels
(channels_last, fp32; measured on this project's CPU, README "Search speed and memory": 0.94 ms against
0.11 ms for the forward pass of a dilated 3x3 at 32x32, C=16, batch 32; 1.93 ms against 0.20 ms for a
dilated 5x5). The input gradient of a stride-1 convolution is itself a stride-1 convolution of the
output gradient with the kernel flipped (same dilation and groups, padding ``extent - 1 - padding``),
so ``depthwise_conv2d`` computes it with the fast forward kernel. Its weight gradient for dilated
and 5x5 kernels is a forward depthwise convolution too, one group per sample and channel
(``_depthwise_weight_grad``): oneDNN's backward-weights kernel takes 2-20x longer there (batch 32,
fp32, channels_last: 7.5 ms against 0.36 ms for a dilated 5x5 at 8x8, C=144; 4.4 ms against 1.9 ms
at 32x32, C=36), and is kept for undilated 3x3 kernels, where it is the faster one. With stride 2
(a reduction cell's separable convolutions) the input gradient is a transposed convolution, the same
numbers as oneDNN's backward-data kernel, which takes up to 5x longer for 5x5 kernels on 32x32 maps
(1.33 ms against 0.25 ms at C=32, batch 32); the weight gradient stays oneDNN's there. The input is
kept for the backward pass only when the weight needs a gradient (a search's architecture update
does not), so an architecture update also keeps less. An undilated stride-1 3x3 kernel on a
channels_last map (a ``sep_conv_3x3``'s) takes the plain ops: there oneDNN's backward-data kernel is
as fast as the flipped forward one, and the plain ops make fewer calls (``_plain_kernels_faster``).

``scaled_batch_norm``: ``scale * bn(x)`` in one pass (a search edge's weight of an op as the scale of
the op's last BatchNorm).

``pointwise_batch_norm``: ``scale * bn(conv1x1(x))``, the end of every convolution op, keeping one of
the two activations for the backward pass instead of both.

``pooled_batch_norm``: ``scale * bn(pool(x))``, a pooling op of the search, keeping only ``x``.

``shared_pooled_batch_norm``: the same for every edge that leaves one search state with the same
pool, pooling and normalising once for all of them, forward and backward.

``BatchNorm2d``: ``nn.BatchNorm2d`` whose training-mode pass over a channels_last map with a channel
count that is not a multiple of 16 (CIFAR's 36, 72, 108, 144) runs the CPU's BatchNorm kernels on the
map seen as a matrix a multiple of 16 columns wide (the forms above normalise that way too). On such
counts ATen's channels_last kernels take a slow path: forward and backward at 32 x 36 x 32 x 32 in
fp32, 5.7 ms plain against 1.1 ms this way, and 0.75 ms at 32 channels (``python
benchmarks/fast_ops.py --channels 36``, 2 cores of an AMD EPYC). Widening rows of 16 or 32 channels
the same way was tried: its statistics pass is faster, but its dozen small per-call ops cost as much
in a search step (stage 1 and 3 at batch 32, A/B: no gain).

On the CPU, training-mode BatchNorm of a channels_last map (``scaled_batch_norm``, ``BatchNorm2d`` and the
forms above) runs the compiled kernel of ``native.py`` (``csrc/batch_norm.cpp``) where it can be built:
one pass over memory for the statistics, one to normalise, two for the backward pass, as one autograd
node in C++. ATen's channels_last kernels take 2-3x a product's time on the search's maps (a bf16
32 x 16 x 32 x 32 map: 155 us forward and 199 us backward against 79 and 98 us, ``python
benchmarks/fast_ops.py``); A/B in one process, kernel over ATen's: search stages 1-3 (batch 32) 0.92-0.93
of the step time, CIFAR training 0.79-0.88, ImageNet training 0.95-0.97. Where it cannot be built,
ATen's BatchNorm (and the wide form below) as before.

``depthwise_conv2d`` and ``BatchNorm2d`` also take bf16 (a training step under bf16 autocast on the
CPU, ``precision.py``), where oneDNN's bf16 depthwise backward kernels are slower still (a 5x5 at
32 x 36 x 32 x 32: 18 ms) and ATen's mixed-precision BatchNorm takes the same slow channels_last path
(1.5 ms backward at 32 x 36 x 32 x 32): the depthwise convolution computes in bf16 as autocast would,
except with stride 2, where it runs in fp32 (oneDNN's strided bf16 depthwise forward kernels took
15-28 ms at the CIFAR network's reduction cells, against under 1 ms in fp32); the BatchNorm keeps its
statistics and parameter gradients in fp32. A CIFAR training step in bf16 + channels_last went from
1.8-2.0 s to 1.0-1.15 s with them (``pdarts bench``, README). The search's pooling forms take bf16 too
(``pooled_batch_norm``, ``shared_pooled_batch_norm`` under the CPU's bf16 autocast): the pools in
their input's dtype, as autocast would run them, BatchNorm with fp32 statistics. Search steps of
stages 1-3 (batch 32) in bf16 + channels_last ran 9-16 % faster than in fp32 + channels_last, in
0.65-0.78x of the memory. ``pointwise_batch_norm`` takes the plain ops under bf16 autocast, which are
faster there and whose memory bf16 halves (its docstring).

Each runs the plain ops where its form does not apply (CUDA for the depthwise convolution, fp16
autocast, grouped convolutions that are not depthwise, affine BatchNorm, under ``torch.compile``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .native import batch_norm_kernels

__all__ = [
    "MIN_ELEMENTS",
    "BatchNorm2d",
    "batch_norm_relu",
    "depthwise_conv2d",
    "memory_layout",
    "pointwise_batch_norm",
    "pooled_batch_norm",
    "pools_shared",
    "scaled_batch_norm",
    "shared_pooled_batch_norm",
    "subsample",
]

#: Activations smaller than this take the plain ops: there, a custom autograd function's Python
#: cost outweighs what it saves (the default digits search, 8x8 maps of 8-16 channels in batches of
#: 64, ran about 15 % slower with them; every configuration of ``pdarts bench`` is above it).
MIN_ELEMENTS = 1 << 16

#: The dtypes the CPU forms take (bf16: a training step under bf16 autocast).
_DTYPES = (torch.float32, torch.bfloat16)


class _DepthwiseConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation):
        ctx.stride, ctx.padding, ctx.dilation, ctx.input_size = stride, padding, dilation, x.shape[-2:]
        ctx.save_for_backward(x if weight.requires_grad else None, weight)
        return F.conv2d(x, weight, None, stride, padding, dilation, weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        groups, kernel = weight.shape[0], weight.shape[-2:]
        strided = max(ctx.stride) > 1
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0] and strided:
            # The same values as oneDNN's backward-data kernel, which is up to 5x slower for 5x5
            # kernels on 32x32 maps (README "Search speed and memory").
            extent = [(g - 1) * s - 2 * p + d * (k - 1) + 1 for g, s, p, d, k in zip(
                grad.shape[-2:], ctx.stride, ctx.padding, ctx.dilation, kernel)]  # fmt: skip
            output_padding = [size - e for size, e in zip(ctx.input_size, extent)]
            grad_x = F.conv_transpose2d(
                grad, weight, None, ctx.stride, ctx.padding, output_padding, groups, ctx.dilation
            )
        elif ctx.needs_input_grad[0]:
            padding = [d * (k - 1) - p for k, p, d in zip(kernel, ctx.padding, ctx.dilation)]
            flipped = weight.flip(-2, -1)
            grad_x = F.conv2d(grad, flipped, None, 1, padding, ctx.dilation, groups)
        if ctx.needs_input_grad[1]:
            if not strided and (max(kernel) > 3 or max(ctx.dilation) > 1):
                grad_weight = _depthwise_weight_grad(grad, x, kernel, ctx.padding, ctx.dilation)
            else:
                grad_weight = torch.ops.aten.convolution_backward(
                    grad, x, weight, None, ctx.stride, ctx.padding, ctx.dilation, False, [0, 0], groups,
                    [False, True, False],
                )[1]  # fmt: skip
        return grad_x, grad_weight, None, None, None


def _depthwise_weight_grad(grad, x, kernel, padding, dilation) -> torch.Tensor:
    """The weight gradient of a stride-1 depthwise convolution as one forward depthwise convolution.

    ``grad_weight[c, i, j] = sum over n, y, x of input[n, c, y + d i, x + d j] * grad[n, c, y, x]``
    (the input padded): with each (sample, channel) pair its own group, that is a depthwise
    convolution of the padded input maps with the output-gradient maps as kernels, stride ``d``,
    whose ``k x k`` outputs are then summed over the samples. The input goes in as one
    channels_last image of ``N * C`` channels (oneDNN's layout for a depthwise convolution, so it
    is not reordered again), the output gradient as ``N * C`` contiguous kernels.
    """
    n, c, h, w = x.shape
    image = torch.empty((1, n * c, h, w), dtype=x.dtype, memory_format=torch.channels_last)
    image.permute(0, 2, 3, 1).view(h, w, n, c).copy_(x.permute(2, 3, 0, 1))
    kernels = grad.contiguous().view(n * c, 1, *grad.shape[-2:])
    per_sample = F.conv2d(image, kernels, None, dilation, padding, 1, n * c)
    return per_sample.reshape(n, c, *kernel).sum(0).unsqueeze(1)


class _Subsample(torch.autograd.Function):
    """``x[:, :, o::2, o::2]`` for each offset ``o``, each dense in ``x``'s layout; the backward pass
    writes every gradient into one zero tensor in ``x``'s layout.

    A plain slice's backward pass scatters its gradient into a zero tensor of the contiguous layout:
    with channels_last maps the gradients summed into that input then mix two layouts, and the sum
    and the ReLU's backward pass after it took twice their time (a CIFAR training step: 5.1 ms for
    each ReLU backward pass of a 32 x 144 x 32 x 32 cell output read by a ``FactorizedReduce``).
    """

    @staticmethod
    def forward(ctx, x, *offsets):
        ctx.layout, ctx.offsets = memory_layout(x), offsets
        ctx.shape, ctx.dtype, ctx.device = x.shape, x.dtype, x.device
        return tuple(x[:, :, o::2, o::2].contiguous(memory_format=ctx.layout) for o in offsets)

    @staticmethod
    def backward(ctx, *grads):
        grad_x = torch.empty(ctx.shape, dtype=ctx.dtype, device=ctx.device, memory_format=ctx.layout).zero_()
        for o, grad in zip(ctx.offsets, grads):
            if grad is not None:
                grad_x[:, :, o::2, o::2] = grad
        return grad_x, *(None for _ in ctx.offsets)


def subsample(x: torch.Tensor, *offsets: int) -> tuple[torch.Tensor, ...]:
    """``x[:, :, o::2, o::2]`` for each offset ``o`` (0 or 1; distinct): the pixels a stride-2 op with a
    1x1 footprint, or a stride-2 dilated convolution, reads. Where ``x`` needs a gradient and is large
    (``MIN_ELEMENTS``), by ``_Subsample``: its gradient comes back dense in ``x``'s layout."""
    if not x.requires_grad or x.numel() < MIN_ELEMENTS or torch.compiler.is_compiling():
        return tuple(x[:, :, o::2, o::2] for o in offsets)
    return _Subsample.apply(x, *offsets)


def _cpu_bf16_autocast(x: torch.Tensor) -> bool:
    """Whether ``x``'s ops run under bf16 autocast on the CPU (a bf16 step on the CPU)."""
    return (
        x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )  # fmt: skip


class _CpuAutocastOff:
    """The CPU's autocast off inside, on again after: the two switches of ``torch.autocast("cpu",
    enabled=False)`` without its bookkeeping (0.9 us a use against 3.3; it also saves and restores
    the dtype and counts the nesting, which a form's own ops neither change nor read)."""

    def __enter__(self) -> None:
        torch.set_autocast_enabled("cpu", False)

    def __exit__(self, *exc_info) -> None:
        torch.set_autocast_enabled("cpu", True)


def _outside_autocast() -> contextlib.AbstractContextManager:
    """The CPU's autocast switched off for a form's own ops, which get the dtypes autocast would give
    them from the form; nothing to switch (and no context's cost) where it is off."""
    return _CpuAutocastOff() if torch.is_autocast_enabled("cpu") else contextlib.nullcontext()


def _fast_path(x: torch.Tensor, weight: torch.Tensor, stride, padding, dilation) -> bool:
    if x.numel() < MIN_ELEMENTS or x.device.type != "cpu" or torch.compiler.is_compiling():
        return False
    if torch.is_autocast_enabled("cpu"):
        if not _cpu_bf16_autocast(x):
            return False
    elif x.dtype not in _DTYPES or weight.dtype != x.dtype:
        return False
    if weight.shape[1] != 1 or x.shape[1] != weight.shape[0]:
        return False
    if _plain_kernels_faster(x, weight, stride, dilation):
        return False
    # The flipped convolution's padding (stride 1) must not be negative.
    return max(stride) > 1 or all(d * (k - 1) >= p for k, p, d in zip(weight.shape[-2:], padding, dilation))


def _plain_kernels_faster(x: torch.Tensor, weight: torch.Tensor, stride, dilation) -> bool:
    """Whether oneDNN's own backward kernels beat the form: an undilated stride-1 3x3 kernel on a
    channels_last map, its commonest case (both of a ``sep_conv_3x3``'s depthwise convolutions).

    Forward and backward passes alone, batch 32, bf16 under autocast (input and weight gradients;
    input gradient only): 491 against 540 us and 367 against 373 at 16 x 32 x 32, 366 against 438
    and 268 against 307 at 32 x 16 x 16, 308 against 480 and 263 against 257 at 64 x 8 x 8; fp32
    alike. In the steps, each A/B in one process (``default``, bf16 + channels_last, median step
    time, plain over form): search stage 1 0.925, stage 2 0.956 and 1.115 (two runs), stage 3 0.965
    and 0.990, CIFAR training 0.977, ImageNet 0.966; fp32 + channels_last stage 1 0.929, stage 3
    0.931. In the contiguous layout (fp32, stage 1: 1.031) the form stays."""
    return (
        max(stride) == 1 and max(dilation) == 1 and tuple(weight.shape[-2:]) == (3, 3)
        and memory_layout(x) == torch.channels_last
    )  # fmt: skip


def depthwise_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> torch.Tensor:
    """``F.conv2d(x, weight, None, stride, padding, dilation, groups=channels)`` for a depthwise
    ``weight`` (``channels x 1 x k x k``); the same values, with the faster backward pass where it
    applies (see the module's docstring). Under bf16 autocast it casts as autocast would, except
    that a strided one runs in fp32 (oneDNN's strided bf16 depthwise kernels are 20-100x slower)."""
    if not _fast_path(x, weight, stride, padding, dilation):
        return F.conv2d(x, weight, None, stride, padding, dilation, weight.shape[0])
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.float32 if max(stride) > 1 else torch.bfloat16
        x, weight = x.to(dtype), weight.to(dtype)
    with _outside_autocast():
        return _DepthwiseConv2d.apply(x, weight, tuple(stride), tuple(padding), tuple(dilation))


def scaled_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor, scale: torch.Tensor | None):
    """``scale * bn(x)`` for a BatchNorm layer without affine parameters (``bn(x)`` if ``scale`` is None).

    The scalar ``scale`` (a search edge's softmax weight of the op) enters BatchNorm as its affine
    weight: the product costs no pass over memory of its own, nothing extra is kept for the
    backward pass, and its gradient comes out of BatchNorm's own backward reductions. The running
    statistics are updated exactly as ``bn(x)`` updates them (``nn.BatchNorm2d.forward``'s rule).
    """
    if scale is None:
        return bn(x)
    if bn.affine:
        raise ValueError("scaled_batch_norm needs a BatchNorm layer without affine parameters")
    momentum = _momentum(bn)
    use_batch = bn.training or bn.running_mean is None
    weight = _scale_weight(bn, scale)
    if bn.training:
        kernels = _native_batch_norm(x, weight, bn.running_mean, bn.running_var)
        if kernels is not None:
            return kernels.train_batch_norm(
                x, weight, None, bn.running_mean, bn.running_var, momentum, bn.eps, False
            )
    return F.batch_norm(x, bn.running_mean, bn.running_var, weight, None, use_batch, momentum, bn.eps)


def batch_norm_relu(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """``relu(bn(x))``: in training, one pass of the compiled kernel each way where it applies
    (``_native_batch_norm``), its backward pass gating the gradient by the pre-activation recomputed
    from ``x`` (nothing more kept); otherwise ``bn(x)`` and a ReLU in place on it."""
    y = _compiled_batch_norm(bn, x, relu=True) if bn.training else None
    return F.relu(bn(x), inplace=True) if y is None else y  # in place: a fresh tensor BatchNorm does not keep


def _running_statistics(
    bn: nn.modules.batchnorm._BatchNorm,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The running mean and variance a training-mode pass of ``bn`` updates, or None and None."""
    running = bn.track_running_stats and bn.running_mean is not None
    return (bn.running_mean, bn.running_var) if running else (None, None)


def _compiled_batch_norm(
    bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor, relu: bool
) -> torch.Tensor | None:
    """Training-mode ``bn(x)`` (through a ReLU with ``relu``) by the compiled kernel, one autograd node;
    None where ``_native_batch_norm`` does not give the kernel."""
    mean, var = _running_statistics(bn)
    kernels = _native_batch_norm(x, bn.weight, bn.bias, mean, var)
    if kernels is None:
        return None
    return kernels.train_batch_norm(x, bn.weight, bn.bias, mean, var, _momentum(bn), bn.eps, relu)


def _scale_weight(bn: nn.modules.batchnorm._BatchNorm, scale: torch.Tensor) -> torch.Tensor:
    """The scalar ``scale`` as BatchNorm's per-channel weight, contiguous: with an expanded (stride-0)
    one, the CPU kernels take a path 2x slower."""
    return scale.expand(bn.num_features).contiguous()


def _momentum(bn: nn.modules.batchnorm._BatchNorm) -> float:
    """The running statistics' update factor of ``bn``'s next call (``nn.BatchNorm2d.forward``'s rule,
    counting the call in ``num_batches_tracked``)."""
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average
            momentum = 1.0 / float(bn.num_batches_tracked)
    return momentum


class _PointwiseBatchNorm(torch.autograd.Function):
    """Training-mode BatchNorm (optional scale, no bias) of a bias-free 1x1 convolution of ``x``.

    The plain ops keep both ``x`` (the convolution's weight gradient) and the convolution's output
    (BatchNorm's gradient). Here, when the weight needs a gradient, only ``x`` is kept and the
    output recomputed in the backward pass (a 1x1 convolution, the cheapest op of the chain); when
    it does not (a search's architecture update), only the output is kept and the input gradient
    is a 1x1 convolution with the transposed weight.
    """

    @staticmethod
    def forward(ctx, x, weight, bn_weight, running_mean, running_var, momentum, eps):
        z = F.conv2d(x, weight)
        y, *statistics = _train_batch_norm(z, bn_weight, None, running_mean, running_var, momentum, eps)
        ctx.eps = eps
        ctx.recompute = weight.requires_grad
        ctx.save_for_backward(x if ctx.recompute else z, weight, bn_weight, *statistics)
        return y

    @staticmethod
    def backward(ctx, grad):
        kept, weight, bn_weight, *statistics = ctx.saved_tensors
        z = F.conv2d(kept, weight) if ctx.recompute else kept
        grad_z, grad_scale = _batch_norm_backward(ctx, grad, z, bn_weight, statistics)
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:  # a 1x1 convolution with the transposed weight, in one call
            grad_x = F.conv_transpose2d(grad_z, weight)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.ops.aten.convolution_backward(
                grad_z, kept, weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [False, True, False]
            )[1]
        return grad_x, grad_weight, grad_scale, None, None, None, None


def memory_layout(t: torch.Tensor) -> torch.memory_format:
    """``t``'s memory format: channels_last for a 4-d tensor dense in it (and not also contiguous)."""
    channels_last = t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last and not t.is_contiguous() else torch.contiguous_format


def _batch_norm_backward(ctx, grad, z, bn_weight, statistics):
    """The gradients of training-mode BatchNorm of ``z`` (input, and scale where it has one and needs
    one: input 2 of the autograd function), from ``_train_batch_norm``'s statistics."""
    needs_scale = bn_weight is not None and ctx.needs_input_grad[2]
    grad_z, grad_scale, _ = _train_batch_norm_backward(
        grad, z, bn_weight, statistics, ctx.eps, [True, needs_scale, False]
    )
    return grad_z, grad_scale


class _PooledBatchNorm(torch.autograd.Function):
    """Training-mode BatchNorm (optional scale, no bias) of a pooling of ``x``, keeping only ``x``.

    The plain ops keep the pooled map (BatchNorm's gradient), a max pool its int64 indices too
    (twice the map's bytes), an average pool its input. Here only ``x`` is kept (a search edge's
    input, shared by both pools) and the pooling is recomputed in the backward pass.
    """

    @staticmethod
    def forward(ctx, x, pool, bn_weight, running_mean, running_var, momentum, eps):
        y, *statistics = _train_batch_norm(pool(x), bn_weight, None, running_mean, running_var, momentum, eps)
        ctx.pool, ctx.eps = pool, eps
        ctx.save_for_backward(x, bn_weight, *statistics)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, bn_weight, *statistics = ctx.saved_tensors
        with torch.enable_grad():
            x = x.detach().requires_grad_()
            z = ctx.pool(x)
        grad_z, grad_scale = _batch_norm_backward(ctx, grad, z.detach(), bn_weight, statistics)
        (grad_x,) = torch.autograd.grad(z, x, grad_z)
        return grad_x, None, grad_scale, None, None, None, None


class _SharedPooledBatchNorm(torch.autograd.Function):
    """``[scale * bn(pool(x)) for scale in scales]``: one pooling and one training-mode BatchNorm (no
    affine parameters) for several scales, keeping only ``x``.

    The edges that leave one state of a search cell with the same pool alive all pool and normalise
    the same map with the same batch statistics; only their weights differ. Here that map is computed
    once, and again in the backward pass, whose BatchNorm and pooling run once on the gradients'
    weighted sum. Each scale's gradient is the sum of its output's gradient times the normalised map
    (BatchNorm's backward reductions, as for one edge).
    """

    @staticmethod
    def forward(ctx, x, pool, running_mean, running_var, momentum, eps, *scales):
        y, *statistics = _train_batch_norm(pool(x), None, None, running_mean, running_var, momentum, eps)
        ctx.pool, ctx.eps = pool, eps
        ctx.save_for_backward(x, *statistics, *scales)
        return tuple(y * scale for scale in scales)

    @staticmethod
    def backward(ctx, *grads):
        x, mean, invstd, var, *scales = ctx.saved_tensors
        statistics = mean, invstd, var
        with torch.enable_grad():
            x = x.detach().requires_grad_()
            pooled = ctx.pool(x)
        z = pooled.detach()
        layout = memory_layout(z)
        grads = [None if g is None else g.contiguous(memory_format=layout) for g in grads]
        grad_y = None
        for grad, scale in zip(grads, scales):
            if grad is not None:
                grad_y = grad * scale if grad_y is None else grad_y.addcmul_(grad, scale)
        grad_scales = [None] * len(scales)
        for i, grad in enumerate(grads):
            if grad is not None and ctx.needs_input_grad[6 + i]:
                # sum(grad * normalised z), per channel by BatchNorm's own backward reductions
                grad_scales[i] = _train_batch_norm_backward(
                    grad, z, None, statistics, ctx.eps, [False, True, False]
                )[1].sum()
        grad_x = None
        if grad_y is not None and ctx.needs_input_grad[0]:
            grad_z = _train_batch_norm_backward(grad_y, z, None, statistics, ctx.eps, [True, False, False])[0]
            (grad_x,) = torch.autograd.grad(pooled, x, grad_z)
        return grad_x, None, None, None, None, None, *grad_scales


def pools_shared(x: torch.Tensor, bns: Sequence[nn.modules.batchnorm._BatchNorm]) -> bool:
    """Whether ``shared_pooled_batch_norm(x, pool, bns, scales)`` pools once: two layers or more, and not
    the plain ops (``_plain_batch_norm``)."""
    return len(bns) > 1 and not _plain_batch_norm(x, bns[0])


def shared_pooled_batch_norm(
    x: torch.Tensor,
    pool: nn.Module,
    bns: Sequence[nn.modules.batchnorm._BatchNorm],
    scales: Sequence[torch.Tensor],
) -> list[torch.Tensor]:
    """``[pooled_batch_norm(x, pool, bn, scale) for bn, scale in zip(bns, scales)]`` for BatchNorm layers
    whose running statistics are equal (the edges that leave one search state with the same pool),
    pooling and normalising once (``_SharedPooledBatchNorm``).

    The first layer's running statistics take the update and the others copy them, so they stay
    equal; each layer counts the batch. The plain ops, one per layer, where ``_plain_batch_norm`` says
    so.
    """
    first = bns[0]
    if not pools_shared(x, bns):
        return [pooled_batch_norm(x, pool, bn, scale) for bn, scale in zip(bns, scales)]
    momentum = _momentum(first)
    for bn in bns[1:]:
        _momentum(bn)  # counts the batch
    with _outside_autocast():  # pools and BatchNorm in x's dtype, as under autocast
        outputs = _SharedPooledBatchNorm.apply(
            x, pool, first.running_mean, first.running_var, momentum, first.eps, *scales
        )
    for bn in bns[1:]:
        bn.running_mean.copy_(first.running_mean)
        bn.running_var.copy_(first.running_var)
    return list(outputs)


def _plain_batch_norm(x: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm) -> bool:
    """Whether BatchNorm of a map computed from ``x`` takes the plain ops: small maps (``MIN_ELEMENTS``),
    eval mode, affine layers, reduced precision other than the CPU's bf16 autocast, compiling, or no
    gradients."""
    if torch.is_autocast_enabled(x.device.type):
        reduced = not _cpu_bf16_autocast(x) or x.dtype not in _DTYPES
    else:
        reduced = x.dtype != torch.float32
    return (
        reduced or x.numel() < MIN_ELEMENTS or not bn.training or bn.affine or not bn.track_running_stats
        or torch.compiler.is_compiling() or not torch.is_grad_enabled()
    )  # fmt: skip


def pooled_batch_norm(
    x: torch.Tensor, pool: nn.Module, bn: nn.modules.batchnorm._BatchNorm, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """``scaled_batch_norm(bn, pool(x), scale)`` keeping only ``x`` for the backward pass in training
    (``_PooledBatchNorm``); the plain ops where ``_plain_batch_norm`` says so."""
    if _plain_batch_norm(x, bn):
        return scaled_batch_norm(bn, pool(x), scale)
    bn_weight = None if scale is None else _scale_weight(bn, scale)
    with _outside_autocast():  # pools and BatchNorm in x's dtype, as under autocast
        return _PooledBatchNorm.apply(
            x, pool, bn_weight, bn.running_mean, bn.running_var, _momentum(bn), bn.eps
        )


def pointwise_batch_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bn: nn.modules.batchnorm._BatchNorm,
    scale: torch.Tensor | None = None,
    relu: bool = False,
) -> torch.Tensor:
    """``scaled_batch_norm(bn, F.conv2d(x, weight), scale)`` for a 1x1 ``weight`` and a BatchNorm
    layer without affine parameters, keeping one activation for the backward pass instead of two in
    training (``_PointwiseBatchNorm``); the plain ops in eval mode, in reduced precision or when
    compiling.

    Under the CPU's bf16 autocast, the plain ops too: there the form's memory is not needed (bf16
    activations take half the bytes) and its time is. A/B in one process, plain over form, median
    step time: search stage 1 (batch 32) 0.945, stage 2 0.960, stage 3 0.931 and 0.945, stage 1 at
    batch 96 1.016; peak memory 3.01 GB against 2.35 at stage 1 (batch 96, a third of the
    reference's 9.1 GB), 2.05 against 1.69 at stage 3. In fp32 the form stays: without it stage 1's
    peak at batch 96 was 0.51 of the reference's.

    With ``relu`` (and no scale): ``relu(bn(F.conv2d(x, weight)))``, the ReLU in BatchNorm's kernel
    where ``batch_norm_relu`` takes it (a separable convolution's first half)."""
    if relu and scale is not None:
        raise ValueError("pointwise_batch_norm takes a scale or a ReLU, not both")
    if _plain_batch_norm(x, bn) or _cpu_bf16_autocast(x):
        z = F.conv2d(x, weight)
        return batch_norm_relu(bn, z) if relu else scaled_batch_norm(bn, z, scale)
    bn_weight = None if scale is None else _scale_weight(bn, scale)
    # No autocast to switch off here: _plain_batch_norm sends every other autocast step to the plain ops.
    y = _PointwiseBatchNorm.apply(
        x, weight, bn_weight, bn.running_mean, bn.running_var, _momentum(bn), bn.eps
    )
    return y.relu_() if relu else y  # in place: the form keeps x or the convolution's output, not y


def _wide_factor(x: torch.Tensor) -> int:
    """How many pixels of a channels_last map make one row of ``_wide``'s matrix: the fewest that give
    a row of a multiple of 16 channels (one AVX-512 register of fp32)."""
    channels = x.shape[1]
    return 16 // math.gcd(channels, 16)


def _wide(x: torch.Tensor, factor: int) -> torch.Tensor:
    """A channels_last map ``N x C x H x W`` as the matrix ``(N H W / factor) x (factor C)``: a view, each
    row ``factor`` pixels' channels; column ``j`` holds channel ``j % C``."""
    return x.permute(0, 2, 3, 1).reshape(-1, factor * x.shape[1])


def _per_channel(columns: torch.Tensor, channels: int) -> torch.Tensor:
    """Per-column sums of ``_wide``'s matrix added up per channel."""
    return columns.view(-1, channels).sum(0)


def _wide_applies(x: torch.Tensor) -> bool:
    """Whether training-mode BatchNorm of ``x`` runs on its ``_wide`` matrix: a 4-d fp32 channels_last map
    (or bf16) on the CPU (not also contiguous) of ``MIN_ELEMENTS`` or more whose channel count is not a
    multiple of 16 and whose pixels fill the rows, outside the compiler."""
    return (
        x.dim() == 4 and x.device.type == "cpu" and x.dtype in _DTYPES
        and x.numel() >= MIN_ELEMENTS and memory_layout(x) == torch.channels_last
        and _wide_factor(x) > 1 and (x.numel() // x.shape[1]) % _wide_factor(x) == 0
        and not torch.compiler.is_compiling()
    )  # fmt: skip


def _train_batch_norm(x, weight, bias, running_mean, running_var, momentum, eps):
    """Training-mode BatchNorm of ``x``: ``(y, mean, invstd, var)``, its statistics for
    ``_train_batch_norm_backward``.

    By the compiled kernel where ``_native_batch_norm`` gives it, by ATen's kernel (``var`` None: both
    give the same statistics, so either backward pass takes either's), or where ``_wide_applies`` by
    ATen's kernels on the ``_wide`` matrix (``invstd`` None): ATen's channels_last kernels take a slow
    path on a channel count that is not a multiple of 16 (see the module's docstring). The columns'
    statistics are added up per channel:
    the same statistics as ``torch.batch_norm`` (the biased variance normalises, the unbiased one
    enters the running variance). One pass for the columns' statistics, one to normalise.
    """
    kernels = _native_batch_norm(x, weight, bias, running_mean, running_var)
    if kernels is not None:
        y, mean, invstd = kernels.forward(x, weight, bias, running_mean, running_var, momentum, eps, False)
        return y, mean, invstd, None
    if not _wide_applies(x):
        y, mean, invstd = torch.native_batch_norm(
            x, weight, bias, running_mean, running_var, True, momentum, eps
        )
        return y, mean, invstd, None
    channels, factor = x.shape[1], _wide_factor(x)
    count = x.numel() // channels
    wide = _wide(x, factor)
    # Given fp32 running statistics (left as they are: momentum 0), the kernel returns fp32 ones for a
    # bf16 input too.
    running = [None, None] if x.dtype == torch.float32 else x.new_zeros(2, wide.shape[1], dtype=torch.float32)
    column_mean, column_var = torch.batch_norm_update_stats(wide, *running, 0.0)
    column_mean, column_var = column_mean.view(factor, channels), column_var.view(factor, channels)
    mean = column_mean.mean(0)  # every column counts as many pixels
    var = (column_var + (column_mean - mean).square()).mean(0)
    if running_mean is not None:
        running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        running_var.mul_(1 - momentum).add_(var, alpha=momentum * count / max(count - 1, 1))
    # A tensor of its own, not a view: the op after may work in place (SepConv's second ReLU).
    y = torch.empty_like(x, memory_format=torch.channels_last)
    wide_mean, wide_var, wide_weight, wide_bias = _tile(factor, mean, var, weight, bias)
    _normalize(wide, wide_weight, wide_bias, wide_mean, wide_var, eps, _wide(y, factor))
    return y, mean, None, var


def _train_batch_norm_backward(grad, x, weight, statistics, eps, mask):
    """``[grad_x, grad_weight, grad_bias]`` of training-mode BatchNorm of ``x`` (each where ``mask`` asks
    for it, None elsewhere) from ``_train_batch_norm``'s ``(mean, invstd, var)``, the gradient made dense
    in ``x``'s layout.

    The compiled kernel where ``_native_batch_norm`` gives it: one pass for the sums, one for the input
    gradient. The wide form: one pass for the columns' sums of the gradient and of the gradient times the
    normalised input (the eval-mode backward kernel with the statistics given), two for the input
    gradient.
    """
    mean, invstd, var = statistics
    grad = grad.contiguous(memory_format=memory_layout(x))
    kernels = _native_batch_norm(x, weight) if var is None else None
    if kernels is not None and grad.dtype == x.dtype:
        return kernels.backward(grad, x, weight, None, mean, invstd, *mask, False)  # None where not asked
    if var is None:
        grads = torch.ops.aten.native_batch_norm_backward(
            grad, x, weight, None, None, mean, invstd, True, eps, mask
        )
        # CUDA's kernel returns a weight gradient even where the mask asks for none; autograd refuses
        # one for an input that needs none (a search's weight step, where the scale is a constant).
        return [g if wanted else None for g, wanted in zip(grads, mask)]
    channels, factor = x.shape[1], _wide_factor(x)
    count = x.numel() // channels
    wide, grad = _wide(x, factor), _wide(grad, factor)
    wide_mean, wide_var = _tile(factor, mean, var)
    # Eval mode: the kernel's column sums with the statistics given, the gradient of (x - mean) * invstd.
    _, grad_normalized, grad_sum = torch.ops.aten.native_batch_norm_backward(
        grad, wide, None, wide_mean, wide_var, None, None, False, eps, [False, True, True]
    )
    grad_normalized = _per_channel(grad_normalized, channels)  # sum(g * (x - mean) * invstd)
    grad_sum = _per_channel(grad_sum, channels)
    grad_x = None
    if mask[0]:
        # scale * (g - mean(g) - normalized * mean(g * normalized)), scale = weight * invstd
        scale = var.add(eps).rsqrt_()
        if weight is not None:
            scale = scale * weight
        grad_x = torch.empty_like(x, memory_format=torch.channels_last)
        slope, shift, scale = _tile(
            factor, scale * grad_normalized / -count, scale * grad_sum / -count, scale
        )
        _normalize(wide, slope, shift, wide_mean, wide_var, eps, _wide(grad_x, factor))
        _wide(grad_x, factor).addcmul_(grad, scale.to(x.dtype))  # mixed dtypes take a slow kernel
    return [grad_x, grad_normalized if mask[1] else None, grad_sum if mask[2] else None]


class _TrainBatchNorm(torch.autograd.Function):
    """Training-mode BatchNorm by ``_train_batch_norm`` and ``_train_batch_norm_backward`` (``BatchNorm2d``,
    ``scaled_batch_norm``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps):
        y, *statistics = _train_batch_norm(x, weight, bias, running_mean, running_var, momentum, eps)
        ctx.eps = eps
        ctx.save_for_backward(x, weight, *statistics)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, *statistics = ctx.saved_tensors
        grads = _train_batch_norm_backward(
            grad, x, weight, statistics, ctx.eps, list(ctx.needs_input_grad[:3])
        )
        return *grads, None, None, None, None


def _tile(factor: int, *vectors: torch.Tensor | None) -> list[torch.Tensor | None]:
    """Each per-channel vector repeated ``factor`` times (a ``_wide`` matrix's row), in one call."""
    given = [v for v in vectors if v is not None]
    tiled = iter(torch.stack(given).repeat(1, factor).unbind())
    return [None if v is None else next(tiled) for v in vectors]


def _normalize(wide, weight, bias, mean, var, eps, out) -> None:
    """``(wide - mean) / sqrt(var + eps) * weight + bias`` per column into ``out`` (a ``_wide`` matrix),
    by the eval-mode BatchNorm kernel."""
    empty = wide.new_empty(0, dtype=mean.dtype)
    torch.ops.aten.native_batch_norm.out(
        wide, weight, bias, mean, var, False, 0.0, eps, out=out, save_mean=empty, save_invstd=empty
    )


def _native_batch_norm(x: torch.Tensor, *vectors: torch.Tensor | None):
    """The compiled BatchNorm kernels (``native.py``) where they take ``x`` and the per-channel ``vectors``
    (weight, bias, running statistics, each fp32 or None): a 4-d channels_last map on the CPU, fp32
    or bf16, of ``MIN_ELEMENTS`` or more, whose pixels fill the kernel's rows (``_wide_factor`` pixels
    a row), outside the compiler; otherwise None."""
    applies = (
        x.dim() == 4 and x.device.type == "cpu" and x.dtype in _DTYPES and x.numel() >= MIN_ELEMENTS
        and x.is_contiguous(memory_format=torch.channels_last) and not torch.compiler.is_compiling()
        and x.shape[1] > 0 and (x.numel() // x.shape[1]) % _wide_factor(x) == 0
        and all(v is None or (v.dtype == torch.float32 and v.is_contiguous()) for v in vectors)
    )  # fmt: skip
    return batch_norm_kernels() if applies else None


def _train_form_applies(x: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm) -> bool:
    """Whether ``BatchNorm2d`` takes ``_TrainBatchNorm``: training mode, and the compiled kernel or
    ``_wide_applies``."""
    return bn.training and (_native_batch_norm(x, bn.weight, bn.bias) is not None or _wide_applies(x))


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (the same parameters and buffers, the same results to fp32 rounding) with
    ``_TrainBatchNorm``'s faster training-mode pass where it applies (see the module's docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _train_form_applies(x, self):
            return super().forward(x)
        self._check_input_dim(x)
        y = _compiled_batch_norm(self, x, relu=False)
        if y is not None:
            return y
        mean, var = _running_statistics(self)
        return _TrainBatchNorm.apply(x, self.weight, self.bias, mean, var, _momentum(self), self.eps)
