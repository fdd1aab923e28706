"""The Random baseline: uniform scores, seeded per example so that any batch gives the same numbers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from sgt_nlp.explainers.base import Explainer, content_seed


class Random(Explainer):
    """Scores ``~ U(0, 1)`` i.i.d. over an example's attended positions (specials then zeroed).

    The generator is keyed on ``seed`` and the example's attended token ids, so an example's scores do not
    depend on the batch it is in, its padding or padding side; report the mean over several seeds. The model
    still runs once, for the logits and the predicted target.
    """

    name = "random"
    run_settings = ("seed",)

    def __init__(
        self,
        model: nn.Module,
        target_output: str = "logit",
        *,
        seed: int = 0,
        tokenizer: Any = None,
        special_ids: Iterable[int] | None = None,
    ) -> None:
        super().__init__(model, target_output, tokenizer=tokenizer, special_ids=special_ids)
        self.seed = int(seed)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "seed": self.seed}

    def _attribute(
        self, inputs: dict[str, torch.Tensor], target: torch.Tensor | None, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        logits, target = self._predict(inputs, target)
        ids = inputs["input_ids"].cpu()
        attention = inputs.get("attention_mask")
        attended = torch.ones_like(ids, dtype=torch.bool) if attention is None else attention.bool().cpu()
        scores = torch.zeros(ids.shape)
        for i in range(ids.shape[0]):
            generator = torch.Generator().manual_seed(content_seed(self.seed, ids[i][attended[i]]))
            scores[i, attended[i]] = torch.rand(int(attended[i].sum()), generator=generator)
        return scores.to(mask.device), logits, target, {}
