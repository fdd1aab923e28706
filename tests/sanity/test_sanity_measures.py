"""Similarity measures, verdict rules and method parsing of ``sgt_nlp.sanity`` (pure functions, no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from sgt_nlp import sanity


def test_spearman_and_kendall_equal_scipy_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(-3, 4, size=12).astype(float)
        b = a + rng.normal(size=12)
        assert sanity.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
        assert sanity.kendall(a, b) == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)
        assert sanity.spearman_abs(a, b) == pytest.approx(
            stats.spearmanr(abs(a), abs(b)).statistic, abs=1e-12
        )


def test_sign_flip_is_minus_one_signed_and_plus_one_on_magnitudes():
    a = np.array([0.3, -1.2, 2.0, 0.1, -0.4, 0.9])
    assert sanity.spearman(a, -a) == pytest.approx(-1.0)
    assert sanity.kendall(a, -a) == pytest.approx(-1.0)
    assert sanity.spearman_abs(a, -a) == pytest.approx(1.0)
    assert sanity.top_k_overlap(a, -a) == 1.0
    assert sanity.spearman(torch.tensor(a), torch.tensor(3 * a)) == pytest.approx(1.0)


def test_top_k_overlap_by_hand():
    # n = 11 -> k = ceil(1.1) = 2; top-2 of |a| = {0, 1}, of |b| = {0, 5}
    a = np.array([5, 4, 3, 2, 1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    b = np.array([-9, 0, 0, 0, 0, 8, 0, 0, 0, 0, 1])
    assert sanity.top_k_overlap(a, b) == 0.5
    # n = 30 -> k = 3 exactly (0.1 * 30 is 3.0000000000000004 in floating point)
    a = np.arange(30.0)
    b = a.copy()
    b[[27, 28]] = -100.0, 0.0  # |b| top-3: {27, 29, 26}; |a| top-3: {29, 28, 27}
    assert sanity.top_k_overlap(a, b) == pytest.approx(2 / 3)
    assert sanity.top_k_overlap(a, b, fraction=0.5) == pytest.approx(14 / 15)


def test_undefined_pairs_are_nan_and_counted():
    constant, varying = np.ones(5), np.arange(5.0)
    for measure in (sanity.spearman, sanity.spearman_abs, sanity.kendall, sanity.top_k_overlap):
        assert math.isnan(measure(constant, varying))
        assert math.isnan(measure(varying, constant))
        assert math.isnan(measure([1.0], [2.0]))
    # a signed vector whose magnitudes are constant has no magnitude ranking
    assert math.isnan(sanity.spearman_abs([1.0, -1.0, 1.0], [1.0, 2.0, 3.0]))
    assert not math.isnan(sanity.spearman([1.0, -1.0, 1.0], [1.0, 2.0, 3.0]))
    rows = [
        sanity.similarities(varying, varying),
        sanity.similarities(constant, varying),
        sanity.similarities(varying, -varying),
    ]
    summary = sanity.summarize(rows)
    assert summary["spearman"] == {"mean": 0.0, "std": pytest.approx(1.0), "n": 2, "excluded": 1}
    assert summary["spearman_abs"]["mean"] == pytest.approx(1.0)
    assert math.isnan(sanity.summarize([sanity.similarities(constant, constant)])["kendall"]["mean"])
    with pytest.raises(ValueError, match="differ in length"):
        sanity.spearman([1.0, 2.0], [1.0, 2.0, 3.0])


def test_verdict_thresholds():
    assert sanity.class_verdict(0.95) == "insensitive"
    assert sanity.class_verdict(sanity.INSENSITIVE_THRESHOLD) == "insensitive"
    assert sanity.class_verdict(0.7) == "weak"
    assert sanity.class_verdict(0.5) == "sensitive"
    assert sanity.class_verdict(-1.0) == "sensitive"
    assert sanity.class_verdict(-1.0, degenerate=True) == "degenerate"
    assert sanity.class_verdict(math.nan) == "degenerate"
    assert sanity.randomization_verdict(0.95) == "insensitive"
    assert sanity.randomization_verdict(0.9) == "sensitive"
    assert sanity.randomization_verdict(math.nan) == "degenerate"


def test_parse_methods_expands_aggregations_and_marks_signed():
    specs = sanity.parse_methods(
        "gradient,integrated_gradients,smoothgrad:l2+grad_x_input,occlusion,random",
        {"smoothgrad": {"n_samples": 3}},
    )
    labels = [s.label for s in specs]
    assert labels == [
        "gradient/l2",
        "gradient/l1",
        "gradient/signed_mean",
        "gradient/grad_x_input",
        "gradient/abs_grad_x_input",
        "integrated_gradients/sum",
        "integrated_gradients/abs_sum",
        "smoothgrad/l2",
        "smoothgrad/grad_x_input",
        "occlusion",
        "random",
    ]
    signed = {s.label for s in specs if s.signed}
    assert signed == {
        "gradient/signed_mean",
        "gradient/grad_x_input",
        "integrated_gradients/sum",
        "smoothgrad/grad_x_input",
        "occlusion",
    }
    assert specs[7].settings == {"n_samples": 3, "aggregation": "l2"}
    for bad, message in (
        ("saliency", "unknown method"),
        ("gradient:sum", "unknown aggregation"),
        ("random:l2", "no aggregations"),
        (" , ", "no methods"),
    ):
        with pytest.raises(ValueError, match=message):
            sanity.parse_methods(bad)
