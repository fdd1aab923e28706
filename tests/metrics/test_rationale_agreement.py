"""The rationale-agreement ``evaluate`` module loads from the installed package and agrees with our
functions."""

from __future__ import annotations

import evaluate
import pytest

from sgt_nlp.metrics import RATIONALE_AGREEMENT_PATH, load_rationale_agreement

PREDICTIONS = [[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.7, 0.6], [0.3, 0.2, 0.1]]
REFERENCES = [[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1]]


@pytest.fixture(scope="module")
def metric() -> evaluate.Metric:
    return load_rationale_agreement()


def test_module_ships_inside_the_package() -> None:
    assert (RATIONALE_AGREEMENT_PATH / "rationale_agreement.py").is_file()
    assert RATIONALE_AGREEMENT_PATH.parent.name == "metrics"


def test_info(metric: evaluate.Metric) -> None:
    assert "DeYoung" in metric.citation and "IOU F1" in metric.description
    assert set(metric.features) == {"predictions", "references"}


def test_values_by_hand(metric: evaluate.Metric) -> None:
    result = metric.compute(predictions=PREDICTIONS, references=REFERENCES, fraction=0.5)
    # k = round_half_up(0.5 n): 2, 2, 2 (1.5 -> 2). predicted tokens: {0,1}, {2,3}, {0,1};
    # gold {0,1}, {2}, {2}
    # per document (P, R, F1): (1, 1, 1), (1/2, 1, 2/3), (0, 0, 0)
    assert result["token_precision"] == pytest.approx(1.5 / 3)
    assert result["token_recall"] == pytest.approx(2 / 3)
    assert result["token_f1"] == pytest.approx((1 + 2 / 3) / 3)
    # micro: hits 2 + 1 + 0 = 3 of 6 predicted, of 4 gold -> F1 = 2 * (1/2)(3/4) / (5/4) = 3/5
    assert result["token_f1_micro"] == pytest.approx(0.6)
    # spans: (0,2)=(0,2) IoU 1; (2,4) vs (2,3) IoU 1/2 -> hit; (0,2) vs (2,3) IoU 0. macro P = R = 2/3
    assert result["iou_f1"] == pytest.approx(2 / 3) and result["iou_f1_micro"] == pytest.approx(2 / 3)
    # AUPRC: docs 1 and 2 perfectly ranked (1); doc 3 ranks its gold token last:
    # curve (1, 1/3), (0, 0), (0, 0), (0, 1): 1 * (1/3 + 0)/2 = 1/6
    assert result["auprc"] == pytest.approx((1 + 1 + 1 / 6) / 3)
    assert result["fraction"] == 0.5


def test_default_fraction_and_threshold_mode(metric: evaluate.Metric) -> None:
    default = metric.compute(predictions=PREDICTIONS, references=REFERENCES)
    assert default["fraction"] == pytest.approx((2 / 4 + 1 / 4 + 1 / 3) / 3)  # mean human-rationale fraction
    thresholded = metric.compute(predictions=PREDICTIONS, references=REFERENCES, threshold=0.65)
    # hard = score >= 0.65: {0,1}, {2}, {}: per doc F1 1, 1, 0
    assert thresholded["token_f1"] == pytest.approx(2 / 3) and thresholded["fraction"] is None


def test_length_mismatch_is_an_error(metric: evaluate.Metric) -> None:
    with pytest.raises(ValueError, match="3 scores for 2 reference tokens"):
        metric.compute(predictions=[[0.1, 0.2, 0.3]], references=[[0, 1]])
