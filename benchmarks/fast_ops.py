"""Each op of ``pdarts.fast_ops`` against its plain form: forward and backward, milliseconds per call.

    python benchmarks/fast_ops.py [--batch 32] [--channels 16] [--size 32] [--threads 2]

Channels_last fp32 on the CPU, the search's layout; hot caches (each call repeated), so the
figures are the kernels' costs, not a search step's (``pdarts bench`` times those). glibc is told to
keep freed memory (``mallopt``), as a long search's heap does: otherwise each call's fresh
activations are mapped and faulted in anew, which costs more than some of the kernels.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import time
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from pdarts.fast_ops import BatchNorm2d, depthwise_conv2d, pointwise_batch_norm, scaled_batch_norm


def _ms(fn, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def _keep_freed_memory() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    for option, value in (
        (-1, 2**30),
        (-2, 2**27),
        (-3, 2**30),
    ):  # M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD
        libc.mallopt(option, value)


def _forward_backward(make, inputs, grad):
    def run():
        torch.autograd.grad(make(), inputs, grad)

    return run


def _report(name, plain, fast, inputs, grad) -> None:
    plain_ms = _ms(_forward_backward(plain, inputs, grad))
    fast_ms = _ms(_forward_backward(fast, inputs, grad))
    print(f"{name}, forward + backward | {plain_ms:.3f} | {fast_ms:.3f} | {plain_ms / fast_ms:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    _keep_freed_memory()
    n, c, s = args.batch, args.channels, args.size
    shape = (n, c, s, s)

    def tensor(requires_grad=True):
        return torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_(requires_grad)

    x, grad = tensor(), tensor(False)
    print(f"batch {n}, {c} channels, {s}x{s}, channels_last fp32, {args.threads} threads; ms per call")
    print("op | plain | pdarts.fast_ops | ratio")
    for kernel, dilation in ((3, 1), (5, 1), (3, 2), (5, 2)):
        weight = torch.randn(c, 1, kernel, kernel, requires_grad=True)
        pad = dilation * (kernel - 1) // 2
        plain = partial(F.conv2d, x, weight, None, 1, pad, dilation, c)
        fast = partial(depthwise_conv2d, x, weight, (1, 1), (pad, pad), (dilation, dilation))
        _report(f"depthwise {kernel}x{kernel}, dilation {dilation}", plain, fast, (x, weight), grad)
    scale = torch.tensor(0.3, requires_grad=True)
    bn = nn.BatchNorm2d(c, affine=False).to(memory_format=torch.channels_last)
    _report(
        "scale * BatchNorm", lambda: scale * bn(x), partial(scaled_batch_norm, bn, x, scale), (x, scale), grad
    )
    weight = torch.randn(c, c, 1, 1, requires_grad=True)
    fast = partial(pointwise_batch_norm, x, weight, bn, scale)
    _report(
        "scale * BatchNorm(1x1 conv)",
        lambda: scaled_batch_norm(bn, F.conv2d(x, weight), scale),
        fast,
        (x, weight),
        grad,
    )
    # Affine BatchNorm (a training network's), plain and pdarts's BatchNorm2d (the same unless the
    # channel count is not a multiple of 16: try --channels 36).
    plain_bn, fast_bn = nn.BatchNorm2d(c), BatchNorm2d(c)
    fast_bn.weight, fast_bn.bias = plain_bn.weight, plain_bn.bias  # one set of parameters for both
    _report("affine BatchNorm", lambda: plain_bn(x), lambda: fast_bn(x), (x, *plain_bn.parameters()), grad)
    # SkipDropout's mask, applied as torch.where on booleans (its former form) and as a product with
    # bytes (its form now); the mask itself is drawn the same way in both.
    keep = torch.rand(shape).contiguous(memory_format=torch.channels_last) >= 0.7
    keep_bytes = keep.view(torch.uint8)
    _report(
        "skip dropout's mask (where on booleans | product with bytes)",
        lambda: torch.where(keep, x * (1 / 0.3), 0.0),
        lambda: x * (1 / 0.3) * keep_bytes,
        (x,),
        grad,
    )


if __name__ == "__main__":
    main()
