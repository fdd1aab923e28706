"""The summary of an evaluation: one row per model and method (``summary.json``) and its Markdown table
(``summary.md``, the terminal); the metric columns and their titles come from the metric registry."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..metrics.registry import SUMMARY_METRICS
from ..metrics.registry import columns as metric_columns

#: (key, title) of the summary table's metric columns, from the metric registry
SUMMARY_COLUMNS = metric_columns(SUMMARY_METRICS)


def aopc_curve(thresholds: Sequence[float], classification_scores: dict) -> dict[str, list[float]]:
    """The AOPC points of ``curves.json`` from a scores file's ``classification_scores``."""
    return {
        "thresholds": list(thresholds),
        "comprehensiveness": list(classification_scores.get("comprehensiveness_aopc_points", [])),
        "sufficiency": list(classification_scores.get("sufficiency_aopc_points", [])),
    }


def score_columns(scores: dict, curves: dict) -> dict[str, Any]:
    """The summary columns that come from a method's scores and curves (everything but names and timing)."""
    cls = scores.get("classification_scores", {})
    iou = scores.get("iou_scores", [{}])[0]
    masked = curves["masked_accuracy"]["accuracy"]
    visible = scores.get("visible_only", {})
    return {
        "accuracy": cls.get("accuracy"),
        "macro_f1": cls.get("prf", {}).get("macro avg", {}).get("f1-score"),
        "comprehensiveness": cls.get("comprehensiveness"),
        "sufficiency": cls.get("sufficiency"),
        "comprehensiveness_aopc": cls.get("comprehensiveness_aopc"),
        "sufficiency_aopc": cls.get("sufficiency_aopc"),
        "auprc": scores.get("token_soft_metrics", {}).get("auprc"),
        "average_precision": scores.get("token_soft_metrics", {}).get("average_precision"),
        "roc_auc": scores.get("token_soft_metrics", {}).get("roc_auc_score"),
        "token_f1": scores.get("token_prf", {}).get("instance_macro", {}).get("f1"),
        "iou_f1": iou.get("macro", {}).get("f1"),
        "tokens_to_flip": cls.get("tokens_to_flip"),
        "auprc_visible": visible.get("token_soft_metrics", {}).get("auprc"),
        "token_f1_visible": visible.get("token_prf", {}).get("instance_macro", {}).get("f1"),
        "masked_accuracy_auc": float(np.mean(masked)) if masked else None,
    }


def summary_row(model_name: str, method: str, scores: dict, curves: dict, seconds: float) -> dict[str, Any]:
    """One row of ``summary.json`` / ``summary.md``: names, the metric columns and the method's seconds."""
    return {
        "model_name": model_name,
        "method": method,
        "removal": scores["evaluation_settings"]["removal"],
        **score_columns(scores, curves),
        "seconds": seconds,
    }


def summary_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table with a row per model and method."""
    header = ["model", "method", "removal", *(title for _, title in SUMMARY_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [str(row["model_name"]), str(row["method"]), str(row.get("removal", "-"))]
        for key, _ in SUMMARY_COLUMNS:
            value = row.get(key)
            cells.append(
                "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
