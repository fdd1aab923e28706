"""Similarity measures between two saliency maps, their per-measure summary, and the verdict rules.

Pure functions of score vectors and numbers (no model): what the checks of :mod:`sgt_nlp.sanity.checks`
compute per example and how a mean similarity becomes a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from scipy import stats

MEASURES: tuple[str, ...] = ("spearman", "spearman_abs", "kendall", "top10_overlap")
#: Mean similarity at or above which maps count as unchanged (class check: insensitive; randomisation:
#: survives).
INSENSITIVE_THRESHOLD = 0.9
#: Mean class similarity at or below which a method counts as class sensitive: a map that explains one class
#: of several should share at most half of its ranking with the maps of the other classes.
SENSITIVE_THRESHOLD = 0.5
#: Mean float32-vs-float64 Spearman below which a map is rounding noise.
PRECISION_THRESHOLD = 0.9
TOP_FRACTION = 0.1

ScoreVector = Sequence[float] | np.ndarray | torch.Tensor


def _pair(a: ScoreVector, b: ScoreVector) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64).ravel()
    y = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"score vectors differ in length: {x.shape[0]} and {y.shape[0]}")
    return x, y


def _undefined(x: np.ndarray, y: np.ndarray) -> bool:
    """Nothing to rank: fewer than two tokens, or a constant vector (every correlation is 0/0)."""
    return x.size < 2 or bool(np.ptp(x) == 0) or bool(np.ptp(y) == 0)


def spearman(a: ScoreVector, b: ScoreVector) -> float:
    """Spearman ρ of the signed scores (average ranks for ties); NaN when undefined."""
    x, y = _pair(a, b)
    if _undefined(x, y):
        return math.nan
    return float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])


def spearman_abs(a: ScoreVector, b: ScoreVector) -> float:
    """Spearman ρ of the magnitudes: the ranking by |score| that top-k rationales and SGT's masking use."""
    x, y = _pair(a, b)
    return spearman(np.abs(x), np.abs(y))


def kendall(a: ScoreVector, b: ScoreVector) -> float:
    """Kendall τ-b of the signed scores; NaN when undefined."""
    x, y = _pair(a, b)
    if _undefined(x, y):
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


def top_k_overlap(a: ScoreVector, b: ScoreVector, fraction: float = TOP_FRACTION) -> float:
    """|top-k(|a|) ∩ top-k(|b|)| / k with k = ceil(fraction · n): do both maps highlight the same tokens?

    NaN when undefined (fewer than two tokens or a constant vector: its top set is arbitrary). Ties inside a
    vector are broken by position (a stable sort), the same way for both vectors.
    """
    x, y = _pair(a, b)
    if _undefined(np.abs(x), np.abs(y)):
        return math.nan
    k = max(1, math.ceil(fraction * x.size - 1e-9))
    top_x = set(np.argsort(-np.abs(x), kind="stable")[:k].tolist())
    top_y = set(np.argsort(-np.abs(y), kind="stable")[:k].tolist())
    return len(top_x & top_y) / k


def similarities(a: ScoreVector, b: ScoreVector) -> dict[str, float]:
    """Every measure of :data:`MEASURES` for one pair of maps."""
    return {
        "spearman": spearman(a, b),
        "spearman_abs": spearman_abs(a, b),
        "kendall": kendall(a, b),
        "top10_overlap": top_k_overlap(a, b),
    }


def summarize(rows: Iterable[Mapping[str, float]]) -> dict[str, dict[str, float | int]]:
    """Per measure: mean and std over the defined values, ``n`` used and ``excluded`` (NaN, counted, not
    hidden)."""
    rows = list(rows)
    out: dict[str, dict[str, float | int]] = {}
    for measure in MEASURES:
        values = np.asarray([r[measure] for r in rows], dtype=np.float64)
        defined = values[~np.isnan(values)]
        out[measure] = {
            "mean": float(defined.mean()) if defined.size else math.nan,
            "std": float(defined.std()) if defined.size else math.nan,
            "n": int(defined.size),
            "excluded": int(values.size - defined.size),
        }
    return out


def class_verdict(mean_similarity: float, degenerate: bool = False) -> str:
    """``insensitive`` (≥ 0.9: the other classes get the same ranking), ``sensitive`` (≤ 0.5), else
    ``weak``."""
    if degenerate or math.isnan(mean_similarity):
        return "degenerate"
    if mean_similarity >= INSENSITIVE_THRESHOLD:
        return "insensitive"
    return "sensitive" if mean_similarity <= SENSITIVE_THRESHOLD else "weak"


def randomization_verdict(similarity_after_top: float, degenerate: bool = False) -> str:
    """``insensitive`` when the magnitude ranking survives re-drawing the head and the top layer (> 0.9)."""
    if degenerate or math.isnan(similarity_after_top):
        return "degenerate"
    return "insensitive" if similarity_after_top > INSENSITIVE_THRESHOLD else "sensitive"


def precision_verdict(mean_spearman: float) -> str:
    """``noise`` when the float32 map agrees with its float64 self less than :data:`PRECISION_THRESHOLD`."""
    return "noise" if math.isnan(mean_spearman) or mean_spearman < PRECISION_THRESHOLD else "ok"
