"""Embedding gradients and their reduction to one saliency score per token.

Shared by the trainer (which masks the lowest-scored tokens) and the explainers (which report the scores).
Everything here is a pure tensor function or a thin wrapper around one model call, so it can be tested
without a ``Trainer``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator, Mapping
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
    embedding itself. Only the signed ones can tell two classes of a binary softmax apart (see
    sgt_nlp.sanity).
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


def classifier_of(model: nn.Module) -> nn.Module:
    """The ``transformers`` classifier inside DDP (``.module``) and PEFT (``get_base_model()``) wrappers."""
    inner = model
    # nn.Module.__getattr__ is typed Tensor | Module: what the checks found is a method and a Module
    for _ in range(8):
        if callable(getattr(inner, "get_base_model", None)) and hasattr(inner, "peft_config"):
            inner = inner.get_base_model()  # type: ignore[operator]
        elif isinstance(getattr(inner, "module", None), nn.Module) and not hasattr(inner, "config"):
            inner = inner.module  # type: ignore[assignment]
        else:
            return inner
    return inner


def word_embedding_layer(model: nn.Module) -> nn.Embedding:
    """The model's word (token) embedding table, with an error that says what is missing."""
    getter = getattr(model, "get_input_embeddings", None)
    layer = getter() if callable(getter) else None
    if isinstance(getattr(layer, "base_layer", None), nn.Embedding):
        raise TypeError(
            f"the word embedding table of {type(classifier_of(model)).__name__} carries a PEFT adapter "
            f"({type(layer).__name__}); SGT replaces embeddings with rows of the table, which an adapted "
            "table does not have. Leave the embedding layer out of target_modules (modules_to_save is fine)."
        )
    if not isinstance(layer, nn.Embedding):
        raise TypeError(
            f"{type(model).__name__} exposes no word embedding layer (get_input_embeddings() returned "
            f"{type(layer).__name__}); saliency needs gradients with respect to token embeddings"
        )
    return layer


@functools.cache
def _class_reads_last_token(cls: type) -> bool:
    for klass in cls.__mro__:
        forward = klass.__dict__.get("forward")
        if forward is not None:
            try:
                return "last_non_pad_token" in inspect.getsource(forward)
            except (OSError, TypeError):
                return False
    return False


def reads_last_token(model: nn.Module) -> bool:
    """Whether the classifier pools the last non-padding token, found from ``input_ids`` (GPT-2, Llama, ...).

    Every ``transformers`` decoder classifier does (``last_non_pad_token`` in its forward); given
    ``inputs_embeds`` instead it reads the last position, which under right padding is a padding token.
    """
    # torch's stubs make nn.Module classes unhashable to mypy (lru_cache's argument); classes hash by identity
    return _class_reads_last_token(type(classifier_of(model)))  # type: ignore[arg-type]


def _text_config(model: nn.Module):
    config = classifier_of(model).config
    # nn.Module.__getattr__ is typed Tensor | Module; this is a transformers config
    has_text_config = callable(getattr(config, "get_text_config", None))
    return config.get_text_config() if has_text_config else config  # type: ignore[union-attr, operator]


def _accepts(model: nn.Module, name: str) -> bool:
    return name in inspect.signature(classifier_of(model).forward).parameters


def check_embedding_forward(model: nn.Module) -> None:
    """Raise if ``model(inputs_embeds=...)`` cannot give the logits ``model(input_ids=...)`` gives.

    Encoder-decoder classifiers (BART, T5, ...) pool the hidden state of the EOS token, which they find in
    ``input_ids`` and refuse ``inputs_embeds``; last-token classifiers without a pad token id read the last
    position whatever the padding.
    """
    classifier = classifier_of(model)
    config = _text_config(model)
    if getattr(classifier.config, "is_encoder_decoder", False):
        raise ValueError(
            f"{type(classifier).__name__} is an encoder-decoder classifier: it pools the EOS token found in "
            "input_ids and cannot run from inputs_embeds, which SGT's masked forward and the gradient "
            "explainers need. Use an encoder (BERT, RoBERTa, ModernBERT, ...) or a decoder-only classifier."
        )
    if reads_last_token(model) and getattr(config, "pad_token_id", None) is None:
        raise ValueError(
            f"{type(classifier).__name__} reads its logits at the last non-padding token but "
            "config.pad_token_id is None, so padded batches cannot be classified: set "
            "model.config.pad_token_id = tokenizer.pad_token_id (and tokenizer.pad_token = "
            "tokenizer.eos_token if it has none)"
        )


