"""One record per reported metric: its key in scores and summary rows, its table title, its direction.

Every table that prints metrics (the ``sgt-nlp evaluate`` summary, the experiment results, the report) reads
titles and directions from here, so a metric is named and oriented in one place. ``direction`` is +1 when a
higher value is better (a more faithful or more plausible explanation, a more accurate model) and -1 when a
lower value is better.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """A reported metric: ``key`` as in the summary rows and per-example metrics, ``title`` (short, for
    terminal and Markdown tables), ``direction`` (+1 higher is better, -1 lower is better), ``description``
    (one sentence) and ``heading`` (a longer column heading for the HTML report; the title when empty)."""

    key: str
    title: str
    direction: int
    description: str
    heading: str = ""

    def __post_init__(self) -> None:
        if self.direction not in (1, -1):
            raise ValueError(f"metric {self.key!r}: direction must be +1 or -1, got {self.direction}")

    @property
    def long_title(self) -> str:
        return self.heading or self.title

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than value ``b`` for this metric."""
        return a * self.direction > b * self.direction


_RECORDS: tuple[Metric, ...] = (
    Metric("accuracy", "acc", +1, "share of examples whose predicted class is the gold class", "Accuracy"),
    Metric("macro_f1", "F1", +1, "F1 of the predictions, averaged over classes", "Macro F1"),
    Metric(
        "comprehensiveness",
        "comp",
        +1,
        "drop of the predicted class's probability when the top threshold-share of words is removed",
        "Comprehensiveness",
    ),
    Metric(
        "sufficiency",
        "suff",
        -1,
        "drop of the predicted class's probability when only the top threshold-share of words is kept",
        "Sufficiency",
    ),
    Metric(
        "comprehensiveness_aopc",
        "comp AOPC",
        +1,
        "comprehensiveness averaged over the AOPC bins (removed shares)",
        "AOPC comp.",
    ),
    Metric(
        "sufficiency_aopc",
        "suff AOPC",
        -1,
        "sufficiency averaged over the AOPC bins (kept shares)",
        "AOPC suff.",
    ),
    Metric(
        "comprehensiveness_aopc_vs_empty",
        "comp AOPC / empty drop",
        +1,
        "comprehensiveness AOPC divided by the drop when every seen word is removed",
    ),
    Metric(
        "sufficiency_aopc_vs_empty",
        "suff AOPC / empty drop",
        -1,
        "sufficiency AOPC divided by the drop when every seen word is removed",
    ),
    Metric(
        "comprehensiveness_naopc",
        "comp NAOPC (evaluated bounds)",
        +1,
        "comprehensiveness AOPC normalised between the lowest and highest AOPC of the evaluated orders",
    ),
    Metric(
        "sufficiency_naopc",
        "suff NAOPC (evaluated bounds)",
        -1,
        "sufficiency AOPC normalised between the lowest and highest AOPC of the evaluated orders",
    ),
    Metric(
        "comprehensiveness_aopc_minus_random",
        "comp AOPC − Random",
        +1,
        "comprehensiveness AOPC minus the same model's Random AOPC on the same example",
    ),
    Metric(
        "sufficiency_aopc_minus_random",
        "suff AOPC − Random",
        -1,
        "sufficiency AOPC minus the same model's Random AOPC on the same example",
    ),
    Metric(
        "comprehensiveness_naopc_bounds",
        "comp NAOPC (all-order bounds)",
        +1,
        "comprehensiveness AOPC normalised between the lowest and highest AOPC over all orderings (searched)",
    ),
    Metric(
        "sufficiency_naopc_bounds",
        "suff NAOPC (all-order bounds)",
        -1,
        "sufficiency AOPC normalised between the lowest and highest AOPC over all orderings (searched)",
    ),
    Metric(
        "auprc", "AUPRC", +1, "area under the precision-recall curve of word scores vs the human rationale"
    ),
    Metric("average_precision", "AP", +1, "average precision of word scores vs the human rationale"),
    Metric("roc_auc", "ROC AUC", +1, "area under the ROC curve of word scores vs the human rationale"),
    Metric(
        "token_f1", "token F1", +1, "word-level F1 of the hard rationale vs the human rationale", "Token F1"
    ),
    Metric("iou_f1", "IOU F1", +1, "F1 of span matches (IOU at least 0.5) with the human rationale"),
    Metric("auprc_visible", "AUPRC seen", +1, "AUPRC over the words the model saw (truncation left out)"),
    Metric(
        "token_f1_visible", "token F1 seen", +1, "token F1 over the words the model saw (truncation left out)"
    ),
    Metric(
        "tokens_to_flip",
        "to flip",
        -1,
        "share of the top words that must be removed to change the prediction",
    ),
    Metric(
        "masked_accuracy_auc",
        "masked acc",
        -1,
        "accuracy averaged over the masked-accuracy curve (top words removed in 10 % steps)",
        "Masked-acc. mean",
    ),
    Metric(
        "ig_mean_abs_delta",
        "IG |delta|",
        -1,
        "mean absolute completeness gap of Integrated Gradients (attributions' sum vs output difference)",
    ),
)

METRICS: dict[str, Metric] = {m.key: m for m in _RECORDS}

#: the metric columns of the ``sgt-nlp evaluate`` summary table (``summary.md``), in order
SUMMARY_METRICS: tuple[str, ...] = (
    "accuracy",
    "macro_f1",
    "comprehensiveness",
    "sufficiency",
    "comprehensiveness_aopc",
    "sufficiency_aopc",
    "auprc",
    "token_f1",
    "iou_f1",
    "auprc_visible",
    "token_f1_visible",
    "tokens_to_flip",
    "masked_accuracy_auc",
)


def get_metric(key: str) -> Metric:
    """The record of ``key``; unknown keys list the registered ones."""
    try:
        return METRICS[key]
    except KeyError:
        raise KeyError(f"unknown metric {key!r}; registered: {', '.join(METRICS)}") from None


def title(key: str) -> str:
    """The short table title of ``key``."""
    return get_metric(key).title


def direction(key: str) -> int:
    """+1 when a higher value of ``key`` is better, -1 when a lower one is."""
    return get_metric(key).direction


def columns(keys: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``(key, title)`` per key, for table builders."""
    return tuple((key, title(key)) for key in keys)


def oriented(keys: Iterable[str], *, long: bool = False) -> tuple[tuple[str, str, int], ...]:
    """``(key, title, direction)`` per key; ``long`` takes the report's longer headings."""
    records = [get_metric(key) for key in keys]
    return tuple((m.key, m.long_title if long else m.title, m.direction) for m in records)


__all__ = ["METRICS", "SUMMARY_METRICS", "Metric", "columns", "direction", "get_metric", "oriented", "title"]
