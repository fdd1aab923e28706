"""ERASER metrics on hand-built rationales and probabilities; every expected value is worked out in the
comments."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sgt_nlp.eraser import load_split, result_record
from sgt_nlp.metrics import (
    SETTINGS_KEY,
    accuracy,
    aopc,
    comprehensiveness,
    entropy_difference,
    hard_rationale_from_scores,
    iou_f1,
    kl_from_full,
    macro_f1,
    rationale_prf,
    removal_count,
    score_records,
    soft_token_metrics,
    sufficiency,
    token_prf,
    tokens_to_flip_fraction,
)
from tests.toy_data import LABELS, write_toy_dataset

# Gold spans of the toy dataset (tests/toy_data.py): a1 is multi-document, a2 had an empty span dropped,
# d3:0 has a document without any rationale.
GOLD = {("a1", "d1"): [(1, 3), (5, 6)], ("a1", "d2"): [(0, 2)], ("a2", "d2"): [(2, 4)]}
# Predictions: two OVERLAPPING spans in (a1, d1), a partial hit in (a1, d2), nothing for a2, a span in the
# rationale-free document d3.
PRED = {("a1", "d1"): [(1, 3), (2, 4)], ("a1", "d2"): [(0, 1)], ("d3:0", "d3"): [(0, 2)]}


def test_exact_span_prf() -> None:
    scores = rationale_prf(GOLD, PRED)
    # truth 4 spans, predicted 4 spans, 1 exact hit ((a1, d1), (1, 3)): P = R = F1 = 1/4
    assert scores["instance_micro"] == pytest.approx({"p": 0.25, "r": 0.25, "f1": 0.25})
    # per key: (a1,d1) P=R=F1=1/2; (a1,d2) 0; (a2,d2) 0 (no prediction); (d3:0,d3) 0 (no gold) -> means 1/8
    assert scores["instance_macro"] == pytest.approx({"p": 0.125, "r": 0.125, "f1": 0.125})


def test_token_prf_micro_and_macro() -> None:
    scores = token_prf(GOLD, PRED)
    # gold tokens: (a1,d1) {1,2,5}, (a1,d2) {0,1}, (a2,d2) {2,3}: 7. predicted: (a1,d1) {1,2,3} (the
    # overlapping spans collapse), (a1,d2) {0}, (d3:0,d3) {0,1}: 6. hits: {1,2} + {0} = 3.
    # micro P = 3/6, R = 3/7, F1 = 2 * (1/2) * (3/7) / (1/2 + 3/7) = 6/13
    assert scores["instance_micro"] == pytest.approx({"p": 0.5, "r": 3 / 7, "f1": 6 / 13})
    # per key (P, R, F1): (a1,d1) (2/3, 2/3, 2/3); (a1,d2) (1, 1/2, 2/3); (a2,d2) (0, 0, 0);
    # (d3:0,d3) (0, 0, 0)
    # macro: P = (2/3 + 1)/4 = 5/12, R = (2/3 + 1/2)/4 = 7/24, F1 = mean of F1s = (4/3)/4 = 1/3
    assert scores["instance_macro"] == pytest.approx({"p": 5 / 12, "r": 7 / 24, "f1": 1 / 3})


def test_iou_f1_micro_and_macro() -> None:
    at_half, at_third = iou_f1(GOLD, PRED, thresholds=(0.5, 0.3))
    # best IoUs: (a1,d1) (1,3)->1 and (2,4) vs (1,3): |{2}| / |{1,2,3}| = 1/3; (a1,d2) (0,1) vs (0,2): 1/2;
    # (d3:0,d3) no gold -> 0.
    # at 0.5 hits: (a1,d1) 1, (a1,d2) 1 -> micro P = 2/4 (predicted spans), R = 2/4 (gold spans)
    assert at_half["threshold"] == 0.5
    assert at_half["micro"] == pytest.approx({"p": 0.5, "r": 0.5, "f1": 0.5})
    # macro P over keys with predictions: (1/2 + 1/1 + 0/1)/3 = 1/2; macro R over keys with gold:
    # (1/2 + 1/1 + 0/1)/3 = 1/2; F1 = F1(1/2, 1/2) = 1/2 (a mean of per-key F1s would give 0.375)
    assert at_half["macro"] == pytest.approx({"p": 0.5, "r": 0.5, "f1": 0.5})
    # at 0.3 the 1/3 span also hits: micro P = 3/4, R = 3/4; macro P = (2/2 + 1 + 0)/3 = 2/3,
    # macro R = (2/2 + 1/1 + 0/1)/3 = 2/3
    assert at_third["micro"] == pytest.approx({"p": 0.75, "r": 0.75, "f1": 0.75})
    assert at_third["macro"] == pytest.approx({"p": 2 / 3, "r": 2 / 3, "f1": 2 / 3})


def test_iou_macro_f1_is_f1_of_macro_p_and_r() -> None:
    gold = {"x": [(0, 2)], "y": [(0, 1), (3, 4)]}
    pred = {"x": [(0, 2), (5, 6)], "y": [(0, 1)]}
    # hits x 1 of 2 predicted / 1 gold, y 1 of 1 predicted / 2 gold: macro P = (1/2 + 1)/2 = 3/4,
    # R = (1 + 1/2)/2
    (result,) = iou_f1(gold, pred)
    assert result["macro"] == pytest.approx({"p": 0.75, "r": 0.75, "f1": 0.75})
    # micro: 2 hits / 3 predicted, 2 hits / 3 gold
    assert result["micro"] == pytest.approx({"p": 2 / 3, "r": 2 / 3, "f1": 2 / 3})


def test_soft_token_metrics() -> None:
    gold = {
        "d1": [0, 1, 1, 0, 0, 1, 0, 0],
        "d2": [1, 1, 0, 0, 0],
        "none": [0, 0, 0],  # a document without rationale: only AUPRC sees it
    }
    scores = {
        "d1": [0.1, 0.9, 0.8, 0.7, 0.0, 0.6, 0.2, 0.3],
        "d2": [0.5, 0.4, 0.3, 0.2, 0.1],
        "none": [0.1, 0.2, 0.3],
    }
    result = soft_token_metrics(gold, scores)
    # d1 ranking: 0.9+, 0.8+, 0.7-, 0.6+, ... PR curve (recall, precision) until full recall:
    # (1/3, 1), (2/3, 1), (2/3, 2/3), (1, 3/4), plus (0, 1).
    # Trapezoids: 1/3 * 1 + 1/3 * 1 + 1/3 * (2/3 + 3/4)/2 = 2/3 + 17/72 = 65/72. d2 is perfectly ranked: 1.
    # "none" (all negative): sklearn's curve gives 0.5.
    assert result["auprc"] == pytest.approx((65 / 72 + 1 + 0.5) / 3)
    # AP d1 = (1/1 + 2/2 + 3/4)/3 = 11/12; d2 = 1; "none" skipped
    assert result["average_precision"] == pytest.approx((11 / 12 + 1) / 2)
    # ROC-AUC d1: positives beat 5 + 5 + 4 of the 15 (positive, negative) pairs = 14/15; d2 = 1
    assert result["roc_auc_score"] == pytest.approx((14 / 15 + 1) / 2)


def test_soft_metrics_validate_lengths() -> None:
    with pytest.raises(ValueError, match="2 scores for 3 tokens"):
        soft_token_metrics({"k": [0, 1, 0]}, {"k": [0.1, 0.2]})


def test_hard_rationale_from_scores() -> None:
    scores = [0.1, 0.9, 0.8, 0.7, 0.0, 0.6, 0.2, 0.3]
    assert hard_rationale_from_scores(scores, 0.3) == [(1, 3)]  # k = round(2.4) = 2: tokens 1, 2
    assert hard_rationale_from_scores(scores, 0.5) == [(1, 4), (5, 6)]  # k = 4: tokens 1, 2, 3, 5
    # k = round_half_up(0.5 * 5) = 3 (Python's round would give 2); ties go to the earlier token
    assert hard_rationale_from_scores([1, 1, 1, 1, 1], 0.5) == [(0, 3)]
    assert hard_rationale_from_scores([0.2, 0.1], 0.0) == []
    assert hard_rationale_from_scores([0.2, 0.1], 1.0) == [(0, 2)]


# ------------------------------------------------------------------------------------------- faithfulness

# Three instances over labels (NEG, POS). Full distribution, then comp / suff at the single threshold, then
# the AOPC bins 0.1 and 0.5 for comprehensiveness and sufficiency.
FULL = np.array([[0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])  # predicted: POS, NEG, POS
PREDICTED = np.array([1, 0, 1])
COMP = np.array([[0.6, 0.4], [0.5, 0.5], [0.4, 0.6]])  # drops 0.4, 0.2, 0.0
SUFF = np.array([[0.3, 0.7], [0.7, 0.3], [0.5, 0.5]])  # drops 0.1, 0.0, 0.1
COMP_BINS = np.array([[[0.4, 0.6], [0.9, 0.1]], [[0.6, 0.4], [0.3, 0.7]], [[0.4, 0.6], [0.5, 0.5]]])
SUFF_BINS = np.array([[[0.5, 0.5], [0.25, 0.75]], [[0.4, 0.6], [0.6, 0.4]], [[0.45, 0.55], [0.4, 0.6]]])


def test_comprehensiveness_and_sufficiency() -> None:
    assert comprehensiveness(FULL, COMP, PREDICTED) == pytest.approx((0.4 + 0.2 + 0.0) / 3)
    assert sufficiency(FULL, SUFF, PREDICTED) == pytest.approx((0.1 + 0.0 + 0.1) / 3)


def test_aopc_points_and_value() -> None:
    comp = aopc(FULL, COMP_BINS, PREDICTED, thresholds=(0.1, 0.5))
    # comp drops: bin 0.1: 0.2, 0.1, 0.0 -> 0.1; bin 0.5: 0.7, 0.4, 0.1 -> 0.4; AOPC = (0.1 + 0.4)/2 (1/|B|)
    assert comp.points == pytest.approx((0.1, 0.4)) and comp.value == pytest.approx(0.25)
    suff = aopc(FULL, SUFF_BINS, PREDICTED, thresholds=(0.1, 0.5))
    # suff drops: bin 0.1: 0.3, 0.3, 0.05 -> 0.65/3; bin 0.5: 0.05, 0.1, 0.0 -> 0.05
    assert suff.points == pytest.approx((0.65 / 3, 0.05)) and suff.value == pytest.approx(
        (0.65 / 3 + 0.05) / 2
    )
    assert suff.thresholds == (0.1, 0.5)
    with pytest.raises(ValueError, match="2 bins"):
        aopc(FULL, SUFF_BINS, PREDICTED, thresholds=(0.1, 0.2, 0.5))


def _h(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def _kl(q: float, p: float) -> float:
    return q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p))


def test_entropy_and_kl() -> None:
    expected_entropy = (_h(0.2) - _h(0.6) + _h(0.7) - _h(0.5) + _h(0.4) - _h(0.4)) / 3
    assert entropy_difference(FULL, COMP) == pytest.approx(expected_entropy)
    expected_kl = (_kl(0.6, 0.2) + _kl(0.5, 0.7) + _kl(0.4, 0.4)) / 3  # KL(perturbed || full)
    assert kl_from_full(FULL, COMP) == pytest.approx(expected_kl)


def test_classification_metrics() -> None:
    gold, predicted = ["POS", "NEG", "NEG"], ["POS", "NEG", "POS"]
    assert accuracy(gold, predicted) == pytest.approx(2 / 3)
    # POS: P = 1/2, R = 1 -> F1 2/3; NEG: P = 1, R = 1/2 -> F1 2/3
    assert macro_f1(gold, predicted) == pytest.approx(2 / 3)


def test_tokens_to_flip_and_removal_count() -> None:
    assert tokens_to_flip_fraction([3, 1, 2], [13, 5, 6]) == pytest.approx((3 / 13 + 1 / 5 + 2 / 6) / 3)
    assert removal_count(13, 0.1) == 2  # ceil(1.3)
    assert removal_count(10, 0.3) == 3  # ceil(3.0000000000000004) must not become 4
    with pytest.raises(ValueError):
        removal_count(10, 1.5)


# ------------------------------------------------------------------------------------------- scores file


def test_score_records_matches_scorer_layout(tmp_path: Path) -> None:
    split = load_split(write_toy_dataset(tmp_path), "train", labels=LABELS)
    soft = {
        "a1": {"d1": [0.1, 0.9, 0.8, 0.7, 0.0, 0.6, 0.2, 0.3], "d2": [0.5, 0.4, 0.3, 0.2, 0.1]},
        "a2": {"d2": [0.5, 0.4, 0.3, 0.2, 0.1]},
        "d3:0": {},
    }
    hard = {"a1": {"d1": [(1, 3)], "d2": [(0, 1)]}, "a2": {}, "d3:0": {}}
    records = [
        result_record(
            ann,
            LABELS,
            FULL[i],
            soft_scores=soft[ann.annotation_id],
            hard_spans=hard[ann.annotation_id],
            comprehensiveness_probabilities=COMP[i],
            sufficiency_probabilities=SUFF[i],
            thresholded_probabilities={
                0.1: (COMP_BINS[i, 0], SUFF_BINS[i, 0]),
                0.5: (COMP_BINS[i, 1], SUFF_BINS[i, 1]),
            },
            tokens_to_flip=[3, 1, 2][i],
        )
        for i, ann in enumerate(split.annotations)
    ]
    scores = score_records(
        records,
        split.annotations,
        split.documents,
        LABELS,
        aopc_thresholds=(0.1, 0.5),
        removal="delete",
        threshold=0.3,
    )
    assert set(scores) == {
        "iou_scores",
        "rationale_prf",
        "token_prf",
        "token_soft_metrics",
        "classification_scores",
        SETTINGS_KEY,
    }
    assert scores[SETTINGS_KEY] == {
        "removal": "delete",
        "threshold": 0.3,
        "iou_thresholds": [0.5],
        "aopc_thresholds": [0.1, 0.5],
    }
    assert set(scores["iou_scores"][0]) == {"threshold", "micro", "macro"}
    assert set(scores["rationale_prf"]) == {"instance_micro", "instance_macro"}
    # token level: gold 7 tokens, predicted {1,2} in (a1,d1) and {0} in (a1,d2): 3 hits of 3 -> P 1, R 3/7
    assert scores["token_prf"]["instance_micro"] == pytest.approx({"p": 1.0, "r": 3 / 7, "f1": 0.6})
    # soft: (a1,d1) 65/72 and (a1,d2) 1 as in test_soft_token_metrics; (a2,d2) gold {2,3} ranked 3rd and 4th:
    # curve (recall, precision) = (1, 2/4), (1/2, 1/3), (0, 0), (0, 0), (0, 1): trapezoids
    # 1/2 * (1/2 + 1/3)/2 + 1/2 * (1/3 + 0)/2 = 5/24 + 2/24 = 7/24
    assert scores["token_soft_metrics"]["auprc"] == pytest.approx((65 / 72 + 1 + 7 / 24) / 3)
    cls = scores["classification_scores"]
    assert cls["accuracy"] == pytest.approx(2 / 3)  # d3:0 is NEG, predicted POS
    assert cls["comprehensiveness"] == pytest.approx(0.2) and cls["sufficiency"] == pytest.approx(0.2 / 3)
    assert cls["aopc_thresholds"] == [0.1, 0.5]
    assert cls["comprehensiveness_aopc"] == pytest.approx(0.25)
    assert cls["comprehensiveness_aopc_points"] == pytest.approx([0.1, 0.4])
    assert cls["sufficiency_aopc_points"] == pytest.approx([0.65 / 3, 0.05])
    assert cls["comprehensiveness_entropy"] == pytest.approx(entropy_difference(FULL, COMP))
    assert cls["sufficiency_kl"] == pytest.approx(kl_from_full(FULL, SUFF))
    # tokens_to_flip / (tokens of the evidence documents; the docids when there is no evidence)
    assert cls["tokens_to_flip"] == pytest.approx((3 / 13 + 1 / 5 + 2 / 6) / 3)
    assert cls["prf"]["macro avg"]["f1-score"] == pytest.approx(2 / 3)
    assert set(cls) >= {"sufficiency_entropy", "comprehensiveness_kl", "sufficiency_aopc"}


def test_empty_gold_spans_count_in_span_recall_as_in_the_scorer(tmp_path: Path) -> None:
    """a2's empty span (3, 3) is dropped from its evidence groups but the official scorer keeps it as
    truth."""
    from sgt_nlp.metrics import gold_spans

    split = load_split(write_toy_dataset(tmp_path), "train", labels=LABELS)
    truth = gold_spans(split.annotations)
    assert truth[("a2", "d2")] == {(2, 4), (3, 3)}
    hard = {"a1": {"d1": [(1, 3), (5, 6)], "d2": [(0, 2)]}, "a2": {"d2": [(2, 4)]}, "d3:0": {}}
    records = [
        result_record(ann, LABELS, [0.5, 0.5], hard_spans=hard[ann.annotation_id])
        for ann in split.annotations
    ]
    scores = score_records(records, split.annotations, split.documents, LABELS)
    # every non-empty gold span predicted exactly: 4 hits of 4 predicted, of 5 gold spans (one empty)
    assert scores["rationale_prf"]["instance_micro"] == pytest.approx({"p": 1.0, "r": 0.8, "f1": 8 / 9})
    assert scores["iou_scores"][0]["micro"] == pytest.approx({"p": 1.0, "r": 0.8, "f1": 8 / 9})
    # per key recall: (a1,d1) 1, (a1,d2) 1, (a2,d2) 1/2 -> macro R 5/6, F1(1, 5/6) = 10/11
    assert scores["iou_scores"][0]["macro"]["r"] == pytest.approx(5 / 6)
    assert scores["token_prf"]["instance_micro"] == pytest.approx(
        {"p": 1.0, "r": 1.0, "f1": 1.0}
    )  # no tokens


def test_sentence_truth_follows_sentence_indices_and_falls_back_to_token_overlap() -> None:
    from sgt_nlp.eraser import Annotation, Document, Evidence
    from sgt_nlp.metrics.scores import _sentence_truth

    doc = Document("d", (("a", "b"), ("c", "d"), ("e", "f"), ("g",)))
    indexed = Evidence(
        "d", 2, 3, start_sentence=1, end_sentence=3
    )  # sentences 1 and 2, as the scorer reads it
    unindexed = Evidence("d", 6, 7, start_sentence=-1, end_sentence=-1)  # token 6 lies in sentence 3
    ann = Annotation("x", "", ((indexed,), (unindexed,)), "POS", ("d",))
    assert _sentence_truth(ann, doc).tolist() == [False, True, True, True]


def test_classification_report_rows_are_the_gold_classes(tmp_path: Path) -> None:
    """The scorer builds its report over the classes of the gold annotations; a model class never gold adds no
    all-zero row that would drag the macro average down."""
    split = load_split(write_toy_dataset(tmp_path), "train", labels=LABELS)
    labels = (*LABELS, "NEUTRAL")
    records = [
        result_record(ann, labels, p)
        for ann, p in zip(split.annotations, ([0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.7, 0.1]), strict=True)
    ]
    prf = score_records(records, split.annotations, split.documents, labels)["classification_scores"]["prf"]
    assert "NEUTRAL" not in prf
    # gold POS, NEG, NEG; predicted POS, NEG, POS: NEG P 1 R 1/2 F1 2/3; POS P 1/2 R 1 F1 2/3
    assert prf["macro avg"]["f1-score"] == pytest.approx(2 / 3)


def test_macro_scores_do_not_depend_on_string_hashing():
    """Keys iterate in set order, which follows PYTHONHASHSEED; the macro means must not (scores.json is then
    byte-identical across runs). 40 keys with unequal per-key values make a summation-order effect visible."""
    code = (
        "from sgt_nlp.metrics import token_prf\n"
        "g = {('a%d' % i, 'd'): [(0, 3 + i % 5), (7, 9)] for i in range(40)}\n"
        "p = {('a%d' % i, 'd'): [(1, 2 + i % 7), (8, 11)] for i in range(40)}\n"
        "print(repr(token_prf(g, p)['instance_macro']))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in range(4)
    }
    assert len(outputs) == 1, outputs