def last_token_positions(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor | None:
    """Per row, the position a last-token classifier reads given ``input_ids`` (its own rule: the rightmost
    token that is not ``pad_token_id``); None for every other classifier."""
    pad_token_id = getattr(_text_config(model), "pad_token_id", None)
    if pad_token_id is None or not reads_last_token(model):
        return None
    columns = torch.arange(input_ids.shape[-1], device=input_ids.device)
    return (columns * input_ids.ne(pad_token_id)).argmax(-1)


@contextlib.contextmanager
def reading_last_token(model: nn.Module, input_ids: torch.Tensor) -> Iterator[None]:
    """Within the block, a last-token classifier run on ``inputs_embeds`` reads the token it reads from
    ``input_ids``.

    A forward hook on the classification head (``score``, or ``classifier`` for CTRL-like models) copies the
    logits of that token to every position, so whichever position the model then picks (the last one, for
    embeddings) holds them: the same numbers, bit for bit, as the ``input_ids`` forward, with gradients
    flowing through that token only. A no-op for every other classifier.
    """
    positions = last_token_positions(model, input_ids)
    if positions is None:
        yield
        return
    classifier = classifier_of(model)
    heads = (getattr(classifier, name, None) for name in ("score", "classifier"))
    head = next((module for module in heads if isinstance(module, nn.Module)), None)
    if head is None:
        name = type(classifier).__name__
        raise TypeError(f"{name} reads the last token but has no 'score' or 'classifier' head")

    def every_position_reads_last_token(module, args, output):
        index = positions.to(output.device).view(-1, 1, 1).expand(-1, 1, output.shape[-1])
        return output.gather(1, index).expand_as(output)

    handle = head.register_forward_hook(every_position_reads_last_token)
    try:
        yield
    finally:
        handle.remove()


def forward_from_embeddings(
    model: nn.Module,
    embeddings: torch.Tensor,
    forward_kwargs: Mapping[str, torch.Tensor],
    input_ids: torch.Tensor,
) -> torch.Tensor:
    """``model(inputs_embeds=embeddings, **forward_kwargs).logits``, read at the token the ``input_ids``
    forward reads (``input_ids`` are the ids ``embeddings`` stand for, or any with the same padding)."""
    with reading_last_token(model, input_ids):
        return model(inputs_embeds=embeddings, **forward_kwargs).logits


def padding_aware_position_ids(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Position ids that make the model's output independent of the padding, or None where none are needed.

    RoBERTa-style embeddings number positions from ``padding_idx + 1`` and skip padding; given
    ``inputs_embeds`` they fall back to a plain ``arange``, which shifts every position under left padding.
    Passing the ids explicitly keeps the embeddings path identical to the ``input_ids`` path.
    Decoder (last-token) classifiers number positions ``0, 1, ...`` from the first attended token, as
    ``generate()`` does: without this, left padding shifts every position by the padding length (which
    changes GPT-2's absolute positions), so a prediction would depend on the batch it is in. Under right
    padding these are the default positions of every real token.
    """
    if reads_last_token(model):
        if attention_mask is None or not _accepts(model, "position_ids"):
            return None
        position_ids = attention_mask.long().cumsum(-1) - 1
        return position_ids.masked_fill(attention_mask == 0, 1)
    base = getattr(classifier_of(model), "base_model", model)
    embeddings = getattr(base, "embeddings", None)
    padding_idx = getattr(embeddings, "padding_idx", None)
    if embeddings is None or padding_idx is None or not hasattr(embeddings, "position_embeddings"):
        return None
    not_pad = input_ids.ne(padding_idx).int()
    return (torch.cumsum(not_pad, dim=1).type_as(not_pad) * not_pad).long() + padding_idx


def embedding_forward_kwargs(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword arguments (besides ``inputs_embeds``) that reproduce ``model(**inputs)`` from embeddings,
    with padding-aware ``position_ids`` where the model needs them (pass them to ``input_ids`` forwards
    too)."""
    kwargs: dict[str, torch.Tensor] = {}
    for key in ("attention_mask", "token_type_ids"):
        if inputs.get(key) is not None:
            kwargs[key] = inputs[key]
    if inputs.get("position_ids") is not None:
        kwargs["position_ids"] = inputs["position_ids"]
    else:
        position_ids = padding_aware_position_ids(model, inputs["input_ids"], inputs.get("attention_mask"))
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
    return kwargs


def embedding_gradients(
    model: nn.Module,
    inputs: Mapping[str, torch.Tensor],
    target: torch.Tensor | None = None,
    target_output: str = "logit",
    embeddings: torch.Tensor | None = None,
    forward_kwargs: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradient of each example's target output with respect to its word embeddings.

    Runs the model in whatever mode it is in, on a detached leaf copy of the word embeddings, with
    ``torch.autograd.grad``: no parameter ``.grad`` is touched and no DDP hook fires. ``target`` None means
    the predicted class. ``forward_kwargs`` (default: :func:`embedding_forward_kwargs` of ``inputs``) are the
    forward's other arguments. Returns ``(grads [B,T,D], embeddings [B,T,D], logits [B,C])``.
    """
    if embeddings is None:
        embeddings = word_embedding_layer(model)(inputs["input_ids"])
    leaf = embeddings.detach().requires_grad_(True)
    with torch.enable_grad():
        kwargs = embedding_forward_kwargs(model, inputs) if forward_kwargs is None else forward_kwargs
        logits = forward_from_embeddings(model, leaf, kwargs, inputs["input_ids"])
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
