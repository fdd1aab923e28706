"""Plain gradient saliency: one backward pass, reduced per token with the trainer's aggregations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from sgt_nlp.explainers.base import Explainer
from sgt_nlp.saliency import AGGREGATIONS, SIGNED_AGGREGATIONS, aggregate_token_saliency, embedding_gradients


def check_aggregation(aggregation: str, allowed: Iterable[str] = AGGREGATIONS) -> str:
    allowed = tuple(allowed)
    if aggregation not in allowed:
        raise ValueError(f"unknown aggregation {aggregation!r}; allowed: {', '.join(allowed)}")
    return aggregation


class Gradient(Explainer):
    """``d f_target / d e_t`` reduced to a score per token (``l2``, ``l1``, ``signed_mean``, ``grad_x_input``,
    ``abs_grad_x_input``): the same scores the SGT trainer masks by, so training and evaluation agree.

    Equals captum ``Saliency(abs=False)`` (and ``InputXGradient`` for ``grad_x_input``) on a forward over
    ``inputs_embeds``, aggregated the same way. The forward pass that gives the gradient also gives the
    logits.
    """

    name = "gradient"
    aggregations = AGGREGATIONS
    default_aggregation = "l2"
    default_aggregations = AGGREGATIONS
    signed_aggregations = SIGNED_AGGREGATIONS
    run_settings = ("aggregation",)

    def __init__(
        self,
        model: nn.Module,
        target_output: str = "logit",
        *,
        aggregation: str = "l2",
        tokenizer: Any = None,
        special_ids: Iterable[int] | None = None,
    ) -> None:
        super().__init__(model, target_output, tokenizer=tokenizer, special_ids=special_ids)
        self.aggregation = check_aggregation(aggregation)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "aggregation": self.aggregation}

    def gradients(
        self, inputs: dict[str, torch.Tensor], target: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(grads [B,T,D], embeddings [B,T,D], logits [B,C])``; a subclass changes only this backward."""
        return embedding_gradients(self.model, inputs, target, self.target_output)

    def _attribute(
        self, inputs: dict[str, torch.Tensor], target: torch.Tensor | None, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        grads, embeddings, logits = self.gradients(inputs, target)
        if target is None:
            target = logits.argmax(dim=-1)
        return aggregate_token_saliency(grads, embeddings, self.aggregation), logits, target, {}
