"""Conservative propagation for transformers (Ali et al., ICML 2022): the detach rules as a context manager.

Within :func:`conservative_rules` a Hugging Face classifier computes the same logits, but its backward pass
treats two things as constants, as the relevance rules of Ali et al. prescribe:

- the attention probabilities (the AH-rule): relevance flows through the values, never through the
  query-key softmax;
- the scale of every normalisation (the LN-rule): LayerNorm's ``1/sigma`` (the centering keeps its gradient)
  and RMSNorm's ``1/rms(x)``.

Gradient x input on the word embeddings of that backward pass is then the conservative relevance (LRP-0 on
what remains). Both rules use transformers' own extension points, with no copied model code:

- attention: a function registered in ``AttentionInterface`` (and ``eager_mask`` for it in
  ``AttentionMaskInterface``, so the model builds additive float masks) computes eager attention, with the
  probabilities detached; the model's configs name it as their ``_attn_implementation`` inside the block;
- normalisation: a forward hook on every norm module returns the module's own output (the same values, bit
  for bit) through an autograd function whose backward is the rule's gradient (checked once per block
  against the module's output, so a norm that computes something else is refused).

Everything is restored on exit, also when the block raises. A classifier whose attention does not go through
the registry (DeBERTa-v2), or that holds a norm module of a kind the rules do not know, is refused.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .precision import model_configs
from .saliency import classifier_of

ATTENTION_NAME = "sgt_conservative"

#: RMSNorm classes whose forward is ``x * rsqrt(mean(x**2) + eps)`` computed in float32, times the weight:
#: class name -> (epsilon attribute, weight offset: Gemma multiplies by ``1 + weight``)
RMS_NORMS: dict[str, tuple[str, float]] = {
    "LlamaRMSNorm": ("variance_epsilon", 0.0),
    "MistralRMSNorm": ("variance_epsilon", 0.0),
    "Qwen2RMSNorm": ("variance_epsilon", 0.0),
    "GemmaRMSNorm": ("eps", 1.0),
}

#: the gates of the models now inside a :func:`conservative_rules` block, by ``id`` of their configs
_GATES: dict[int, RuleGate] = {}


class ConservativeUnsupported(ValueError):
    """The classifier cannot be explained by conservative propagation (and is not explained wrong)."""


class RuleGate:
    """Whether the backward pass follows the rules (constants stay constant) or the true gradient.

    ``switched=False`` (explainers): always the rules. ``switched=True`` (the SGT trainer's ``reuse`` pass,
    where one forward serves both the saliency and the loss): the rules only while :meth:`rule_gradients`
    is open, the model's own gradient otherwise. Either way the backward computes only the gradient it
    passes on (no zeros are propagated through the branch it does not take).
    """

    def __init__(self, switched: bool = False) -> None:
        self.switched = switched
        self.closed = not switched
        self.attention_calls = 0
        self.checked: set[int] = set()

    @contextlib.contextmanager
    def rule_gradients(self) -> Iterator[None]:
        """Within the block, backward passes follow the rules."""
        before, self.closed = self.closed, True
        try:
            yield
        finally:
            self.closed = before

    def constant(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` for the forward; a constant for a rule backward."""
        if not self.switched:
            return tensor.detach()
        return _Constant.apply(self, tensor) if tensor.requires_grad else tensor


class _Constant(torch.autograd.Function):
    """Identity whose backward passes nothing while its gate is closed."""

    @staticmethod
    def forward(ctx: Any, gate: RuleGate, tensor: torch.Tensor) -> torch.Tensor:
        ctx.gate = gate
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor | None]:
        return None, None if ctx.gate.closed else grad


class _NormRule(torch.autograd.Function):
    """A norm module's own output; backward: the module's own gradient (gate open) or the LN-rule's
    gradient of its input, weight and bias (gate closed), from ``rule.backward``."""

    @staticmethod
    def forward(
        ctx: Any,
        gate: RuleGate,
        rule: NormRule,
        module: nn.Module,
        output: torch.Tensor,
        x: torch.Tensor,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
    ) -> torch.Tensor:
        ctx.gate, ctx.rule, ctx.module = gate, rule, module
        ctx.save_for_backward(x)
        return output.view_as(output)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        if not ctx.gate.closed:
            return None, None, None, grad, None, None, None
        (x,) = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = ctx.rule.backward(ctx.module, x, grad, ctx.needs_input_grad[5:])
        return None, None, None, None, grad_x, grad_weight, grad_bias


# ---- attention ---------------------------------------------------------------------------------------------


