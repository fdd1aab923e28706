"""Which examples an evaluation runs and how they are read: label order, sampling, the default threshold,
the :class:`~sgt_nlp.evaluation.records.Example` records, and what truncation and missing rationales leave
out."""

from __future__ import annotations

import logging

from ..eraser import ERASERSplit
from ..sampling import seeded_subset
from ..validation import UsageError
from .records import Example, ExampleOutput

logger = logging.getLogger(__name__)


def choose_examples(total: int, limit: int | None, sample: str, seed: int) -> list[int]:
    """Which annotations to evaluate, in file order: the first ``limit``, or a seeded random ``limit``
    (:func:`sgt_nlp.sampling.seeded_subset`).

    ERASER files are often sorted by class (movies test: 100 NEG, then 99 POS), so a prefix can be one class.
    """
    if not limit or limit >= total:
        return list(range(total))
    if sample == "first":
        return list(range(limit))
    return seeded_subset(total, limit, seed)


def mean_rationale_fraction(split: ERASERSplit, chosen: list[int]) -> float:
    """The default threshold: the mean human-rationale fraction of the chosen examples that have a rationale.

    Examples without one (HateXplain's normal class, say) would pull the mean towards 0 and make every
    method's hard rationale too short for the examples that do have one; they are left out of the mean.
    """
    fractions = split.rationale_fractions()[chosen]
    with_rationale = fractions[fractions > 0]
    value = float(with_rationale.mean()) if len(with_rationale) else 0.0
    if not 0 < value < 1:
        raise UsageError(
            f"the mean human-rationale fraction of the evaluated examples is {value} "
            f"({len(with_rationale)} of "
            f"{len(fractions)} have a rationale); give --threshold explicitly (in (0, 1))"
        )
    return value


def rationale_coverage(split: ERASERSplit, chosen: list[int]) -> dict[str, int]:
    """How many evaluated examples have a human rationale: plausibility (token/IOU F1, AUPRC) covers only
    those, faithfulness covers all."""
    with_rationale = int((split.rationale_fractions()[chosen] > 0).sum())
    return {
        "examples": len(chosen),
        "with_rationale": with_rationale,
        "without_rationale": len(chosen) - with_rationale,
    }


def make_examples(split: ERASERSplit, chosen: list[int]) -> list[Example]:
    """The chosen annotations as :class:`Example` records, in the given order."""
    from ..eraser import to_hf_dataset

    rows = to_hf_dataset(split).select(chosen)
    return [
        Example(
            i,
            r["annotation_id"],
            list(r["words"]),
            list(r["query_words"]),
            list(r["rationale_mask"]),
            list(r["docids"]),
            list(r["doc_lengths"]),
            int(r["label"]),
        )
        for i, r in enumerate(rows)
    ]


def truncation_counts(examples: list[Example], outputs: list[ExampleOutput]) -> dict[str, int]:
    """What the truncation dropped: words (and human-rationale words) outside each example's kept words."""
    kept = [o.kept_words for o in outputs]
    pairs = list(zip(examples, kept, strict=True))
    return {
        "examples": len(examples),
        "examples_truncated": sum(len(k) < len(ex.words) for ex, k in pairs),
        "words": sum(len(ex.words) for ex in examples),
        "words_truncated": sum(len(ex.words) - len(k) for ex, k in pairs),
        "rationale_words": sum(sum(ex.rationale) for ex in examples),
        "rationale_words_truncated": sum(
            sum(ex.rationale) - sum(ex.rationale[i] for i in k) for ex, k in pairs
        ),
    }
