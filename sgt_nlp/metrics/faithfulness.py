"""Faithfulness from model probabilities, as ERASER (DeYoung et al., 2020) defines it: comprehensiveness
(the drop in the predicted class's probability when the rationale is removed), sufficiency (the drop when
only the rationale is kept), their AOPC over several rationale sizes, and tokens to flip.

All functions take probabilities as arrays ``[N, C]`` (``[N, B, C]`` for AOPC bins) and the index of each
instance's **predicted** class ŷ (not the gold one), as the ERASER scorer does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import entropy

DEFAULT_AOPC_THRESHOLDS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.5)


def _as_probs(probs, name: str, ndim: int = 2) -> np.ndarray:
    array = np.asarray(probs, dtype=float)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    return array


def prediction_drops(full_probs, perturbed_probs, predicted) -> np.ndarray:
    """Per instance ``p(ŷ|x) - p_perturbed(ŷ)``; the quantity averaged by comprehensiveness and
    sufficiency."""
    full = _as_probs(full_probs, "full_probs")
    perturbed = _as_probs(perturbed_probs, "perturbed_probs")
    if full.shape != perturbed.shape:
        raise ValueError(f"shapes differ: {full.shape} vs {perturbed.shape}")
    index = np.asarray(predicted, dtype=int).reshape(-1)
    rows = np.arange(full.shape[0])
    return full[rows, index] - perturbed[rows, index]


def comprehensiveness(full_probs, removed_probs, predicted) -> float:
    """Mean drop of p(ŷ) when the rationale is **removed** (higher = more faithful).

    >>> comprehensiveness([[0.9, 0.1], [0.2, 0.8]], [[0.6, 0.4], [0.3, 0.7]], [0, 1])  # (0.3 + 0.1) / 2
    0.2...
    """
    drops = prediction_drops(full_probs, removed_probs, predicted)
    return float(drops.mean()) if drops.size else 0.0


def sufficiency(full_probs, kept_probs, predicted) -> float:
    """Mean drop of p(ŷ) when **only** the rationale is kept (lower = more faithful)."""
    drops = prediction_drops(full_probs, kept_probs, predicted)
    return float(drops.mean()) if drops.size else 0.0


def entropy_difference(full_probs, perturbed_probs) -> float:
    """Mean ``H(p) - H(p_perturbed)`` (the scorer's ``*_entropy``), natural log."""
    full = _as_probs(full_probs, "full_probs")
    perturbed = _as_probs(perturbed_probs, "perturbed_probs")
    if not len(full):
        return 0.0
    return float(np.mean(entropy(full, axis=1) - entropy(perturbed, axis=1)))


def kl_from_full(full_probs, perturbed_probs) -> float:
    """Mean ``KL(p_perturbed || p)`` (the scorer's ``*_kl``: ``scipy.stats.entropy(perturbed, full)``)."""
    full = _as_probs(full_probs, "full_probs")
    perturbed = _as_probs(perturbed_probs, "perturbed_probs")
    if not len(full):
        return 0.0
    return float(np.mean(entropy(perturbed, full, axis=1)))


@dataclass(frozen=True)
class AOPC:
    """AOPC over bins: ``value`` = mean over instances × bins; ``points[j]`` = mean drop at
    ``thresholds[j]``."""

    value: float
    points: tuple[float, ...]
    thresholds: tuple[float, ...]


def aopc(full_probs, binned_probs, predicted, thresholds: Sequence[float] = DEFAULT_AOPC_THRESHOLDS) -> AOPC:
    """ERASER's AOPC: ``(1/|B|) Σ_k [p(ŷ|x) - p_k(ŷ)]`` averaged over instances, with no k = 0 term.

    ``binned_probs[i, j]`` is the distribution after removing (comprehensiveness) or keeping only
    (sufficiency) the top ``thresholds[j]`` fraction of tokens of instance ``i``.

    >>> result = aopc([[0.9, 0.1]], [[[0.8, 0.2], [0.5, 0.5]]], [0], thresholds=(0.1, 0.5))
    >>> round(result.value, 6), tuple(round(p, 6) for p in result.points)  # drops 0.1 and 0.4
    (0.25, (0.1, 0.4))
    """
    binned = _as_probs(binned_probs, "binned_probs", ndim=3)
    full = _as_probs(full_probs, "full_probs")
    if binned.shape[1] != len(thresholds):
        raise ValueError(f"{binned.shape[1]} bins of probabilities for {len(thresholds)} thresholds")
    index = np.asarray(predicted, dtype=int).reshape(-1)
    rows = np.arange(full.shape[0])
    drops = full[rows, index][:, None] - binned[rows, :, index]  # [N, B]
    if not drops.size:
        return AOPC(0.0, tuple(0.0 for _ in thresholds), tuple(float(t) for t in thresholds))
    return AOPC(
        float(drops.mean()), tuple(float(v) for v in drops.mean(axis=0)), tuple(float(t) for t in thresholds)
    )


def tokens_to_flip_fraction(tokens_to_flip: Sequence[int], document_lengths: Sequence[int]) -> float:
    """Mean of ``tokens_to_flip / document tokens`` (all evidence documents of the annotation together).

    >>> tokens_to_flip_fraction([3, 10], [10, 40])  # (0.3 + 0.25) / 2
    0.275
    """
    flips = np.asarray(tokens_to_flip, dtype=float)
    lengths = np.asarray(document_lengths, dtype=float)
    if flips.shape != lengths.shape:
        raise ValueError(f"{flips.shape[0]} tokens_to_flip values for {lengths.shape[0]} lengths")
    if np.any(lengths <= 0):
        raise ValueError("document lengths must be positive")
    return float(np.mean(flips / lengths)) if flips.size else 0.0


def removal_count(num_tokens: int, fraction: float) -> int:
    """Tokens removed/kept at ``fraction``: ``ceil(n * fraction)``, as the ERASER soft-score baselines do.

    >>> removal_count(774, 0.1), removal_count(10, 0.01), removal_count(10, 0.0)
    (78, 1, 0)
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    return min(num_tokens, math.ceil(round(num_tokens * fraction, 9)))


def top_k_indices(scores, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, highest first; ties go to the earlier token (stable).

    >>> top_k_indices([0.1, 0.5, 0.5, 0.2], 3).tolist()
    [1, 2, 3]
    """
    values = np.asarray(scores, dtype=float).reshape(-1)
    order = np.argsort(-values, kind="stable")
    return order[: max(0, min(k, values.size))]
