"""Mixed precision and memory layout as settings (bf16 autocast on CPU and CUDA, fp16 with gradient
scaling on CUDA, channels_last).

``precision: auto`` is bf16 on CUDA GPUs that support it (fp16 with gradient scaling on older ones)
and fp32 on CPUs. Measured on 2 cores of an AMD EPYC with AVX-512 BF16 (``pdarts bench``, README),
fp32 in channels_last is the fastest form of every step there: search steps in bf16 are no faster
than fp32 (0.9x at stage 1) and half as fast as fp32 in channels_last, the depthwise convolutions
that dominate them having no fast bf16 kernels in oneDNN; training steps in bf16 (contiguous) ran
1.63x the reference's speed on CIFAR and 1.08x on ImageNet, fp32 in channels_last 1.81x and 1.31x
(2026-12-04, the same run). bf16 stays a memory setting on the CPU (0.59x the reference's
memory on CIFAR against 0.89x). bf16 combined with channels_last gave non-finite, run-to-run
different losses on small feature maps on the CPU in torch 2.14 (oneDNN), so on the CPU bf16 runs in
the contiguous layout.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

__all__ = ["Precision", "resolve_precision"]

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Precision:
    """How a step computes: the autocast dtype (None: fp32) and the memory layout."""

    device_type: str
    dtype: torch.dtype | None = None
    channels_last: bool = False

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled for fp16 only (bf16 keeps fp32's exponent range)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.dtype == torch.float16)

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images


def resolve_precision(name: str, device: torch.device, channels_last: bool) -> Precision:
    """Turns the ``precision`` setting into a ``Precision``; refuses fp16 on the CPU."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            name = "fp32"
    if name == "fp16" and device.type != "cuda":
        from .errors import PdartsError

        raise PdartsError("precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    if channels_last and dtype == torch.bfloat16 and device.type == "cpu":
        log.info("bf16 on the CPU runs in the contiguous layout (bf16 + channels_last gave NaN losses)")
        channels_last = False
    return Precision(device.type, dtype, channels_last)
