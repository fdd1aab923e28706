"""bf16 autocast: whether a device runs it natively, and the context every model pass of ``--bf16`` runs in.

``--bf16`` (``TrainingArguments.bf16``, ``EvaluationConfig.bf16``, ``SanityConfig.bf16``, the ``explain`` and
``demo`` options, an experiment spec's ``mixed_precision: bf16``) runs the model's matrix products in bfloat16
under ``torch.autocast``; weights, embeddings and every attribution accumulation (IG's path sum, SmoothGrad's
mean, occlusion's differences, AOPC) stay float32. Off (the default), nothing here touches a pass, so fp32
numbers are bit-identical to a run without this module.

A CPU without native bf16 (AVX512-BF16 or AMX) would emulate it, slower than fp32: :func:`check_bf16` refuses
it with an error that says so, rather than run a silent slowdown. Imports nothing of the package but
``validation``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .validation import UsageError


def precision_name(bf16: bool) -> str:
    """``"bf16"`` or ``"fp32"``: the value written into run.json, scores.json, model cards and records."""
    return "bf16" if bf16 else "fp32"


def _cpu_flag(name: str) -> bool:
    check = getattr(torch.cpu, name, None)
    try:
        return bool(check()) if callable(check) else False
    except Exception:  # a private torch probe that changed: treat as absent
        return False


def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bf16 matrix products natively: oneDNN is available, claims bf16, and the CPU has
    AVX512-BF16 or AMX tiles (without them oneDNN emulates bf16, slower than fp32)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = True  # the probe is missing in this torch: the CPU flags decide
    return onednn and (_cpu_flag("_is_avx512_bf16_supported") or _cpu_flag("_is_amx_tile_supported"))


def bf16_supported(device: str | torch.device) -> bool:
    """Whether ``device`` (``cpu``, ``cuda``, ``cuda:N``) runs bf16 autocast natively."""
    kind = torch.device(device).type
    if kind == "cpu":
        return cpu_bf16_supported()
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return False


def check_bf16(device: str | torch.device, option: str = "--bf16") -> None:
    """Raise a :class:`UsageError` when ``device`` cannot run bf16 natively (saying what it would cost)."""
    if bf16_supported(device):
        return
    kind = torch.device(device).type
    if kind == "cpu":
        why = (
            "this CPU has neither AVX512-BF16 nor AMX (or oneDNN lacks bf16), so bf16 would be emulated "
            "and run slower than fp32"
        )
    else:
        why = f"{device} does not support bf16 autocast"
    raise UsageError(f"{option}: {why}; leave {option} out to run in fp32 (the default)")


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


@contextlib.contextmanager
def autocast(target: torch.nn.Module | str | torch.device, bf16: bool) -> Iterator[None]:
    """bf16 autocast on the device of ``target`` (a model or a device) when ``bf16``; else nothing at all."""
    if not bf16:
        yield
        return
    device = device_of(target) if isinstance(target, torch.nn.Module) else torch.device(target)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield


@contextlib.contextmanager
def full_precision(target: torch.nn.Module | str | torch.device) -> Iterator[None]:
    """Autocast off inside (for a reference pass in float32/float64 within a bf16 run)."""
    device = device_of(target) if isinstance(target, torch.nn.Module) else torch.device(target)
    with torch.autocast(device.type, enabled=False):
        yield
