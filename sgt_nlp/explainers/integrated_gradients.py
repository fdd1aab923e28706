"""Integrated Gradients in word-embedding space, with a bounded number of rows per model pass."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from captum.attr._utils.approximation_methods import SUPPORTED_METHODS, approximation_parameters
from torch import nn

from sgt_nlp.explainers.base import Explainer
from sgt_nlp.explainers.gradient import check_aggregation
from sgt_nlp.saliency import embedding_forward_kwargs, word_embedding_layer

BASELINES: tuple[str, ...] = ("zero", "mask_token", "pad_token")
IG_AGGREGATIONS: tuple[str, ...] = ("sum", "abs_sum", "l2", "l1")


class IntegratedGradients(Explainer):
    """``(e - b) * integral_0^1 d f_target(b + a (e - b)) / d e da``, summed over embedding dims per token.

    Baseline ``b``: at every real position the ``zero`` vector, the ``mask_token`` or the ``pad_token``
    embedding; special tokens and padding keep their input embedding (so their attribution is exactly 0 and
    the path never leaves the model's input format). Position and token-type embeddings are not varied.
    The integral uses captum's rules (``gausslegendre`` or ``riemann_{left,right,middle,trapezoid}``) with
    ``n_steps`` points, so scores equal captum ``IntegratedGradients`` on the same embeddings and baseline.
    Unlike captum, ``internal_batch_size`` bounds the rows of every pass (examples x steps, longest first,
    trimmed to their real length), however many examples the batch holds.

    Per token, ``aggregation`` ``sum`` (signed, the default and the one completeness is about), ``abs_sum``,
    ``l2`` or ``l1`` of the per-dimension attributions. ``extras['delta']`` ``[B]`` is the completeness gap
    ``sum(attributions) - (f(x) - f(b))``; ``extras['baseline_output']`` is ``f(b)``.
    """

    name = "integrated_gradients"
    aggregations = IG_AGGREGATIONS
    default_aggregation = "sum"
    default_aggregations = ("sum", "abs_sum")
    signed_aggregations = frozenset({"sum"})
    has_convergence_delta = True
    multiplies_by_inputs = True
    run_settings = ("n_steps", "internal_batch_size")

    def __init__(
        self,
        model: nn.Module,
        target_output: str = "logit",
        *,
        baseline: str = "zero",
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = 64,
        aggregation: str = "sum",
        tokenizer: Any = None,
        special_ids: Iterable[int] | None = None,
        mask_token_id: int | None = None,
    ) -> None:
        super().__init__(model, target_output, tokenizer=tokenizer, special_ids=special_ids)
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline {baseline!r}; allowed: {', '.join(BASELINES)}")
        if method not in SUPPORTED_METHODS:
            raise ValueError(f"unknown method {method!r}; allowed: {', '.join(SUPPORTED_METHODS)}")
        if n_steps < 2:
            raise ValueError(f"n_steps must be at least 2, got {n_steps}")
        if internal_batch_size is not None and internal_batch_size < 1:
            raise ValueError(f"internal_batch_size must be positive or None, got {internal_batch_size}")
        self.baseline = baseline
        self.n_steps = int(n_steps)
        self.method = method
        self.internal_batch_size = internal_batch_size
        self.aggregation = check_aggregation(aggregation, IG_AGGREGATIONS)
        if mask_token_id is None:
            mask_token_id = getattr(tokenizer, "mask_token_id", None)
        self.mask_token_id = mask_token_id

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "baseline": self.baseline,
            "n_steps": self.n_steps,
            "method": self.method,
            "aggregation": self.aggregation,
        }

    def baseline_embeddings(self, inputs: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """The baseline ``[B, T, D]``: the chosen vector at real positions, the input embedding elsewhere."""
        embeddings = self._embeddings(inputs["input_ids"])
        if self.baseline == "zero":
            vector = torch.zeros_like(embeddings[0, 0])
        else:
            token_id = self.mask_token_id if self.baseline == "mask_token" else self.pad_token_id
            if token_id is None:
                raise ValueError(
                    f"baseline={self.baseline!r} needs its token id: pass tokenizer= or mask_token_id="
                )
            with torch.no_grad():  # through the layer: Gemma's embedding scales its rows
                ids = torch.tensor([token_id], device=embeddings.device)
                vector = word_embedding_layer(self.model)(ids)[0].to(embeddings.dtype)
        return torch.where(mask.unsqueeze(-1), vector, embeddings)

    def _attribute(
        self, inputs: dict[str, torch.Tensor], target: torch.Tensor | None, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        logits, target = self._predict(inputs, target)
        embeddings = self._embeddings(inputs["input_ids"])
        baselines = self.baseline_embeddings(inputs, mask)
        step_sizes_fn, alphas_fn = approximation_parameters(self.method)
        alphas = torch.tensor(alphas_fn(self.n_steps), dtype=embeddings.dtype, device=embeddings.device)
        step_sizes = torch.tensor(step_sizes_fn(self.n_steps), dtype=torch.float32)

        def make_rows(examples: torch.Tensor, samples: torch.Tensor, width: int) -> torch.Tensor:
            x, b = embeddings[examples, :width], baselines[examples, :width]
            return b + alphas[samples.to(alphas.device)].view(-1, 1, 1) * (x - b)

        total_grads = self._accumulate_gradients(
            inputs, target, self.n_steps, make_rows, step_sizes, self.internal_batch_size
        )
        attributions = total_grads * (embeddings.float() - baselines.float())
        with torch.no_grad():
            baseline_logits = self._forward(
                baselines, embedding_forward_kwargs(self.model, inputs), inputs["input_ids"]
            )
        baseline_output = self._target_values(baseline_logits, target)
        delta = attributions.sum(dim=(1, 2)) - (self._target_values(logits, target) - baseline_output)
        if self.aggregation == "sum":
            scores = attributions.sum(dim=-1)
        elif self.aggregation == "abs_sum":
            scores = attributions.sum(dim=-1).abs()
        elif self.aggregation == "l2":
            scores = attributions.norm(p=2, dim=-1)
        else:
            scores = attributions.abs().sum(dim=-1)
        return scores, logits, target, {"delta": delta, "baseline_output": baseline_output}
