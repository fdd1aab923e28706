"""Whitespace words ↔ word pieces: ERASER scores words, models see pieces.

:func:`align_words` encodes word lists (optionally paired with query words) with ``is_split_into_words=True``,
keeps the piece → document-word map from ``word_ids()`` and counts what truncation cut off.

Truncation (:func:`select_kept_words`, shared by training, evaluation, ``explain`` and ``sanity``) picks which
document words fit in ``budget = max_length - special tokens - query pieces`` (the query is never cut):
``head`` keeps the first pieces (the tokenizer's own cut, so the word at the cut may keep only its first
pieces: the behaviour every earlier run had), ``tail`` the last whole words, ``head_tail`` the first whole
words within ``round(budget / 4)`` pieces and the last whole words within the rest (Sun et al., 2019, "How to
fine-tune BERT for text classification": 128 + 382 of 510). ``tail`` and ``head_tail`` cut at word boundaries,
so a kept word is always whole; a dropped word is treated like a word beyond ``max_length`` (unseen).
:meth:`WordAlignment.aggregate` turns piece scores ``[B, T]`` into word scores ``[B, W]`` with ``first`` (the
ERASER baselines' choice: the first piece stands for the word), ``sum``, ``max`` or ``mean``. Works for any
fast tokenizer (WordPiece, byte-level BPE with ``add_prefix_space=True``, SentencePiece).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

WordAggregation = Literal["first", "sum", "max", "mean"]
WORD_AGGREGATIONS: tuple[str, ...] = ("first", "sum", "max", "mean")
TRUNCATIONS: tuple[str, ...] = ("head", "tail", "head_tail")
# head_tail's share of the budget for the head: Sun et al. (2019) keep the first 128 of 510 pieces.
HEAD_TAIL_HEAD_SHARE = 0.25


@dataclass(frozen=True)
class TruncationReport:
    """How much of the documents (and of their human rationales) the truncation dropped (words the model
    does not see: beyond ``max_length`` under ``head``, before the kept tail or between head and tail
    otherwise)."""

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
            f"({self.rationale_fraction_truncated:.1%}) cut by the max_length truncation"
        )


@dataclass
class WordAlignment:
    """An encoded batch plus the piece → word map of its first (document) sequence.

    ``word_index[b, t]`` is the index in ``words[b]`` of piece ``t``, or -1 for special tokens, padding and
    query pieces. ``kept_words[b]`` are the indices (ascending) of the words the model sees,
    ``words_kept[b]`` their number; under ``head`` truncation they are the prefix
    ``words[b][:words_kept[b]]``.
    """

    encoding: dict[str, torch.Tensor]
    word_index: torch.Tensor
    num_words: list[int]
    words_kept: list[int]
    truncation: TruncationReport
    kept_words: list[list[int]]

    @property
    def max_words(self) -> int:
        return max(self.num_words, default=0)

    def word_mask(self) -> torch.Tensor:
        """Boolean ``[B, W]``: True for the words the model sees (kept by the truncation)."""
        mask = torch.zeros(len(self.num_words), self.max_words, dtype=torch.bool)
        for b, kept in enumerate(self.kept_words):
            mask[b, kept] = True
        return mask

    def first_piece_mask(self) -> torch.Tensor:
        """Boolean ``[B, T]``: True on the first piece of each document word."""
        index = self.word_index
        previous = torch.cat([torch.full_like(index[:, :1], -1), index[:, :-1]], dim=1)
        return (index >= 0) & (index != previous)

    def aggregate(
        self, piece_scores: torch.Tensor, how: str = "first", fill_value: float = 0.0
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
        self, piece_scores: torch.Tensor, how: str = "first", fill_value: float = 0.0
    ) -> list[np.ndarray]:
        """Like :meth:`aggregate`, as one float array per example of exactly ``num_words[b]`` entries."""
        words = self.aggregate(piece_scores.detach(), how=how, fill_value=fill_value).cpu().numpy()
        return [words[b, :n].astype(float) for b, n in enumerate(self.num_words)]


def select_kept_words(piece_counts: Sequence[int], budget: int, mode: str = "head") -> list[int]:
    """Indices (ascending) of the words kept when a document of ``piece_counts[i]`` pieces per word must fit
    in ``budget`` pieces. A document that fits is kept whole in every mode.

    - ``head``: every word whose first piece lies within the budget (the tokenizer cuts the pieces of the last
      one), as plain ``truncation=True`` does.
    - ``tail``: the longest run of whole words at the end that fits.
    - ``head_tail``: the longest run of whole words at the start within ``round(budget / 4)`` pieces, then the
      longest run at the end within what the head left.

    Words without pieces cost nothing: they are kept when they sit inside a kept run (and, under ``head``, at
    the end of a document whose cut words all lack pieces: nothing was cut then).
    """
    if mode not in TRUNCATIONS:
        raise ValueError(f"truncation={mode!r} is not one of: {', '.join(TRUNCATIONS)}")
    counts = [int(c) for c in piece_counts]
    if any(c < 0 for c in counts):
        raise ValueError(f"piece counts must be >= 0, got {counts}")
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if sum(counts) <= budget:
        return list(range(len(counts)))
    if mode == "head":
        starts = np.cumsum([0, *counts[:-1]])  # the first piece of word i
        kept = [i for i in range(len(counts)) if starts[i] < budget]
        return list(range(len(counts))) if sum(counts[len(kept) :]) == 0 else kept
    head: list[int] = []
    if mode == "head_tail":
        head = _longest_run(counts, range(len(counts)), int(round(budget * HEAD_TAIL_HEAD_SHARE)))
    used = sum(counts[i] for i in head)
    start = head[-1] + 1 if head else 0
    tail = _longest_run(counts, range(len(counts) - 1, start - 1, -1), budget - used)
    return head + tail[::-1]


def _longest_run(counts: Sequence[int], order: Sequence[int], budget: int) -> list[int]:
    """The words of ``order`` taken one by one while their pieces fit in ``budget`` (whole words only)."""
    taken, used = [], 0
    for i in order:
        if used + counts[i] > budget:
            break
        taken.append(i)
        used += counts[i]
    return taken


def piece_counts(tokenizer, words: Sequence[Sequence[str]]) -> list[list[int]]:
    """Pieces per word of each word list, without special tokens (each word is tokenized on its own with
    ``is_split_into_words``, so its count does not depend on its neighbours)."""
    word_lists = [list(w) for w in words]
    if not word_lists:
        return []
    # whole documents on purpose (to choose the kept words): verbose=False silences the tokenizer's "longer
    # than the maximum sequence length ... indexing errors" warning, which is about inputs given to the model
    encoded = tokenizer(word_lists, is_split_into_words=True, add_special_tokens=False, verbose=False)
    counts = []
    for b, w in enumerate(word_lists):
        row = [0] * len(w)
        for word_id in encoded.word_ids(b):
            if word_id is not None:
                row[word_id] += 1
        counts.append(row)
    return counts


def encode_words(
    tokenizer,
    words: Sequence[Sequence[str]],
    query_words: Sequence[Sequence[str]] | None = None,
    max_length: int = 512,
    truncation: str = "head",
    **tokenizer_kwargs,
):
    """``(encoding, kept_words)``: the documents' kept words (see :func:`select_kept_words`), paired with the
    whole query when any is given, encoded with ``is_split_into_words=True``.

    ``kept_words[b]`` are indices into ``words[b]``; ``encoding.word_ids(b)`` index into the kept list. The
    tokenizer's ``only_first`` truncation at ``max_length`` stays on: it is what cuts the last ``head`` word
    and is a no-op for ``tail``/``head_tail``. Encoding the kept words again keeps them all (the same input),
    which is what lets evaluation perturb the seen words and re-encode them under the same mode.
    ``tokenizer_kwargs`` (padding, return_tensors, ...) go to the tokenizer.
    """
    word_lists = [list(w) for w in words]
    pair = [list(q) for q in query_words] if query_words is not None else None
    if pair is not None and len(pair) != len(word_lists):
        raise ValueError(f"{len(word_lists)} word lists but {len(pair)} query word lists")
    has_pair = pair is not None and any(pair)
    special = tokenizer.num_special_tokens_to_add(pair=has_pair)
    query_pieces = (
        [sum(c) for c in piece_counts(tokenizer, pair)]
        if has_pair and pair is not None
        else [0] * len(word_lists)
    )
    kept = []
    for b, counts in enumerate(piece_counts(tokenizer, word_lists)):
        budget = max_length - special - query_pieces[b]
        if budget < 1 and sum(counts) > max(budget, 0):
            raise ValueError(
                f"max_length={max_length} leaves no room for document words after the query and special "
                f"tokens (example {b}: {special} special and {query_pieces[b]} query pieces)"
            )
        kept.append(select_kept_words(counts, max(budget, 0), truncation))
    kept_lists = [[w[i] for i in k] for w, k in zip(word_lists, kept, strict=True)]
    encoding = tokenizer(
        kept_lists,
        pair if has_pair else None,
        is_split_into_words=True,
        truncation="only_first" if has_pair else True,
        max_length=max_length,
        **tokenizer_kwargs,
    )
    return encoding, kept


def align_words(
    tokenizer,
    words: Sequence[Sequence[str]],
    query_words: Sequence[Sequence[str]] | None = None,
    max_length: int = 512,
    rationale_masks: Sequence[Sequence[int]] | None = None,
    padding: bool | str = True,
    truncation: str = "head",
) -> WordAlignment:
    """Encode ``words`` (and the ``query_words`` pair, never cut) and map pieces to words.

    ``truncation`` chooses the kept words (:func:`select_kept_words`). ``rationale_masks`` (one 0/1 per word)
    only feed the truncation report. Requires a fast tokenizer, and for byte-level BPE
    ``add_prefix_space=True`` (which ``is_split_into_words`` needs).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("align_words needs a fast tokenizer (word_ids() comes from the Rust tokenizers)")
    word_lists = [list(w) for w in words]
    if rationale_masks is not None:
        if len(rationale_masks) != len(word_lists):
            raise ValueError(f"{len(word_lists)} word lists but {len(rationale_masks)} rationale masks")
        for b, (w, m) in enumerate(zip(word_lists, rationale_masks, strict=True)):
            if len(m) != len(w):
                raise ValueError(f"example {b}: {len(w)} words but a rationale mask of {len(m)}")
    encoding, kept_words = encode_words(
        tokenizer, word_lists, query_words, max_length, truncation, padding=padding, return_tensors="pt"
    )
    rows = []
    for b, kept in enumerate(kept_words):
        word_ids, sequence_ids = encoding.word_ids(b), encoding.sequence_ids(b)
        rows.append(
            [
                kept[w] if (w is not None and s == 0) else -1
                for w, s in zip(word_ids, sequence_ids, strict=True)
            ]
        )
    word_index = torch.tensor(rows, dtype=torch.long).reshape(len(word_lists), -1)
    num_words = [len(w) for w in word_lists]
    words_kept, without_pieces, rationale_total, rationale_cut = [], 0, 0, 0
    for b, kept in enumerate(kept_words):
        present = set(word_index[b][word_index[b] >= 0].tolist())
        words_kept.append(len(kept))
        without_pieces += sum(1 for i in kept if i not in present)
        if rationale_masks is not None:
            mask = np.asarray(rationale_masks[b], dtype=bool)
            rationale_total += int(mask.sum())
            rationale_cut += int(mask.sum() - mask[kept].sum())
    report = TruncationReport(
        examples=len(word_lists),
        examples_truncated=sum(k < n for k, n in zip(words_kept, num_words, strict=True)),
        words=sum(num_words),
        words_truncated=sum(n - k for k, n in zip(words_kept, num_words, strict=True)),
        rationale_words=rationale_total,
        rationale_words_truncated=rationale_cut,
        words_without_pieces=without_pieces,
    )
    return WordAlignment(dict(encoding), word_index, num_words, words_kept, report, kept_words)
