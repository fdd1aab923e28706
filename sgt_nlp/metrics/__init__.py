"""ERASER metrics as pure functions (faithfulness, plausibility, classification) and the scores-file
assembler."""

from pathlib import Path

from sgt_nlp.metrics.classification import accuracy, classification_prf, macro_f1
from sgt_nlp.metrics.faithfulness import (
    AOPC,
    DEFAULT_AOPC_THRESHOLDS,
    aopc,
    comprehensiveness,
    entropy_difference,
    kl_from_full,
    prediction_drops,
    removal_count,
    sufficiency,
    tokens_to_flip_fraction,
    top_k_indices,
)
from sgt_nlp.metrics.rationale import (
    hard_rationale_from_scores,
    iou_f1,
    mask_to_spans,
    rationale_prf,
    round_half_up,
    soft_token_metrics,
    spans_to_mask,
    to_token_spans,
    token_prf,
)
from sgt_nlp.metrics.scores import SETTINGS_KEY, gold_spans, score_records

RATIONALE_AGREEMENT_PATH = Path(__file__).resolve().parent / "rationale_agreement"


def load_rationale_agreement(**kwargs):
    """The rationale-agreement ``evaluate`` metric, loaded from the folder shipped inside this package."""
    import evaluate

    return evaluate.load(str(RATIONALE_AGREEMENT_PATH), **kwargs)


__all__ = [
    "AOPC",
    "DEFAULT_AOPC_THRESHOLDS",
    "RATIONALE_AGREEMENT_PATH",
    "SETTINGS_KEY",
    "accuracy",
    "aopc",
    "classification_prf",
    "comprehensiveness",
    "entropy_difference",
    "gold_spans",
    "hard_rationale_from_scores",
    "iou_f1",
    "kl_from_full",
    "load_rationale_agreement",
    "macro_f1",
    "mask_to_spans",
    "prediction_drops",
    "rationale_prf",
    "removal_count",
    "round_half_up",
    "score_records",
    "soft_token_metrics",
    "spans_to_mask",
    "sufficiency",
    "to_token_spans",
    "token_prf",
    "tokens_to_flip_fraction",
    "top_k_indices",
]
