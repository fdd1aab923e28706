"""The metric registry: every metric a table prints is registered, with the right direction."""

import pytest

from sgt_nlp.metrics import registry
from sgt_nlp.metrics.registry import METRICS, SUMMARY_METRICS, Metric, direction, get_metric, oriented, title


def test_summary_table_columns_are_registered_and_titled():
    from sgt_nlp.evaluation import SUMMARY_COLUMNS, summary_table

    assert [key for key, _ in SUMMARY_COLUMNS] == list(SUMMARY_METRICS)
    assert all(key in METRICS for key in SUMMARY_METRICS)
    header = summary_table([]).splitlines()[0]
    assert header == (
        "| model | method | removal | acc | F1 | comp | suff | comp AOPC | suff AOPC | AUPRC "
        "| token F1 | IOU F1 | AUPRC seen | token F1 seen | to flip | masked acc |"
    )


def test_every_summary_row_metric_is_registered():
    from sgt_nlp.evaluation.summary import score_columns

    row = score_columns({}, {"masked_accuracy": {"accuracy": []}})
    assert set(row) <= set(METRICS)


def test_experiment_and_report_tables_are_registered():
    from sgt_nlp.experiments import ALL_METRICS
    from sgt_nlp.report import METRIC_COLUMNS

    for key, heading, sign in ALL_METRICS:
        assert (title(key), direction(key)) == (heading, sign), key
    assert oriented([key for key, _, _ in METRIC_COLUMNS], long=True) == METRIC_COLUMNS


@pytest.mark.parametrize(
    ("key", "sign"),
    [
        ("comprehensiveness", 1),
        ("sufficiency", -1),
        ("comprehensiveness_aopc", 1),
        ("sufficiency_aopc", -1),
        ("auprc", 1),
        ("token_f1", 1),
        ("tokens_to_flip", -1),
        ("masked_accuracy_auc", -1),
        ("accuracy", 1),
    ],
)
def test_directions_of_known_metrics(key, sign):
    assert direction(key) == sign
    metric = get_metric(key)
    assert metric.better(0.5, 0.4) is (sign == 1)
    assert metric.better(0.4, 0.5) is (sign == -1)
    assert not metric.better(0.4, 0.4)


def test_lookup_errors_and_validation():
    with pytest.raises(KeyError, match="unknown metric 'nope'.*comprehensiveness"):
        get_metric("nope")
    with pytest.raises(ValueError, match="direction"):
        Metric("x", "x", 0, "no direction")
    assert get_metric("comprehensiveness").long_title == "Comprehensiveness"
    assert get_metric("auprc").long_title == "AUPRC"
    assert registry.columns(["comprehensiveness", "sufficiency"]) == (
        ("comprehensiveness", "comp"),
        ("sufficiency", "suff"),
    )
    assert all(m.description for m in METRICS.values())
