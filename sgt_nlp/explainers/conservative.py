"""Conservative propagation (Ali et al., ICML 2022): gradient x input of the backward pass in which the
attention probabilities and the normalisation scales are constants; one forward and one backward pass."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from sgt_nlp.conservative import check_conservative, conservative_rules
from sgt_nlp.explainers.gradient import Gradient
from sgt_nlp.saliency import embedding_gradients


class Conservative(Gradient):
    """Relevance by conservative propagation: within :func:`sgt_nlp.conservative.conservative_rules` the
    backward pass holds every attention probability and every LayerNorm/RMSNorm scale constant (the AH- and
    LN-rules), and the per-token relevance is gradient x input on the word embeddings (``grad_x_input``, the
    default; signed). The other gradient aggregations apply to the same modified gradient.

    Classifiers whose attention bypasses transformers' attention registry (DeBERTa-v2) or that hold an
    unknown norm module are refused at construction (``ValueError``).
    """

    name = "conservative"
    default_aggregation = "grad_x_input"
    default_aggregations = ("grad_x_input", "abs_grad_x_input")

    def __init__(
        self,
        model: nn.Module,
        target_output: str = "logit",
        *,
        aggregation: str = "grad_x_input",
        tokenizer: Any = None,
        special_ids: Iterable[int] | None = None,
    ) -> None:
        super().__init__(
            model, target_output, aggregation=aggregation, tokenizer=tokenizer, special_ids=special_ids
        )
        check_conservative(model)

    def gradients(
        self, inputs: dict[str, torch.Tensor], target: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(grads [B,T,D], embeddings [B,T,D], logits [B,C])`` of the rule backward."""
        with conservative_rules(self.model):
            return embedding_gradients(self.model, inputs, target, self.target_output)
