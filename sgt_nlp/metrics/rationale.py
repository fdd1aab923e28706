"""Plausibility: agreement of predicted rationales with human ones, as the ERASER scorer
(``rationale_benchmark/metrics.py`` of DeYoung et al., 2020) defines it: IOU F1, token P/R/F1 and AUPRC.

Rationales are keyed by ``(annotation_id, docid)``; spans are ``(start_token, end_token)`` with the end
exclusive. Span collections are treated as sets, so duplicates collapse as in the scorer.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

Span = tuple[int, int]
#: keys: any hashable (``Any``, since a ``Mapping``'s key type is invariant)
SpanMap = Mapping[Any, Iterable[Span]]


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _prf(precision: float, recall: float) -> dict[str, float]:
    return {"p": float(precision), "r": float(recall), "f1": float(_f1(precision, recall))}


def _as_sets(spans: SpanMap) -> dict[Hashable, set[Span]]:
    sets = {key: {(int(s), int(e)) for s, e in value} for key, value in spans.items()}
    return {key: value for key, value in sets.items() if value}


def round_half_up(value: float) -> int:
    """``floor(value + 0.5)``: Python's ``round`` rounds halves to even, which would make k depend on
    parity."""
    return int(np.floor(value + 0.5 + 1e-9))


def mask_to_spans(mask: Sequence[bool] | np.ndarray) -> list[Span]:
    """Maximal runs of True as ``(start, end)`` spans.

    >>> mask_to_spans([0, 1, 1, 0, 1])
    [(1, 3), (4, 5)]
    """
    values = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(values[1:] != values[:-1])
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def spans_to_mask(spans: Iterable[Span], length: int) -> np.ndarray:
    """Boolean mask of ``length`` tokens covered by ``spans``."""
    mask = np.zeros(length, dtype=bool)
    for start, end in spans:
        mask[start:end] = True
    return mask


def hard_rationale_from_scores(scores: Sequence[float] | np.ndarray, fraction: float) -> list[Span]:
    """Top-k tokens, ``k = round_half_up(fraction * n)``, merged into contiguous non-overlapping spans.

    Ties go to the earlier token. Soft-score explainers get hard rationales this way, so that IOU and token F1
    (defined on spans) apply to them too.

    >>> hard_rationale_from_scores([0.9, 0.8, 0.1, 0.7, 0.2], 0.6)  # k = 3: tokens 0, 1, 3
    [(0, 2), (3, 4)]
    """
    values = np.asarray(scores, dtype=float).reshape(-1)
    k = min(values.size, round_half_up(fraction * values.size))
    chosen = np.zeros(values.size, dtype=bool)
    chosen[np.argsort(-values, kind="stable")[:k]] = True
    return mask_to_spans(chosen)


def rationale_prf(gold: SpanMap, predicted: SpanMap) -> dict[str, dict[str, float]]:
    """Exact span match. ``instance_micro``: P, R over the pooled span sets. ``instance_macro``: per key
    (union of gold and predicted keys) P and R (0 when that side is empty); P, R and F1 are the means of the
    per-key values.
    """
    gold_sets, pred_sets = _as_sets(gold), _as_sets(predicted)
    truth = {(key, span) for key, spans in gold_sets.items() for span in spans}
    pred = {(key, span) for key, spans in pred_sets.items() for span in spans}
    hits = len(truth & pred)
    micro_p = hits / len(pred) if pred else 0.0
    micro_r = hits / len(truth) if truth else 0.0
    per_key = []
    for key in set(gold_sets) | set(pred_sets):
        g, p = gold_sets.get(key, set()), pred_sets.get(key, set())
        precision = len(g & p) / len(p) if p else 0.0
        recall = len(g & p) / len(g) if g else 0.0
        per_key.append((precision, recall, _f1(precision, recall)))
    if per_key:
        # keys come from a set, whose order follows string hashing (PYTHONHASHSEED): an exactly rounded sum
        # (fsum) makes the mean independent of that order, so scores.json is the same in every run
        means = [math.fsum(column) / len(per_key) for column in zip(*per_key, strict=True)]
        macro_scores = {"p": means[0], "r": means[1], "f1": means[2]}
    else:
        macro_scores = {"p": 0.0, "r": 0.0, "f1": 0.0}
    return {"instance_micro": _prf(micro_p, micro_r), "instance_macro": macro_scores}


def to_token_spans(spans: SpanMap) -> dict[Hashable, set[Span]]:
    """Every span split into one-token spans (the scorer's ``to_token_level``)."""
    return {
        key: {(t, t + 1) for s, e in value for t in range(int(s), int(e))} for key, value in spans.items()
    }


def token_prf(gold: SpanMap, predicted: SpanMap) -> dict[str, dict[str, float]]:
    """:func:`rationale_prf` on one-token spans: token precision/recall/F1, ``instance_micro`` and
    ``instance_macro``."""
    return rationale_prf(to_token_spans(gold), to_token_spans(predicted))


def iou_f1(gold: SpanMap, predicted: SpanMap, thresholds: Sequence[float] = (0.5,)) -> list[dict]:
    """Partial span match (DeYoung et al.): a predicted span is a hit when its best IoU with a gold span of
    the same key is ≥ the threshold (several predicted spans may hit the same gold span).

    Micro: P = hits / #predicted, R = hits / #gold. Macro: P averaged over keys with predictions, R over keys
    with gold, and F1 = F1(macro P, macro R) (not a mean of per-key F1s). One entry per threshold:
    ``{"threshold", "micro": {p, r, f1}, "macro": {p, r, f1}}``.
    """
    gold_sets, pred_sets = _as_sets(gold), _as_sets(predicted)
    best_ious: dict[Hashable, list[float]] = {}
    for key, spans in pred_sets.items():
        gold_tokens = [set(range(s, e)) for s, e in gold_sets.get(key, ())]
        ious = []
        for s, e in spans:
            tokens = set(range(s, e))
            ious.append(max((len(tokens & g) / len(tokens | g) for g in gold_tokens), default=0.0))
        best_ious[key] = ious
    n_gold = {key: len(spans) for key, spans in gold_sets.items()}
    n_pred = {key: len(spans) for key, spans in pred_sets.items()}
    results = []
    for threshold in thresholds:
        hits = {key: sum(iou >= threshold for iou in ious) for key, ious in best_ious.items()}
        total_hits = sum(hits.values())
        micro_p = total_hits / sum(n_pred.values()) if n_pred else 0.0
        micro_r = total_hits / sum(n_gold.values()) if n_gold else 0.0
        macro_p = float(np.mean([hits.get(k, 0) / n for k, n in n_pred.items()])) if n_pred else 0.0
        macro_r = float(np.mean([hits.get(k, 0) / n for k, n in n_gold.items()])) if n_gold else 0.0
        results.append(
            {"threshold": float(threshold), "micro": _prf(micro_p, micro_r), "macro": _prf(macro_p, macro_r)}
        )
    return results


def soft_token_metrics(
    gold_masks: Mapping[Any, Sequence[bool] | np.ndarray],
    scores: Mapping[Any, Sequence[float] | np.ndarray],
) -> dict[str, float]:
    """Per key present in ``scores``: AUPRC = ``auc(recall, precision)`` of sklearn's precision-recall curve,
    averaged over all keys; average precision and ROC-AUC averaged over keys whose gold has both classes.

    A key whose gold is all False gets sklearn's AUPRC for that case (0.5 in sklearn ≥ 1.x, with its warning
    silenced); emitting only documents that carry evidence avoids it.
    """
    auprcs, aps, rocs = [], [], []
    for key, key_scores in scores.items():
        if key not in gold_masks:
            raise KeyError(f"no gold rationale mask for {key!r}")
        truth = np.asarray(gold_masks[key], dtype=int).reshape(-1)
        values = np.asarray(key_scores, dtype=float).reshape(-1)
        if truth.shape != values.shape:
            raise ValueError(f"{key!r}: {values.size} scores for {truth.size} tokens")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            precision, recall, _ = precision_recall_curve(truth, values)
        auprcs.append(auc(recall, precision))
        if 0 < truth.sum() < truth.size:
            aps.append(average_precision_score(truth, values))
            rocs.append(roc_auc_score(truth, values))
    return {
        "auprc": float(np.mean(auprcs)) if auprcs else 0.0,
        "average_precision": float(np.mean(aps)) if aps else 0.0,
        "roc_auc_score": float(np.mean(rocs)) if rocs else 0.0,
    }
