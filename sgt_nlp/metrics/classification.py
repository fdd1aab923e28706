"""Task performance, as the ERASER scorer reports it (accuracy and sklearn's classification report)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, f1_score


def accuracy(gold: Sequence, predicted: Sequence) -> float:
    """Fraction of exact label matches.

    >>> accuracy(["POS", "NEG", "POS"], ["POS", "POS", "POS"])
    0.666...
    """
    return float(accuracy_score(list(gold), list(predicted))) if len(gold) else 0.0


def macro_f1(gold: Sequence, predicted: Sequence, labels: Sequence | None = None) -> float:
    """Unweighted mean of per-label F1 (ERASER's "Perf." for most datasets); absent labels score 0.

    >>> macro_f1(["POS", "NEG", "POS"], ["POS", "POS", "POS"], labels=["NEG", "POS"])  # (0 + 0.8) / 2
    0.4
    """
    if not len(gold):
        return 0.0
    labels = list(labels) if labels is not None else sorted(set(gold) | set(predicted))
    return float(f1_score(list(gold), list(predicted), labels=labels, average="macro", zero_division=0))


def classification_prf(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    """sklearn ``classification_report(output_dict=True)`` keyed by label strings (the scorer's ``prf``)."""
    return classification_report(
        np.asarray(list(gold), dtype=object),
        np.asarray(list(predicted), dtype=object),
        labels=list(labels),
        output_dict=True,
        zero_division=0,
    )
