"""Device and precision choices: `auto` resolution, autocast contexts and GradScalers (fp16 only).

fp16 asked for on the CPU works but is slow (the CPU has no fast fp16 arithmetic), so it warns, once per process.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import torch

from ganzoo.errors import UsageError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` is CUDA (the local rank's GPU) when present, else the CPU; anything else is checked."""
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; accepted: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r} was asked for but CUDA is not available; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    elif device.type != "cpu":
        raise UsageError(f"device {name!r} is not supported; accepted: auto, cpu, cuda, cuda:N")
    return device


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX-512 BF16 or AMX), where bf16 autocast is faster."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def _warn_fp16_on_cpu() -> None:
    """The fp16-on-the-CPU warning; cached, so it is given once per process."""
    if cpu_supports_bf16():
        advice = "--precision bf16: this CPU runs it natively"
    else:
        advice = "on CPUs with native bf16; this one has none, so use --precision fp32"
    warnings.warn(f"fp16 is slow on the CPU; bf16 is the CPU's fast path ({advice})", UserWarning, stacklevel=3)


def resolve_precision(name: str, device: torch.device) -> str:
    """`auto`: bf16 where the hardware runs it natively (recent GPUs, AVX-512 BF16 CPUs), else fp16 on CUDA
    and fp32 on the CPU. fp16 on the CPU warns (once per process) that it is slow."""
    if name == "fp16" and device.type == "cpu":
        _warn_fp16_on_cpu()
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of a precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def make_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A GradScaler that is active only under fp16 (bf16 and fp32 need no loss scaling)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
