"""The saliency-guided training objective of one batch, as steps that need no ``Trainer``.

``SaliencyGuidedTrainer.compute_loss`` runs them in order:

1. :func:`prepare_batch`: the forward arguments and the maskable positions (never special or padding tokens);
2. :func:`clean_pass`: the clean logits, the word embeddings and (unless the mask is drawn at random) the
   gradient of the target class's output with respect to them, from the training forward (``reuse``) or a
   separate forward with dropout off (``eval``); ``sgt_saliency_method='conservative'`` takes it with the
   detach rules of conservative propagation (under ``reuse`` for the saliency backward only);
3. :func:`saliency_scores`: one score per token; rows whose scores are all zero or not finite are ranked at
   random instead, and counted;
4. :func:`choose_mask` and :func:`mask_embeddings`: ``k = floor(fraction * n)`` positions per sequence
   (lowest-saliency, random or highest) and their replacement embeddings;
5. :func:`masked_forward`, then :func:`sgt_loss`: ``CE(p(x), y) + lambda * KL(p(x) || p(x~))``, the KL summed
   over classes and averaged over the batch; :func:`step_values` are the step's logged numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import SaliencyGuidedTrainingArguments
from .conservative import conservative_rules
from .masking import (
    apply_mask,
    maskable_positions,
    replacement_embeddings,
    select_mask_positions,
    tokens_to_mask_per_sequence,
)
from .saliency import (
    aggregate_token_saliency,
    embedding_forward_kwargs,
    embedding_gradients,
    forward_from_embeddings,
    select_target_scores,
    word_embedding_layer,
)


@dataclass
class SGTBatch:
    """One batch, ready for the SGT passes.

    ``model_inputs`` feed the clean ``input_ids`` forward (everything but the labels, with the padding-aware
    ``position_ids`` the embedding forwards use, so that both forwards number positions alike);
    ``forward_kwargs`` are the other arguments of every ``inputs_embeds`` forward; ``candidates`` ``[B, T]``
    marks the maskable positions.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    model_inputs: dict[str, Any]
    forward_kwargs: dict[str, Any]
    candidates: torch.Tensor


@dataclass
class CleanPass:
    """The clean forward's logits ``[B, C]``, the word embeddings ``[B, T, D]`` (in the graph under ``reuse``
    training) and their saliency gradients (None when the mask is drawn at random)."""

    logits: torch.Tensor
    embeddings: torch.Tensor
    grads: torch.Tensor | None


def prepare_batch(
    model: nn.Module,
    inputs: Mapping[str, Any],
    special_ids: Any,
    special_tokens_mask: torch.Tensor | None = None,
) -> SGTBatch:
    """Split a collated batch (with ``input_ids`` and ``labels``) into the arguments of the SGT forwards."""
    input_ids = inputs["input_ids"]
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    forward_kwargs = embedding_forward_kwargs(model, model_inputs)
    forward_kwargs.update(
        {k: v for k, v in model_inputs.items() if k not in forward_kwargs and k != "input_ids"}
    )
    if "position_ids" in forward_kwargs:  # the clean forward numbers positions as the masked one does
        model_inputs["position_ids"] = forward_kwargs["position_ids"]
    candidates = maskable_positions(input_ids, inputs.get("attention_mask"), special_ids, special_tokens_mask)
    return SGTBatch(input_ids, inputs["labels"], model_inputs, forward_kwargs, candidates)


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Within the block the model is in eval mode (dropout off); afterwards in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def saliency_rules(model: nn.Module, method: str, switched: bool = False) -> Any:
    """The context of a saliency backward: none for ``gradient``; for ``conservative`` the detach rules of
    :func:`sgt_nlp.conservative.conservative_rules` (``switched``: only inside ``gate.rule_gradients()``)."""
    if method == "conservative":
        return conservative_rules(model, switched=switched)
    return contextlib.nullcontext(None)


