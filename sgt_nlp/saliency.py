"""Embedding gradients and their reduction to one saliency score per token.

Shared by the trainer (which masks the lowest-scored tokens) and the explainers (which report the scores).
Everything here is a pure tensor function or a thin wrapper around one model call, so it can be tested
without a ``Trainer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

Aggregation = Literal["l2", "l1", "signed_mean", "grad_x_input", "abs_grad_x_input"]
AGGREGATIONS: tuple[str, ...] = ("l2", "l1", "signed_mean", "grad_x_input", "abs_grad_x_input")
SIGNED_AGGREGATIONS: frozenset[str] = frozenset({"signed_mean", "grad_x_input"})

TargetOutput = Literal["logit", "log_prob", "prob"]
TARGET_OUTPUTS: tuple[str, ...] = ("logit", "log_prob", "prob")


def aggregate_token_saliency(
    grads: torch.Tensor, embeddings: torch.Tensor | None, aggregation: str
) -> torch.Tensor:
    """Reduce per-dimension embedding gradients ``[B, T, D]`` to token scores ``[B, T]``.

    ``l2``/``l1`` are gradient magnitudes (what "small gradients" means in the SGT paper); ``signed_mean`` is
    the literal port of the authors' channel mean; ``grad_x_input`` and its absolute value multiply by the
    embedding itself. Only the signed ones can tell two classes of a binary softmax apart (see sanity.py).
    """
    if aggregation == "l2":
        return grads.float().norm(p=2, dim=-1)
    if aggregation == "l1":
        return grads.float().abs().sum(dim=-1)
    if aggregation == "signed_mean":
        return grads.float().mean(dim=-1)
    if aggregation in ("grad_x_input", "abs_grad_x_input"):
        if embeddings is None:
            raise ValueError(f"aggregation={aggregation!r} needs the input embeddings")
        scores = (grads.float() * embeddings.float()).sum(dim=-1)
        return scores.abs() if aggregation == "abs_grad_x_input" else scores
    raise ValueError(f"unknown aggregation {aggregation!r}; allowed: {', '.join(AGGREGATIONS)}")


def select_target_scores(
    logits: torch.Tensor, target: torch.Tensor, target_output: str = "logit"
) -> torch.Tensor:
    """Pick, per example, the scalar whose gradient is the saliency: the target's logit, log-prob or prob."""
    if target_output == "logit":
        values = logits
    elif target_output == "log_prob":
        values = torch.log_softmax(logits.float(), dim=-1)
    elif target_output == "prob":
        values = torch.softmax(logits.float(), dim=-1)
    else:
        raise ValueError(f"unknown target_output {target_output!r}; allowed: {', '.join(TARGET_OUTPUTS)}")
    return values.gather(-1, target.long().view(-1, 1)).squeeze(-1)


def word_embedding_layer(model: nn.Module) -> nn.Embedding:
    """The model's word (token) embedding table, with an error that says what is missing."""
    getter = getattr(model, "get_input_embeddings", None)
    layer = getter() if callable(getter) else None
    if not isinstance(layer, nn.Embedding):
        raise TypeError(
            f"{type(model).__name__} exposes no word embedding layer (get_input_embeddings() returned "
            f"{type(layer).__name__}); saliency needs gradients with respect to token embeddings"
        )
    return layer


def padding_aware_position_ids(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor | None:
    """Position ids the model would derive from ``input_ids``, or None where it needs none passed.

    RoBERTa-style embeddings number positions from ``padding_idx + 1`` and skip padding; given
    ``inputs_embeds`` they fall back to a plain ``arange``, which shifts every position under left padding.
    Passing the ids explicitly keeps the embeddings path identical to the ``input_ids`` path.
    """
    base = getattr(model, "base_model", model)
    embeddings = getattr(base, "embeddings", None)
    padding_idx = getattr(embeddings, "padding_idx", None)
    if embeddings is None or padding_idx is None or not hasattr(embeddings, "position_embeddings"):
        return None
    not_pad = input_ids.ne(padding_idx).int()
    return (torch.cumsum(not_pad, dim=1).type_as(not_pad) * not_pad).long() + padding_idx


def embedding_forward_kwargs(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword arguments (besides ``inputs_embeds``) that reproduce ``model(**inputs)`` from embeddings."""
    kwargs: dict[str, torch.Tensor] = {}
    for key in ("attention_mask", "token_type_ids"):
        if inputs.get(key) is not None:
            kwargs[key] = inputs[key]
    if inputs.get("position_ids") is not None:
        kwargs["position_ids"] = inputs["position_ids"]
    else:
        position_ids = padding_aware_position_ids(model, inputs["input_ids"])
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
    return kwargs


def embedding_gradients(
    model: nn.Module,
    inputs: Mapping[str, torch.Tensor],
    target: torch.Tensor | None = None,
    target_output: str = "logit",
    embeddings: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradient of each example's target output with respect to its word embeddings.

    Runs the model in whatever mode it is in, on a detached leaf copy of the word embeddings, with
    ``torch.autograd.grad``: no parameter ``.grad`` is touched and no DDP hook fires. ``target`` None means
    the predicted class. Returns ``(grads [B,T,D], embeddings [B,T,D], logits [B,C])``.
    """
    if embeddings is None:
        embeddings = word_embedding_layer(model)(inputs["input_ids"])
    leaf = embeddings.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(inputs_embeds=leaf, **embedding_forward_kwargs(model, inputs)).logits
        if target is None:
            target = logits.argmax(dim=-1)
        scores = select_target_scores(logits, target, target_output)
        (grads,) = torch.autograd.grad(scores.sum(), leaf)
    return grads, leaf.detach(), logits.detach()


def token_saliency(
    model: nn.Module,
    inputs: Mapping[str, torch.Tensor],
    aggregation: str = "l2",
    target: torch.Tensor | None = None,
    target_output: str = "logit",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token scores ``[B, T]`` and logits for one batch; a convenience over the two functions above."""
    grads, embeddings, logits = embedding_gradients(model, inputs, target, target_output)
    return aggregate_token_saliency(grads, embeddings, aggregation), logits
