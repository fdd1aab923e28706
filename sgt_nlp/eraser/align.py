"""Whitespace words ↔ word pieces: ERASER scores words, models see pieces.

:func:`align_words` encodes word lists (optionally paired with query words) with ``is_split_into_words=True``,
keeps the piece → document-word map from ``word_ids()`` and counts what truncation cut off.
:meth:`WordAlignment.aggregate` turns piece scores ``[B, T]`` into word scores ``[B, W]`` with ``first`` (the
ERASER baselines' choice: the first piece stands for the word), ``sum``, ``max`` or ``mean``. Works for any fast
tokenizer (WordPiece, byte-level BPE with ``add_prefix_space=True``, SentencePiece).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

WordAggregation = Literal["first", "sum", "max", "mean"]
WORD_AGGREGATIONS: tuple[str, ...] = ("first", "sum", "max", "mean")


@dataclass(frozen=True)
class TruncationReport:
    """How much of the documents (and of their human rationales) fell beyond ``max_length``."""

    examples: int
    examples_truncated: int
    words: int
    words_truncated: int
    rationale_words: int
    rationale_words_truncated: int
    words_without_pieces: int

    @property
    def word_fraction_truncated(self) -> float:
        return self.words_truncated / self.words if self.words else 0.0

    @property
    def rationale_fraction_truncated(self) -> float:
        return self.rationale_words_truncated / self.rationale_words if self.rationale_words else 0.0

    def summary(self) -> str:
        return (
            f"{self.examples_truncated}/{self.examples} examples truncated; "
            f"{self.words_truncated}/{self.words} words ({self.word_fraction_truncated:.1%}) and "
            f"{self.rationale_words_truncated}/{self.rationale_words} human-rationale words "
            f"({self.rationale_fraction_truncated:.1%}) beyond max_length"
        )


@dataclass
class WordAlignment:
    """An encoded batch plus the piece → word map of its first (document) sequence.

    ``word_index[b, t]`` is the index in ``words[b]`` of piece ``t``, or -1 for special tokens, padding and query
    pieces. ``words_kept[b]`` words (a prefix of ``words[b]``) have at least their first piece in the input.
    """

    encoding: dict[str, torch.Tensor]
    word_index: torch.Tensor
    num_words: list[int]
    words_kept: list[int]
    truncation: TruncationReport

    @property
    def max_words(self) -> int:
        return max(self.num_words, default=0)

    def word_mask(self) -> torch.Tensor:
        """Boolean ``[B, W]``: True for words that are within the example and within ``max_length``."""
        positions = torch.arange(self.max_words)
        return positions[None, :] < torch.tensor(self.words_kept)[:, None]

    def first_piece_mask(self) -> torch.Tensor:
        """Boolean ``[B, T]``: True on the first piece of each document word."""
        index = self.word_index
        previous = torch.cat([torch.full_like(index[:, :1], -1), index[:, :-1]], dim=1)
        return (index >= 0) & (index != previous)

    def aggregate(
        self, piece_scores: torch.Tensor, how: WordAggregation = "first", fill_value: float = 0.0
    ) -> torch.Tensor:
        """Word scores ``[B, W]`` (``W`` = most words in the batch) from piece scores ``[B, T]``.

        Words beyond the truncation point, words without pieces and padding words get ``fill_value``.
        Differentiable in ``piece_scores``.
        """
        if piece_scores.shape != self.word_index.shape:
            raise ValueError(
                f"piece_scores shape {tuple(piece_scores.shape)} != {tuple(self.word_index.shape)}"
            )
        if how not in WORD_AGGREGATIONS:
            raise ValueError(f"unknown aggregation {how!r}; choose from {WORD_AGGREGATIONS}")
        batch, width = piece_scores.shape[0], self.max_words
        selected = self.first_piece_mask() if how == "first" else self.word_index >= 0
        # route every unselected piece to a dump column ``width`` that is dropped at the end
        target = torch.where(selected, self.word_index, torch.full_like(self.word_index, width))
        scores = piece_scores.to(torch.float32) if not piece_scores.is_floating_point() else piece_scores
        base = torch.zeros(batch, width + 1, dtype=scores.dtype, device=scores.device)
        target = target.to(scores.device)
        counts = torch.zeros_like(base).scatter_add(1, target, selected.to(scores.device, scores.dtype))
        if how == "max":
            base = torch.full_like(base, float("-inf"))
            words = base.scatter_reduce(1, target, scores, reduce="amax", include_self=True)
        else:
            words = base.scatter_add(1, target, scores)
            if how == "mean":
                words = words / counts.clamp(min=1)
        has_piece = counts[:, :width] > 0
        return torch.where(has_piece, words[:, :width], torch.full_like(words[:, :width], fill_value))

    def aggregate_to_lists(
        self, piece_scores: torch.Tensor, how: WordAggregation = "first", fill_value: float = 0.0
    ) -> list[np.ndarray]:
        """Like :meth:`aggregate`, as one float array per example of exactly ``num_words[b]`` entries."""
        words = self.aggregate(piece_scores.detach(), how=how, fill_value=fill_value).cpu().numpy()
        return [words[b, :n].astype(float) for b, n in enumerate(self.num_words)]


def align_words(
    tokenizer,
    words: Sequence[Sequence[str]],
    query_words: Sequence[Sequence[str]] | None = None,
    max_length: int = 512,
    rationale_masks: Sequence[Sequence[int]] | None = None,
    padding: bool | str = True,
) -> WordAlignment:
    """Encode ``words`` (and the ``query_words`` pair, truncated last: ``only_first``) and map pieces to words.

    ``rationale_masks`` (one 0/1 per word) only feed the truncation report. Requires a fast tokenizer, and for
    byte-level BPE ``add_prefix_space=True`` (which ``is_split_into_words`` needs).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("align_words needs a fast tokenizer (word_ids() comes from the Rust tokenizers)")
    word_lists = [list(w) for w in words]
    pair = [list(q) for q in query_words] if query_words is not None else None
    if pair is not None and len(pair) != len(word_lists):
        raise ValueError(f"{len(word_lists)} word lists but {len(pair)} query word lists")
    if rationale_masks is not None:
        if len(rationale_masks) != len(word_lists):
            raise ValueError(f"{len(word_lists)} word lists but {len(rationale_masks)} rationale masks")
        for b, (w, m) in enumerate(zip(word_lists, rationale_masks, strict=True)):
            if len(m) != len(w):
                raise ValueError(f"example {b}: {len(w)} words but a rationale mask of {len(m)}")
    has_pair = pair is not None and any(pair)
    try:
        encoding = tokenizer(
            word_lists,
            pair if has_pair else None,
            is_split_into_words=True,
            truncation="only_first" if has_pair else True,
            max_length=max_length,
            padding=padding,
            return_tensors="pt",
        )
    except Exception as exc:  # the Rust tokenizer raises a bare Exception when the query alone is too long
        if has_pair and "truncat" in str(exc).lower():
            raise ValueError(
                f"max_length={max_length} leaves no room for document words after the query and special tokens"
            ) from exc
        raise
    rows = []
    for b in range(len(word_lists)):
        word_ids, sequence_ids = encoding.word_ids(b), encoding.sequence_ids(b)
        rows.append(
            [w if (w is not None and s == 0) else -1 for w, s in zip(word_ids, sequence_ids, strict=True)]
        )
    word_index = torch.tensor(rows, dtype=torch.long).reshape(len(word_lists), -1)
    num_words = [len(w) for w in word_lists]
    words_kept, without_pieces, rationale_total, rationale_cut = [], 0, 0, 0
    for b, n in enumerate(num_words):
        present = set(word_index[b][word_index[b] >= 0].tolist())
        kept = max(present) + 1 if present else 0
        if kept < n and present and not _pieces_follow(tokenizer, word_lists[b][kept:]):
            kept = n  # the trailing words produce no pieces at all: nothing was truncated
        words_kept.append(kept)
        without_pieces += sum(1 for i in range(kept) if i not in present)
        if rationale_masks is not None:
            mask = np.asarray(rationale_masks[b], dtype=bool)
            rationale_total += int(mask.sum())
            rationale_cut += int(mask[kept:].sum())
    report = TruncationReport(
        examples=len(word_lists),
        examples_truncated=sum(k < n for k, n in zip(words_kept, num_words, strict=True)),
        words=sum(num_words),
        words_truncated=sum(n - k for k, n in zip(words_kept, num_words, strict=True)),
        rationale_words=rationale_total,
        rationale_words_truncated=rationale_cut,
        words_without_pieces=without_pieces,
    )
    return WordAlignment(dict(encoding), word_index, num_words, words_kept, report)


def _pieces_follow(tokenizer, trailing_words: Sequence[str]) -> bool:
    """Whether any of ``trailing_words`` yields a piece (else their absence is not truncation)."""
    encoded = tokenizer(list(trailing_words), is_split_into_words=True, add_special_tokens=False)
    return len(encoded["input_ids"]) > 0
