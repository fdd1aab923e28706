"""bf16 autocast: whether a device runs it natively, and the context every model pass of ``--bf16`` runs in.

``--bf16`` (``TrainingArguments.bf16``, ``EvaluationConfig.bf16``, ``SanityConfig.bf16``, the ``explain`` and
``demo`` options, an experiment spec's ``mixed_precision: bf16``) runs the model's matrix products in bfloat16
under ``torch.autocast``; weights, embeddings and every attribution accumulation (IG's path sum, SmoothGrad's
mean, occlusion's differences, AOPC) stay float32. Off (the default), nothing here touches a pass, so fp32
numbers are bit-identical to a run without this module.

A CPU without native bf16 (AVX512-BF16 or AMX) would emulate it, slower than fp32: :func:`check_bf16` refuses
it with an error that says so, rather than run a silent slowdown. Imports nothing of the package but
``validation``.

On a CPU, the attention of a model whose configs name ``sdpa`` runs in float32 inside :func:`autocast` (the
``sgt_nlp_sdpa_fp32`` function of transformers' ``AttentionInterface``; the linear layers stay bf16): without
AMX, oneDNN's bf16 attention kernels gain nothing at a head size of 32 and their backward runs about 4x
slower than fp32's (``docs/bf16.md``), so fp32 attention is both faster and more precise there.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

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


FP32_ATTENTION = "sgt_nlp_sdpa_fp32"


def model_configs(model: torch.nn.Module) -> list[Any]:
    """Every ``PretrainedConfig`` the modules of ``model`` hold (sub-configs included), each once."""
    from transformers import PretrainedConfig

    found: dict[int, Any] = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if isinstance(config, PretrainedConfig):
            found.setdefault(id(config), config)
            for key in getattr(config, "sub_configs", {}):
                sub = getattr(config, key, None)
                if isinstance(sub, PretrainedConfig):
                    found.setdefault(id(sub), sub)
    return list(found.values())


def sdpa_fp32_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, Any]:
    """transformers' sdpa attention with autocast off and query, key, value (and a float mask) in float32;
    the output goes back to the query's dtype. Registered as ``sgt_nlp_sdpa_fp32``."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    with torch.autocast(query.device.type, enabled=False):
        output, weights = sdpa_attention_forward(
            module, query.float(), key.float(), value.float(), attention_mask, **kwargs
        )
    return output.to(query.dtype), weights


@functools.cache
def _register_fp32_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(FP32_ATTENTION, sdpa_fp32_attention)
    AttentionMaskInterface.register(FP32_ATTENTION, sdpa_mask)


@contextlib.contextmanager
def fp32_attention(model: torch.nn.Module) -> Iterator[None]:
    """Within the block, every config of ``model`` that names ``sdpa`` names ``sgt_nlp_sdpa_fp32`` instead
    (restored on exit, also after an error); eager and other attention implementations are left alone."""
    _register_fp32_attention()
    absent = object()
    switched = []
    try:
        for config in model_configs(model):
            if getattr(config, "_attn_implementation", None) == "sdpa":
                switched.append((config, config.__dict__.get("_attn_implementation_internal", absent)))
                config.__dict__["_attn_implementation_internal"] = FP32_ATTENTION
        yield
    finally:
        for config, implementation in switched:
            if implementation is absent:
                config.__dict__.pop("_attn_implementation_internal", None)
            else:
                config.__dict__["_attn_implementation_internal"] = implementation


@contextlib.contextmanager
def autocast(target: torch.nn.Module | str | torch.device, bf16: bool) -> Iterator[None]:
    """bf16 autocast on the device of ``target`` (a model or a device) when ``bf16``; else nothing at all.
    For a model on a CPU, its sdpa attention runs in float32 inside (:func:`fp32_attention`)."""
    if not bf16:
        yield
        return
    model = target if isinstance(target, torch.nn.Module) else None
    device = device_of(model) if model is not None else torch.device(target)  # type: ignore[arg-type]
    with contextlib.ExitStack() as stack:
        if model is not None and device.type == "cpu":
            stack.enter_context(fp32_attention(model))
        stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
        yield


@contextlib.contextmanager
def full_precision(target: torch.nn.Module | str | torch.device) -> Iterator[None]:
    """Autocast off inside (for a reference pass in float32/float64 within a bf16 run)."""
    device = device_of(target) if isinstance(target, torch.nn.Module) else torch.device(target)
    with torch.autocast(device.type, enabled=False):
        yield
