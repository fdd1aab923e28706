"""Assemble a scores dict with the official ERASER scorer's key names and nesting (the JSON that
``rationale_benchmark/metrics.py --score_file`` writes) from results records.

The records are the lines of an ERASER results JSONL (dicts, e.g. from :func:`sgt_nlp.eraser.read_results`:
``annotation_id``, ``rationales``, ``classification``, ``classification_scores`` and the
comprehensiveness/sufficiency classification scores). Sections
appear only when the records carry their inputs, as in the scorer:
``iou_scores``/``rationale_prf``/``token_prf`` need hard predictions, ``token_soft_metrics`` soft ones,
``sentence_soft_metrics`` soft sentence ones, and ``classification_scores`` a classification. One extra
top-level key, ``evaluation_settings``, records how tokens were removed and at which threshold, because
numbers are not comparable across removal modes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sgt_nlp.eraser.records import Annotation, Document
from sgt_nlp.metrics.classification import accuracy, classification_prf
from sgt_nlp.metrics.faithfulness import (
    DEFAULT_AOPC_THRESHOLDS,
    aopc,
    comprehensiveness,
    entropy_difference,
    kl_from_full,
    sufficiency,
    tokens_to_flip_fraction,
)
from sgt_nlp.metrics.rationale import iou_f1, rationale_prf, soft_token_metrics, token_prf

SETTINGS_KEY = "evaluation_settings"


def gold_spans(annotations: Sequence[Annotation]) -> dict[tuple[str, str], set[tuple[int, int]]]:
    """Human spans per ``(annotation_id, docid)``, all evidence groups pooled (the scorer's truth set).

    Empty spans (``start == end``) are included as the official scorer includes them: they count in span-level
    recall (IOU and exact-match) and no prediction can match them; token-level metrics are unaffected.
    """
    spans: dict[tuple[str, str], set[tuple[int, int]]] = {}
    for ann in annotations:
        for ev in (*ann.all_evidences, *ann.empty_evidences):
            spans.setdefault((ann.annotation_id, ev.docid), set()).add((ev.start_token, ev.end_token))
    return spans


def _sentence_truth(annotation: Annotation, document: Document) -> np.ndarray:
    """Gold sentences ``[start_sentence, end_sentence)`` of each human span, as the scorer marks them; a span
    whose sentence indices are missing (-1) or out of range marks the sentences its tokens overlap instead."""
    n_sentences = len(document.sentences)
    truth = np.zeros(n_sentences, dtype=bool)
    starts = np.asarray([*document.sentence_starts, len(document)])
    for ev in annotation.all_evidences:
        if ev.docid != document.docid:
            continue
        if 0 <= ev.start_sentence < ev.end_sentence <= n_sentences:
            truth[ev.start_sentence : ev.end_sentence] = True
        else:
            overlapping = (starts[:-1] < ev.end_token) & (starts[1:] > ev.start_token)
            truth |= overlapping
    return truth


def score_records(
    records: Sequence[Mapping],
    annotations: Sequence[Annotation],
    documents: Mapping[str, Document],
    labels: Sequence[str],
    *,
    iou_thresholds: Sequence[float] = (0.5,),
    aopc_thresholds: Sequence[float] = DEFAULT_AOPC_THRESHOLDS,
    removal: str | None = None,
    threshold: float | None = None,
) -> dict:
    """The scores dict for ``records`` (one per annotation), with the scorer's keys plus
    ``evaluation_settings``.

    ``removal`` (``delete``, ``mask_token``, ``random_token``...) and ``threshold`` (the single-point
    comp/suff fraction) are written into ``evaluation_settings``; they are not used in the arithmetic.
    """
    by_id = {ann.annotation_id: ann for ann in annotations}
    unknown = [r["annotation_id"] for r in records if r["annotation_id"] not in by_id]
    if unknown:
        raise KeyError(f"records for unknown annotations, e.g. {unknown[:3]}")
    truth = gold_spans(annotations)
    scores: dict = {}
    rationale_entries = [
        (record["annotation_id"], entry) for record in records for entry in record.get("rationales") or []
    ]
    if any("hard_rationale_predictions" in entry for _, entry in rationale_entries):
        predicted: dict[tuple[str, str], set[tuple[int, int]]] = {}
        for ann_id, entry in rationale_entries:
            for span in entry.get("hard_rationale_predictions") or []:
                predicted.setdefault((ann_id, entry["docid"]), set()).add(
                    (span["start_token"], span["end_token"])
                )
        scores["iou_scores"] = iou_f1(truth, predicted, iou_thresholds)
        scores["rationale_prf"] = rationale_prf(truth, predicted)
        scores["token_prf"] = token_prf(truth, predicted)
    if any("soft_rationale_predictions" in entry for _, entry in rationale_entries):
        masks, soft = {}, {}
        for ann_id, entry in rationale_entries:
            if "soft_rationale_predictions" in entry:
                key = (ann_id, entry["docid"])
                masks[key] = by_id[ann_id].rationale_mask(documents[entry["docid"]])
                soft[key] = entry["soft_rationale_predictions"]
        scores["token_soft_metrics"] = soft_token_metrics(masks, soft)
    if any("soft_sentence_predictions" in entry for _, entry in rationale_entries):
        masks, soft = {}, {}
        for ann_id, entry in rationale_entries:
            if "soft_sentence_predictions" in entry:
                key = (ann_id, entry["docid"])
                masks[key] = _sentence_truth(by_id[ann_id], documents[entry["docid"]])
                soft[key] = entry["soft_sentence_predictions"]
        scores["sentence_soft_metrics"] = soft_token_metrics(masks, soft)
    classified = [r for r in records if r.get("classification") is not None]
    if classified:
        scores["classification_scores"] = _classification_scores(
            classified, by_id, documents, labels, aopc_thresholds
        )
    scores[SETTINGS_KEY] = {
        "removal": removal,
        "threshold": None if threshold is None else float(threshold),
        "iou_thresholds": [float(t) for t in iou_thresholds],
        "aopc_thresholds": [float(t) for t in aopc_thresholds],
    }
    return scores


def _probs(records: Sequence[Mapping], field: str, labels: Sequence[str]) -> np.ndarray:
    return np.array([[float(r[field][label]) for label in labels] for r in records])


def _classification_scores(
    records: Sequence[Mapping],
    by_id: Mapping[str, Annotation],
    documents: Mapping[str, Document],
    labels: Sequence[str],
    aopc_thresholds: Sequence[float],
) -> dict:
    label_index = {label: i for i, label in enumerate(labels)}
    gold = [by_id[r["annotation_id"]].classification for r in records]
    predicted_labels = [r["classification"] for r in records]
    gold_labels = set(gold)
    result: dict = {
        "accuracy": accuracy(gold, predicted_labels),
        # the scorer's report has a row per class of the gold annotations, not per class of the model
        "prf": classification_prf(
            gold, predicted_labels, [label for label in labels if label in gold_labels]
        ),
    }
    if not all("classification_scores" in r for r in records):
        return result
    predicted = np.array([label_index[label] for label in predicted_labels])
    full = _probs(records, "classification_scores", labels)
    for name, field, measure in (
        ("comprehensiveness", "comprehensiveness_classification_scores", comprehensiveness),
        ("sufficiency", "sufficiency_classification_scores", sufficiency),
    ):
        if all(field in r for r in records):
            perturbed = _probs(records, field, labels)
            result[name] = measure(full, perturbed, predicted)
            result[f"{name}_entropy"] = entropy_difference(full, perturbed)
            result[f"{name}_kl"] = kl_from_full(full, perturbed)
    if all("thresholded_scores" in r for r in records):
        wanted = [float(t) for t in sorted(aopc_thresholds)]
        binned: dict[str, list[list[list[float]]]] = {"comprehensiveness": [], "sufficiency": []}
        for record in records:
            entries = {float(e["threshold"]): e for e in record["thresholded_scores"]}
            missing = [t for t in wanted if t not in entries]  # float equality, as the scorer
            if missing:
                raise ValueError(f"{record['annotation_id']}: no thresholded scores at {missing}")
            for name in binned:
                field = f"{name}_classification_scores"
                binned[name].append([[float(entries[t][field][label]) for label in labels] for t in wanted])
        result["aopc_thresholds"] = wanted
        for name, values in binned.items():
            curve = aopc(full, np.asarray(values), predicted, wanted)
            result[f"{name}_aopc"] = curve.value
            result[f"{name}_aopc_points"] = list(curve.points)
    if all("tokens_to_flip" in r for r in records):
        lengths = [
            sum(
                len(documents[d])
                for d in (by_id[r["annotation_id"]].evidence_docids or by_id[r["annotation_id"]].docids)
            )
            for r in records
        ]
        result["tokens_to_flip"] = tokens_to_flip_fraction([r["tokens_to_flip"] for r in records], lengths)
    return result
