"""Mixed precision and memory layout as settings (bf16 autocast on CPU and CUDA, fp16 with gradient
scaling on CUDA, channels_last).

``precision: auto`` is bf16 on CUDA GPUs that support it (fp16 with gradient scaling on older ones).
On CPUs it is bf16 in channels_last on a CPU with native bf16 (AVX-512 BF16 or AMX), except for
steps on small maps (under ``fast_ops.MIN_ELEMENTS`` in a batch of a search's first cells: the
digits search), and fp32 otherwise: on other CPUs, in the contiguous layout, and on small maps, where
bf16 was not measured faster. Measured on 2 cores of an AMD EPYC with AVX-512 BF16 (``pdarts
bench``, README "Search speed and memory"): training steps in bf16 + channels_last, with
``fast_ops``' depthwise convolutions and BatchNorm in bf16 too, ran 2.49x the reference's speed on
CIFAR and 1.76x on ImageNet, fp32 + channels_last 1.68x and 1.48x (the same run), in 0.53x and 0.78x
of its memory against 0.84x and 0.97x; search steps in bf16 + channels_last, with the search's forms
in bf16, 9-16 % faster than in fp32 + channels_last (stages 1-3, batch 32) in 0.65-0.78x of the
memory, and on the digits search's 8 x 8 maps 0.79x and 0.64x as fast. bf16 + channels_last had given
non-finite losses on small maps on the CPU (torch 2.14): that was oneDNN's strided 1x1 channels_last
backward pass, which ``FactorizedReduce`` no longer calls (``tests/test_training.py`` trains odd
batches of small maps in it, twice, to the same finite losses).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from . import fast_ops

__all__ = ["Precision", "native_bf16", "resolve_precision"]


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


def native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX), not by emulation."""
    return any(
        getattr(torch.cpu, check, lambda: False)()
        for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


def resolve_precision(
    name: str, device: torch.device, channels_last: bool, map_elements: int | None = None
) -> Precision:
    """Turns the ``precision`` setting into a ``Precision``; refuses fp16 on the CPU.

    ``auto`` on the CPU: bf16 in channels_last on a CPU with native bf16, the fastest form measured
    there, unless ``map_elements`` (the elements of a batch of a step's first maps; None: not
    considered) is under ``fast_ops.MIN_ELEMENTS``: on maps that small every op costs its call more
    than its arithmetic, ``fast_ops`` takes the plain ops, and bf16's casts add calls (the digits
    search, 64 x 8 x 8 x 8: 0.83-1.04 s per step in bf16 against 0.65-0.67 s in fp32). fp32 otherwise.
    """
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "cpu" and channels_last and native_bf16():
            name = "fp32" if map_elements is not None and map_elements < fast_ops.MIN_ELEMENTS else "bf16"
        else:
            name = "fp32"
    if name == "fp16" and device.type != "cuda":
        from .errors import PdartsError

        raise PdartsError("precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    return Precision(device.type, dtype, channels_last)