def eval_mode_saliency(
    model: nn.Module,
    embeddings: torch.Tensor,
    batch: SGTBatch,
    target: str,
    output: str,
    method: str = "gradient",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grads, detached logits)`` of a separate forward with dropout off (the authors' choice), taken on a
    detached leaf copy of ``embeddings``; ``target`` is ``label`` (gold) or ``prediction``; ``method`` the
    saliency's backward (``gradient`` or ``conservative``)."""
    with evaluation_mode(model), saliency_rules(model, method):
        grads, _, logits = embedding_gradients(
            model,
            {"input_ids": batch.input_ids},
            batch.labels if target == "label" else None,
            output,
            embeddings=embeddings,
            forward_kwargs=batch.forward_kwargs,
        )
    return grads, logits


def reused_saliency(
    logits: torch.Tensor, embeddings: torch.Tensor, labels: torch.Tensor, target: str, output: str
) -> torch.Tensor:
    """The saliency gradient from the training forward itself (``embeddings`` in its graph, kept for the
    backward of the loss)."""
    target_ids = labels if target == "label" else logits.detach().argmax(-1)
    score = select_target_scores(logits, target_ids, output).sum()
    (grads,) = torch.autograd.grad(score, embeddings, retain_graph=True)
    return grads


def clean_pass(
    model: nn.Module,
    unwrapped: nn.Module,
    batch: SGTBatch,
    args: SaliencyGuidedTrainingArguments,
    training: bool,
) -> CleanPass:
    """The clean forward and the saliency it needs.

    In training the clean forward goes through the wrapped ``model`` from ``input_ids``, exactly as the plain
    Trainer's, so DDP sees every parameter used inside its forward; the word embeddings are captured on the
    way. In evaluation it runs on ``unwrapped`` from the (detached) embeddings. The ``random`` selection ranks
    nothing: no saliency gradient and no eval-mode saliency forward.
    """
    embedding = word_embedding_layer(unwrapped)
    needs_saliency = args.sgt_mask_selection != "random"
    target, output = args.sgt_saliency_target, args.sgt_saliency_output
    method = args.sgt_saliency_method
    grads: torch.Tensor | None
    if not training:
        word_embeddings = embedding(batch.input_ids).detach()
        if not needs_saliency:
            logits = forward_from_embeddings(
                unwrapped, word_embeddings, batch.forward_kwargs, batch.input_ids
            )
            return CleanPass(logits.detach(), word_embeddings, None)
        grads, logits = eval_mode_saliency(unwrapped, word_embeddings, batch, target, output, method)
        return CleanPass(logits, word_embeddings, grads)
    grads = None
    if needs_saliency and args.sgt_saliency_pass == "eval":
        with torch.no_grad():
            leaf_source = embedding(batch.input_ids)
        grads, _ = eval_mode_saliency(unwrapped, leaf_source, batch, target, output, method)
    reuse = needs_saliency and args.sgt_saliency_pass == "reuse"
    # Under ``reuse`` the training forward serves both backwards: the rules apply to the saliency's only.
    with saliency_rules(unwrapped, method if reuse else "gradient", switched=True) as gate:
        logits, word_embeddings = forward_capturing_embeddings(
            model, embedding, batch.model_inputs, batch.input_ids
        )
    if reuse:
        with contextlib.nullcontext() if gate is None else gate.rule_gradients():
            grads = reused_saliency(logits, word_embeddings, batch.labels, target, output)
    return CleanPass(logits, word_embeddings, grads)


def forward_capturing_embeddings(
    model: nn.Module, embedding: nn.Embedding, inputs: dict[str, torch.Tensor], input_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``model(**inputs).logits`` and the word-embedding output of that same forward (in the graph).

    The captured call is the one on ``input_ids``: GPT-2 also embeds ``token_type_ids`` with its word table,
    a second call whose output is no word embedding (and which stays in the model, as the plain forward has
    it). A frozen table (LoRA) gives an output that needs no gradient; it is made to require one (as
    ``enable_input_require_grads`` does), so the saliency can be taken; the table itself stays frozen.
    """
    captured: list[torch.Tensor] = []

    def capture(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        ids = args[0] if args else None
        if ids is None or captured or not _same_ids(ids, input_ids):
            return None
        if torch.is_grad_enabled() and not output.requires_grad:
            output = output.detach().requires_grad_(True)
        captured.append(output)
        return output

    handle = embedding.register_forward_hook(capture)
    try:
        logits = model(**inputs).logits
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(
            f"the word embedding layer {type(embedding).__name__} never ran on the batch's input_ids during "
            "the forward; SGT needs the model to embed input_ids with get_input_embeddings()"
        )
    return logits, captured[0]


def _same_ids(ids: torch.Tensor, input_ids: torch.Tensor) -> bool:
    """Whether an embedding call's ids are the batch's ``input_ids`` (possibly viewed or reshaped)."""
    if ids.data_ptr() == input_ids.data_ptr() and ids.numel() == input_ids.numel():
        return True
    if ids.numel() != input_ids.numel():
        return False
    return torch.equal(ids.reshape(input_ids.shape), input_ids.to(ids.device))


def saliency_scores(
    grads: torch.Tensor | None,
    embeddings: torch.Tensor,
    aggregation: str,
    candidates: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Token scores ``[B, T]`` (None without gradients) and, per row, whether its scores were degenerate."""
    degenerate = torch.zeros(candidates.shape[0], dtype=torch.bool, device=candidates.device)
    if grads is None:
        return None, degenerate
    scores = aggregate_token_saliency(grads, embeddings.detach(), aggregation)
    return replace_degenerate_scores(scores, candidates, generator)


def replace_degenerate_scores(
    scores: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose saliency is non-finite or all zero (fp16 underflow) get random scores, and are counted.

    Ranking a row of zeros or NaNs would silently mask the first tokens; a random ranking is the honest
    fallback, and the count (logged as ``sgt_degenerate_saliency``) makes it visible.
    """
    real = candidates.any(dim=-1)
    finite = torch.isfinite(scores).all(dim=-1)
    nonzero = scores.masked_fill(~candidates, 0.0).abs().sum(dim=-1) > 0
    degenerate = real & ~(finite & nonzero)
    if bool(degenerate.any()):
        noise = torch.rand(scores.shape, generator=generator).to(scores.device)
        scores = torch.where(degenerate.unsqueeze(-1), noise, torch.nan_to_num(scores))
    return scores, degenerate


def choose_mask(
    selection: str,
    scores: torch.Tensor | None,
    candidates: torch.Tensor,
    fraction: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(k [B], positions [B, T])``: ``k = floor(fraction * n)`` maskable tokens per sequence, chosen by
    ``selection`` (``saliency``: the lowest scores, ``highest``, or ``random``)."""
    k = tokens_to_mask_per_sequence(candidates, fraction)
    return k, select_mask_positions(selection, scores, candidates, k, generator)


def mask_embeddings(
    strategy: str,
    embeddings: torch.Tensor,
    positions: torch.Tensor,
    embedding: nn.Embedding,
    *,
    mask_token_id: int | None,
    special_ids: Any,
    candidates: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """``embeddings`` with the ``positions`` replaced by ``strategy``'s embeddings (a random non-special
    token, the mask token, zeros, or a per-dimension uniform draw)."""
    replacements = replacement_embeddings(
        strategy,
        embeddings,
        positions,
        # Embeddings whose forward is more than a lookup (Gemma's scaled rows) are asked for their rows.
        embedding if type(embedding).forward is not nn.Embedding.forward else embedding.weight,
        mask_token_id=mask_token_id,
        special_ids=special_ids,
        candidates=candidates,
        generator=generator,
    )
    return apply_mask(embeddings, positions, replacements)


def masked_forward(
    model: nn.Module, embeddings: torch.Tensor, batch: SGTBatch, training: bool
) -> torch.Tensor:
    """The logits of the masked input (with gradients only in training)."""
    with torch.set_grad_enabled(training):
        return forward_from_embeddings(model, embeddings, batch.forward_kwargs, batch.input_ids)


def sgt_loss(
    logits: torch.Tensor,
    masked_logits: torch.Tensor,
    labels: torch.Tensor,
    kl_weight: float,
    detach_kl_target: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, task_loss, kl)``: cross-entropy of the clean logits plus ``kl_weight * KL(p(x) || p(x~))``
    (summed over classes, averaged over the batch, in float32); ``detach_kl_target`` stops the gradient
    through ``p(x)`` in the KL term."""
    task_loss = F.cross_entropy(logits.float(), labels.view(-1))
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_q = F.log_softmax(masked_logits.float(), dim=-1)
    kl = F.kl_div(
        log_q, log_p.detach() if detach_kl_target else log_p, log_target=True, reduction="batchmean"
    )
    return task_loss + kl_weight * kl, task_loss, kl


def step_values(
    task_loss: torch.Tensor,
    kl: torch.Tensor,
    positions: torch.Tensor,
    candidates: torch.Tensor,
    k: torch.Tensor,
    degenerate: torch.Tensor,
    masked_logits: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The step's logged values: the two loss terms, masked and maskable token counts, sequences with nothing
    to mask (``k = 0``), degenerate saliency rows and, given the masked logits and labels (evaluation), the
    number of correct masked predictions (``_correct``) out of ``_seen``."""
    values = {
        "task_loss": task_loss.detach(),
        "kl_loss": kl.detach(),
        "_masked_tokens": positions.sum(),
        "_maskable_tokens": candidates.sum(),
        "sgt_unmasked_sequences": (k == 0).sum(),
        "sgt_degenerate_saliency": degenerate.sum(),
    }
    if masked_logits is not None and labels is not None:
        values["_correct"] = (masked_logits.argmax(-1) == labels.view(-1)).sum()
        values["_seen"] = torch.tensor(labels.numel(), device=labels.device)
    return values