def conservative_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention (``softmax(q k^T * scaling + mask) v``, grouped key/value heads repeated) whose
    probabilities are a constant of the rule backward. Registered as ``sgt_conservative``."""
    gate = _GATES.get(id(getattr(module, "config", None)))
    if gate is None:
        raise RuntimeError(
            f"the {ATTENTION_NAME!r} attention ran outside conservative_rules(), which alone selects it"
        )
    for name in ("softcap", "s_aux", "sinks"):
        if kwargs.get(name) is not None:
            raise ConservativeUnsupported(
                f"{type(module).__name__} passes {name!r} to its attention function; the conservative "
                "attention rule does not implement it"
            )
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask[..., : key.shape[-2]]
    low_precision = scores.dtype in (torch.float16, torch.bfloat16)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32 if low_precision else None).to(query.dtype)
    probs = F.dropout(probs, p=dropout, training=module.training)
    probs = gate.constant(probs)
    gate.attention_calls += 1
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), probs


@functools.cache
def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(ATTENTION_NAME, conservative_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, eager_mask)


# ---- normalisation -----------------------------------------------------------------------------------------


def _leading_sum(tensor: torch.Tensor, dims: int) -> torch.Tensor:
    return tensor.reshape(-1, *tensor.shape[tensor.dim() - dims :]).sum(0)


class NormRule:
    """The LN-rule of one kind of norm module: ``value`` recomputes the module's output (to check that the
    module is what the rule assumes), ``backward`` is the gradient with the scale held constant."""

    def value(self, module: Any, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def backward(
        self, module: Any, x: torch.Tensor, grad: torch.Tensor, needs: tuple[bool, ...]
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        raise NotImplementedError


class LayerNormRule(NormRule):
    """``(x - mean) * inverse * w + b`` with ``inverse = 1/sqrt(var + eps)`` constant (centering kept):
    nn.LayerNorm (its forward computes in the input's dtype)."""

    def _centered(self, module: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        n = len(module.normalized_shape)
        dims = tuple(range(-n, 0))
        inverse = torch.rsqrt(x.var(dim=dims, unbiased=False, keepdim=True) + module.eps)
        return x - x.mean(dim=dims, keepdim=True), inverse, n

    def value(self, module: Any, x: torch.Tensor) -> torch.Tensor:
        centered, inverse, _ = self._centered(module, x)
        out = centered * inverse
        out = out * module.weight if module.weight is not None else out
        return out + module.bias if module.bias is not None else out

    def backward(self, module, x, grad, needs):
        centered, inverse, n = self._centered(module, x)
        dims = tuple(range(-n, 0))
        weighted = grad * module.weight if module.weight is not None else grad
        grad_x = (weighted - weighted.mean(dim=dims, keepdim=True)) * inverse
        grad_weight = _leading_sum(grad * centered * inverse, n) if needs[0] else None
        grad_bias = _leading_sum(grad, n) if needs[1] else None
        return grad_x, grad_weight, grad_bias


class TorchRMSNormRule(NormRule):
    """``x * inverse * w`` with ``inverse = 1/sqrt(mean(x**2) + eps)`` constant: nn.RMSNorm."""

    def _inverse(self, module: Any, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        n = len(module.normalized_shape)
        eps = module.eps if module.eps is not None else torch.finfo(x.dtype).eps
        return torch.rsqrt(x.pow(2).mean(dim=tuple(range(-n, 0)), keepdim=True) + eps), n

    def value(self, module, x):
        inverse, _ = self._inverse(module, x)
        return x * inverse * module.weight if module.weight is not None else x * inverse

    def backward(self, module, x, grad, needs):
        inverse, n = self._inverse(module, x)
        weighted = grad * module.weight if module.weight is not None else grad
        grad_weight = _leading_sum(grad * x * inverse, n) if needs[0] else None
        return weighted * inverse, grad_weight, None


class HFRMSNormRule(NormRule):
    """Llama/Mistral/Qwen2 (``w * (x * inverse).to(dtype)``) and Gemma (``(x * inverse * (1 + w)).to(dtype)``)
    RMSNorm, computed in float32 as their forwards do, with ``inverse`` constant."""

    def _normed(self, module: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        eps_name, offset = RMS_NORMS[type(module).__name__]
        hidden = x.to(torch.float32)
        inverse = torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + getattr(module, eps_name))
        return hidden, inverse, offset

    def value(self, module, x):
        hidden, inverse, offset = self._normed(module, x)
        if offset:
            return (hidden * inverse * (offset + module.weight.float())).type_as(x)
        return module.weight * (hidden * inverse).to(x.dtype)

    def backward(self, module, x, grad, needs):
        hidden, inverse, offset = self._normed(module, x)
        if offset:
            grad_x = (grad.to(torch.float32) * (offset + module.weight.float()) * inverse).to(x.dtype)
            grad_weight = _leading_sum(grad.float() * hidden * inverse, 1) if needs[0] else None
        else:
            grad_x = ((grad * module.weight).to(torch.float32) * inverse).to(x.dtype)
            grad_weight = _leading_sum(grad * (hidden * inverse).to(x.dtype), 1) if needs[0] else None
        if grad_weight is not None:
            grad_weight = grad_weight.to(module.weight.dtype)
        return grad_x, grad_weight, None


def norm_rule(module: nn.Module) -> NormRule | None:
    """The rule of a norm module the rules know, else None."""
    if isinstance(module, nn.LayerNorm) and type(module).forward is nn.LayerNorm.forward:
        return LayerNormRule()
    if isinstance(module, nn.RMSNorm) and type(module).forward is nn.RMSNorm.forward:
        return TorchRMSNormRule()
    if type(module).__name__ in RMS_NORMS:
        return HFRMSNormRule()
    return None


def _is_norm(module: nn.Module) -> bool:
    name = type(module).__name__.lower()
    return "norm" in name or isinstance(module, nn.modules.batchnorm._NormBase | nn.GroupNorm)


def _norm_hook(gate: RuleGate, rule: NormRule, module: nn.Module, args: tuple, output: Any) -> Any:
    if not args or not isinstance(output, torch.Tensor):
        raise ConservativeUnsupported(
            f"{type(module).__name__} was called in a way the LN-rule cannot follow"
        )
    x = args[0]
    if id(module) not in gate.checked:  # once per module and block: the module is what its rule assumes
        with torch.no_grad():
            _check_rule_value(module, rule.value(module, x), output, x.dtype)
        gate.checked.add(id(module))
    if not torch.is_grad_enabled():
        return None
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    return _NormRule.apply(gate, rule, module, output, x, weight, bias)


def _check_rule_value(
    module: nn.Module, value: torch.Tensor, output: torch.Tensor, input_dtype: torch.dtype
) -> None:
    """Refuse a norm whose forward is not what its rule assumes (a changed class, a subclass)."""
    scale = float(output.abs().max()) if output.numel() else 0.0
    error = float((value - output).abs().max()) if output.numel() else 0.0
    # the coarser of the input's and the output's precision (under autocast a LayerNorm reads bfloat16 and
    # writes float32); a wrong formula is off by the size of the output itself
    eps = max(torch.finfo(input_dtype).eps, torch.finfo(output.dtype).eps)
    tolerance = max(1e-4, 16 * eps) * (1.0 + scale)
    if not error <= tolerance:
        raise ConservativeUnsupported(
            f"{type(module).__name__} computes something else than the normalisation its rule assumes "
            f"(largest difference {error:.3g}); conservative propagation refuses to explain it"
        )


# ---- the context manager -----------------------------------------------------------------------------------


def check_conservative(model: nn.Module) -> None:
    """Raise :class:`ConservativeUnsupported` (a ``ValueError``) for a classifier the rules cannot follow."""
    classifier = classifier_of(model)
    name = type(classifier).__name__
    if not getattr(type(classifier), "_supports_attention_backend", False):
        raise ConservativeUnsupported(
            f"{name}: its attention does not go through transformers' attention function registry "
            "(AttentionInterface), so conservative propagation cannot hold its attention probabilities "
            "constant. Supported: BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA, ModernBERT, GPT-2, Llama, "
            "Mistral, Gemma, Qwen2, Phi (not DeBERTa-v2)."
        )
    unknown = sorted({type(m).__name__ for m in classifier.modules() if _is_norm(m) and norm_rule(m) is None})
    if unknown:
        raise ConservativeUnsupported(
            f"{name} holds normalisation modules the LN-rule does not know: {', '.join(unknown)} "
            f"(known: nn.LayerNorm, nn.RMSNorm, {', '.join(RMS_NORMS)})"
        )


@contextlib.contextmanager
def conservative_rules(model: nn.Module, switched: bool = False) -> Iterator[RuleGate]:
    """Within the block, the model's backward passes follow Ali et al.'s detach rules (attention
    probabilities and normalisation scales constant); its forward gives the logits of eager attention.

    ``switched=True`` applies the rules only inside ``gate.rule_gradients()`` (see :class:`RuleGate`).
    Every forward must run at least one attention through the registry, else it raises. The attention
    implementation of every config and all hooks are restored on exit, also after an error.
    """
    check_conservative(model)
    _register()
    classifier = classifier_of(model)
    gate = RuleGate(switched)
    configs = model_configs(classifier)
    if any(id(config) in _GATES for config in configs):
        raise RuntimeError(f"{type(classifier).__name__} is already inside a conservative_rules() block")
    absent = object()
    saved = [(config, config.__dict__.get("_attn_implementation_internal", absent)) for config in configs]
    handles: list[Any] = []

    def check_attention_ran(module: nn.Module, args: tuple, output: Any) -> None:
        calls, gate.attention_calls = gate.attention_calls, 0
        if calls == 0:
            raise ConservativeUnsupported(
                f"{type(module).__name__} ran no attention through the {ATTENTION_NAME!r} function; its "
                "attention probabilities would not be held constant"
            )

    try:
        for config in configs:
            _GATES[id(config)] = gate
            config.__dict__["_attn_implementation_internal"] = ATTENTION_NAME
        for module in classifier.modules():
            rule = norm_rule(module) if _is_norm(module) else None
            if rule is not None:
                handles.append(module.register_forward_hook(functools.partial(_norm_hook, gate, rule)))
        handles.append(classifier.register_forward_hook(check_attention_ran))
        yield gate
    finally:
        for handle in handles:
            handle.remove()
        for config, implementation in saved:
            if implementation is absent:
                config.__dict__.pop("_attn_implementation_internal", None)
            else:
                config.__dict__["_attn_implementation_internal"] = implementation
            _GATES.pop(id(config), None)
