"""Occlusion / leave-one-out: the drop of the target output when a token (or a word) is removed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from sgt_nlp.explainers.base import Explainer, row_lengths
from sgt_nlp.saliency import embedding_forward_kwargs

REMOVALS: tuple[str, ...] = ("delete", "mask_token", "pad_token", "zero")


class Occlusion(Explainer):
    """Score of a real word piece = ``f(x) - f(x without it)`` for the target output ``f``.

    ``removal``:
    - ``delete``: the piece is taken out and the row shrinks by one (a padding token is added on the side the
      row is padded on: the right, or the left for a left-padded row); positions of RoBERTa-style models are
      recomputed from the shortened ids, as the model would see the shorter text (ERASER's baselines delete).
    - ``mask_token`` / ``pad_token``: the piece's id is replaced by the mask / pad token id; every other
      position keeps its position id (no shift), attention stays on.
    - ``zero``: the piece's word embedding is replaced by the zero vector.
    ``mask_token`` equals captum ``Occlusion`` (window one token, baseline the mask embedding) on a forward
    over ``inputs_embeds``; with ``word_ids`` it equals captum ``FeatureAblation`` with one feature per word.

    With ``attribute(inputs, target, word_ids=...)`` (``[B, T]``, negative = no word) all real pieces of a
    word are removed together and each receives the word's score. All
    occluded variants of the batch go through the model ``internal_batch_size`` rows at a time, sorted by
    length and trimmed to their longest real row.
    """

    name = "occlusion"
    signed = True  # removing a piece can raise the target output: a negative score
    groups_by_words = True
    run_settings = ("removal",)

    def __init__(
        self,
        model: nn.Module,
        target_output: str = "logit",
        *,
        removal: str = "delete",
        internal_batch_size: int | None = 64,
        tokenizer: Any = None,
        special_ids: Iterable[int] | None = None,
        mask_token_id: int | None = None,
    ) -> None:
        super().__init__(model, target_output, tokenizer=tokenizer, special_ids=special_ids)
        if removal not in REMOVALS:
            raise ValueError(f"unknown removal {removal!r}; allowed: {', '.join(REMOVALS)}")
        if internal_batch_size is not None and internal_batch_size < 1:
            raise ValueError(f"internal_batch_size must be positive or None, got {internal_batch_size}")
        self.removal = removal
        self.internal_batch_size = internal_batch_size
        if mask_token_id is None:
            mask_token_id = getattr(tokenizer, "mask_token_id", None)
        self.mask_token_id = mask_token_id
        needed = {
            "mask_token": self.mask_token_id,
            "pad_token": self.pad_token_id,
            "delete": self.pad_token_id,
        }
        if removal in needed and needed[removal] is None:
            raise ValueError(f"removal={removal!r} needs its token id: pass tokenizer= (or mask_token_id=)")

    def params(self) -> dict[str, Any]:
        return {**super().params(), "removal": self.removal}

    @staticmethod
    def _groups(mask: torch.Tensor, word_ids: torch.Tensor | None) -> torch.Tensor:
        """``[B, T]`` group index per real position (−1 elsewhere), 0..G_i−1 in order of first appearance:
        one group per piece, or per word when ``word_ids`` are given."""
        if word_ids is None:
            groups = torch.cumsum(mask.long(), dim=1) - 1
            return groups.masked_fill(~mask, -1)
        groups = torch.full_like(word_ids, -1)
        for i in range(mask.shape[0]):
            valid = mask[i] & word_ids[i].ge(0)
            seen: dict[int, int] = {}
            for t in valid.nonzero().squeeze(-1).tolist():
                groups[i, t] = seen.setdefault(int(word_ids[i, t]), len(seen))
        return groups

    def _attribute(
        self, inputs: dict[str, torch.Tensor], target: torch.Tensor | None, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        logits, target = self._predict(inputs, target)
        full = self._target_values(logits, target)
        groups = self._groups(mask, inputs.get("word_ids"))
        counts = (groups.amax(dim=1) + 1).cpu()
        lengths = row_lengths(inputs).cpu()
        order = torch.argsort(lengths, descending=True, stable=True)
        examples = order.repeat_interleave(counts[order])
        members = (
            torch.cat([torch.arange(int(counts[i])) for i in order.tolist()]) if len(examples) else examples
        )
        drops = torch.zeros(len(examples), device=full.device)
        step = max(1, len(examples) if self.internal_batch_size is None else self.internal_batch_size)
        with torch.no_grad():
            for start in range(0, len(examples), step):
                ex = examples[start : start + step].to(mask.device)
                occluded = groups[ex] == members[start : start + step].to(mask.device).view(-1, 1)
                values = self._target_values(self._occluded_logits(inputs, ex, occluded), target[ex])
                drops[start : start + step] = full[ex] - values
        scores = torch.zeros(mask.shape, device=full.device)
        rows = groups[examples.to(mask.device)] == members.to(mask.device).view(-1, 1)
        scores.index_add_(0, examples.to(mask.device), rows.float() * drops.view(-1, 1))
        return scores, logits, target, {}

    def _occluded_logits(
        self, inputs: dict[str, torch.Tensor], ex: torch.Tensor, occluded: torch.Tensor
    ) -> torch.Tensor:
        """Logits of rows ``inputs[ex]`` with the ``occluded`` positions removed, trimmed at the right."""
        rows = {k: v[ex] for k, v in inputs.items() if k not in ("special_tokens_mask", "word_ids")}
        if self.removal == "delete":
            rows = self._delete(rows, occluded)
            kwargs = embedding_forward_kwargs(self.model, rows)
            embeddings = self._embeddings(rows["input_ids"])
        else:
            kwargs = {k: v[ex] for k, v in embedding_forward_kwargs(self.model, inputs).items()}
            ids = rows["input_ids"]
            if self.removal in ("mask_token", "pad_token"):
                token = self.mask_token_id if self.removal == "mask_token" else self.pad_token_id
                assert token is not None  # __init__ refused a removal without its token id
                ids = ids.masked_fill(occluded, int(token))
            embeddings = self._embeddings(ids)
            if self.removal == "zero":
                embeddings = embeddings.masked_fill(occluded.unsqueeze(-1), 0.0)
        width = int(row_lengths(rows).max())
        kwargs = {k: v[:, :width] for k, v in kwargs.items()}
        return self._forward(embeddings[:, :width], kwargs, rows["input_ids"][:, :width])

    def _delete(self, rows: dict[str, torch.Tensor], occluded: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows with the occluded columns dropped and as many padding columns added on the padded side."""
        attention = rows.get("attention_mask")
        left = attention[:, 0].eq(0) if attention is not None else torch.zeros_like(occluded[:, 0])
        # Stable sort moves removed columns to the end (right-padded rows) or the front (left-padded rows).
        key = torch.where(left.view(-1, 1), (~occluded).long(), occluded.long())
        order = torch.argsort(key, dim=1, stable=True)
        removed = torch.gather(occluded, 1, order)
        out: dict[str, torch.Tensor] = {}
        for name, value in rows.items():
            if name == "position_ids":
                continue  # recomputed from the shortened ids, as for the shorter text
            fill = int(self.pad_token_id) if name == "input_ids" else 0  # type: ignore[arg-type]
            out[name] = torch.gather(value, 1, order).masked_fill(removed, fill)
        if attention is None:
            out["attention_mask"] = (~removed).long()
        return out
