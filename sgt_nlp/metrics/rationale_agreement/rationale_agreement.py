"""Rationale agreement: how well per-token explanation scores agree with human rationales (ERASER
plausibility)."""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

from sgt_nlp.metrics.rationale import (
    hard_rationale_from_scores,
    iou_f1,
    mask_to_spans,
    soft_token_metrics,
    token_prf,
)

_CITATION = """\
@inproceedings{deyoung-etal-2020-eraser,
    title = "{ERASER}: {A} Benchmark to Evaluate Rationalized {NLP} Models",
    author = "DeYoung, Jay and Jain, Sarthak and Rajani, Nazneen Fatema and Lehman, Eric and
              Xiong, Caiming and Socher, Richard and Wallace, Byron C.",
    booktitle = "Proceedings of the 58th Annual Meeting of the Association for Computational Linguistics",
    year = "2020",
    pages = "4443--4458",
}
"""

_DESCRIPTION = """\
Agreement between soft token scores (one per token, e.g. a saliency map over the words of a document) and a
human rationale mask (1 = the token is part of the human rationale), with ERASER's definitions:
token-level precision / recall / F1 and IOU F1 (partial span match, threshold 0.5) on hard rationales, and
AUPRC on the soft scores. Hard rationales are the top-k tokens of each document, k = round(fraction * n)
(fraction defaults to the mean human-rationale fraction of the references), merged into contiguous spans; or,
when `threshold` is given, the tokens scoring at least `threshold`. Each prediction/reference pair is one
document; macro values average over documents exactly as the ERASER scorer does.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): one score per token of each document (higher = more important).
    references (`list` of `list` of `int`): the human rationale mask of each document (0 or 1 per token).
    fraction (`float`, optional): share of each document taken as the hard rationale (top-k tokens).
        Defaults to the mean rationale fraction of `references`.
    threshold (`float`, optional): take tokens with score >= threshold as the hard rationale instead of top-k.
    iou_threshold (`float`, defaults to 0.5): IoU at which a predicted span counts as a match.
Returns:
    token_precision, token_recall, token_f1: token-level scores, instance macro (mean over documents).
    token_f1_micro: token-level F1 over all tokens pooled.
    iou_f1: IOU F1 (macro: F1 of mean precision and mean recall); iou_f1_micro: pooled over spans.
    auprc: area under the precision-recall curve of the soft scores, averaged over documents.
    fraction: the fraction used for the hard rationales (None when `threshold` was given).
Examples:
    >>> from sgt_nlp.metrics import load_rationale_agreement
    >>> agreement = load_rationale_agreement()
    >>> results = agreement.compute(
    ...     predictions=[[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.7, 0.6]],
    ...     references=[[1, 1, 0, 0], [0, 0, 1, 0]],
    ... )
    >>> # fraction = (2/4 + 1/4) / 2 = 0.375, k = round(1.5) = 2 per document:
    >>> # doc 1 predicts tokens {0, 1} = gold (P = R = 1); doc 2 predicts {2, 3}, gold {2}: P = 1/2, R = 1.
    >>> round(results["token_f1"], 4)  # mean of F1s 1 and 2/3
    0.8333
    >>> # spans: doc 1 (0, 2) vs (0, 2) IoU 1; doc 2 (2, 4) vs (2, 3) IoU 1/2 >= 0.5: both match, IOU F1 = 1
    >>> results["iou_f1"], results["auprc"]
    (1.0, 1.0)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RationaleAgreement(evaluate.Metric):
    """ERASER plausibility metrics (token F1, IOU F1, AUPRC) for per-token explanation scores."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
            reference_urls=["https://www.eraserbenchmark.com/", "https://arxiv.org/abs/1911.03429"],
        )

    def _compute(
        self,
        predictions,
        references,
        fraction: float | None = None,
        threshold: float | None = None,
        iou_threshold: float = 0.5,
    ) -> dict:
        scores = [np.asarray(p, dtype=float) for p in predictions]
        masks = [np.asarray(r, dtype=bool) for r in references]
        for i, (score, mask) in enumerate(zip(scores, masks, strict=True)):
            if score.shape != mask.shape:
                raise ValueError(f"document {i}: {score.size} scores for {mask.size} reference tokens")
        if threshold is None and fraction is None:
            fraction = float(np.mean([m.mean() if m.size else 0.0 for m in masks])) if masks else 0.0
        gold = {i: mask_to_spans(mask) for i, mask in enumerate(masks)}
        if threshold is not None:
            predicted = {i: mask_to_spans(score >= threshold) for i, score in enumerate(scores)}
        else:
            assert fraction is not None  # set above when neither fraction nor threshold was given
            predicted = {i: hard_rationale_from_scores(score, fraction) for i, score in enumerate(scores)}
        tokens = token_prf(gold, predicted)
        iou = iou_f1(gold, predicted, thresholds=(iou_threshold,))[0]
        soft = soft_token_metrics(dict(enumerate(masks)), dict(enumerate(scores)))
        return {
            "token_precision": tokens["instance_macro"]["p"],
            "token_recall": tokens["instance_macro"]["r"],
            "token_f1": tokens["instance_macro"]["f1"],
            "token_f1_micro": tokens["instance_micro"]["f1"],
            "iou_f1": iou["macro"]["f1"],
            "iou_f1_micro": iou["micro"]["f1"],
            "auprc": soft["auprc"],
            "fraction": None if threshold is not None or fraction is None else float(fraction),
        }
