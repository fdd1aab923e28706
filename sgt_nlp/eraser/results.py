"""The official ERASER results JSONL: build records, write them in a line order the scorer reads right, read
them back (:mod:`sgt_nlp.eraser.verify` checks a file as the scorer would).

One line per annotation of the split. ``rationales`` lists only docids that carry human evidence for that
annotation: the scorer computes soft metrics per listed (annotation, docid) pair, and a document without gold
tokens gives a degenerate AUPRC (a pitfall of some scorer versions).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from sgt_nlp.eraser.data import parse_json_line
from sgt_nlp.eraser.records import Annotation
from sgt_nlp.files import atomic_write_text

SCORE_FIELDS: tuple[str, ...] = (
    "classification_scores",
    "comprehensiveness_classification_scores",
    "sufficiency_classification_scores",
)


class ResultsError(ValueError):
    """A results file the official scorer would reject (or mis-score); names file, line and field."""

    def __init__(self, path: str | Path, line: int | None, field_name: str | None, message: str) -> None:
        self.path, self.line, self.field, self.message = str(path), line, field_name, message
        where = self.path + (f", line {line}" if line is not None else "")
        where += f", field '{field_name}'" if field_name else ""
        super().__init__(f"{where}: {message}")


def _distribution(
    labels: Sequence[str], probabilities: Sequence[float] | np.ndarray, name: str
) -> dict[str, float]:
    values = np.asarray(probabilities, dtype=float).reshape(-1)
    if values.shape[0] != len(labels):
        raise ValueError(f"{name}: {values.shape[0]} probabilities for {len(labels)} labels")
    return {label: float(v) for label, v in zip(labels, values, strict=True)}


def result_record(
    annotation: Annotation,
    labels: Sequence[str],
    probabilities: Sequence[float] | np.ndarray,
    *,
    soft_scores: Mapping[str, Sequence[float] | np.ndarray] | None = None,
    hard_spans: Mapping[str, Iterable[tuple[int, int]]] | None = None,
    comprehensiveness_probabilities: Sequence[float] | np.ndarray | None = None,
    sufficiency_probabilities: Sequence[float] | np.ndarray | None = None,
    thresholded_probabilities: (
        Mapping[float, tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray]] | None
    ) = None,
    tokens_to_flip: int | None = None,
) -> dict:
    """One results line for ``annotation``.

    ``probabilities`` is the model's distribution over ``labels`` (``classification`` = its argmax label);
    ``soft_scores[docid]`` has one score per flattened token of that document; ``hard_spans[docid]`` holds
    ``(start, end)`` token spans (end exclusive); ``thresholded_probabilities[t] = (comp_probs, suff_probs)``
    for each AOPC bin ``t``. Docids that carry no human evidence for ``annotation`` are left out, as are the
    fields whose argument is None.
    """
    record: dict = {"annotation_id": annotation.annotation_id}
    rationales = []
    for docid in annotation.evidence_docids:
        entry: dict = {"docid": docid}
        if hard_spans is not None:
            entry["hard_rationale_predictions"] = [
                {"start_token": int(s), "end_token": int(e)} for s, e in sorted(hard_spans.get(docid, ()))
            ]
        if soft_scores is not None:
            if docid not in soft_scores:
                raise KeyError(f"{annotation.annotation_id}: no soft scores for document {docid!r}")
            entry["soft_rationale_predictions"] = [
                float(v) for v in np.asarray(soft_scores[docid]).reshape(-1)
            ]
        rationales.append(entry)
    record["rationales"] = rationales
    distribution = _distribution(labels, probabilities, "probabilities")
    record["classification"] = max(distribution, key=distribution.__getitem__)
    record["classification_scores"] = distribution
    if comprehensiveness_probabilities is not None:
        record["comprehensiveness_classification_scores"] = _distribution(
            labels, comprehensiveness_probabilities, "comprehensiveness_probabilities"
        )
    if sufficiency_probabilities is not None:
        record["sufficiency_classification_scores"] = _distribution(
            labels, sufficiency_probabilities, "sufficiency_probabilities"
        )
    if tokens_to_flip is not None:
        record["tokens_to_flip"] = int(tokens_to_flip)
    if thresholded_probabilities is not None:
        record["thresholded_scores"] = [
            {
                "threshold": float(threshold),
                "comprehensiveness_classification_scores": _distribution(
                    labels, comp, f"comprehensiveness@{threshold}"
                ),
                "sufficiency_classification_scores": _distribution(labels, suff, f"sufficiency@{threshold}"),
            }
            for threshold, (comp, suff) in sorted(thresholded_probabilities.items())
        ]
    return record


RATIONALE_FIELDS: tuple[str, ...] = (
    "hard_rationale_predictions",
    "soft_rationale_predictions",
    "soft_sentence_predictions",
)


def _carries(entry: object, name: str) -> bool:
    """Whether a rationale entry holds ``name`` as the scorer tests it on line 1 (hard spans: non-empty)."""
    if not isinstance(entry, dict) or entry.get(name) is None:
        return False
    return name != "hard_rationale_predictions" or len(entry[name]) > 0


def rationale_fields_in(records: Iterable[dict]) -> set[str]:
    """The rationale fields any line of a file carries, as the scorer would see them on line 1."""
    return {
        name
        for record in records
        for entry in record.get("rationales") or []
        for name in RATIONALE_FIELDS
        if _carries(entry, name)
    }


def first_line_detects(record: dict, names: Iterable[str]) -> bool:
    rationales = record.get("rationales")
    return (
        isinstance(rationales, list) and bool(rationales) and all(_carries(rationales[0], n) for n in names)
    )


def scorer_safe_order(records: Iterable[dict]) -> list[dict]:
    """The records with a line first from which the official scorer can see every rationale field the file
    has.

    The scorer decides from ``results[0]['rationales'][0]`` alone whether the file has hard (non-empty), soft
    and sentence predictions, and skips those metrics for the whole file otherwise; an annotation whose first
    listed document got no hard span (or that lists no document) would hide them. Line order carries no
    meaning for the scorer (it keys lines by ``annotation_id``), so one suitable line is moved to the front,
    and within it a suitable rationale entry; every other line keeps its place.
    """
    records = list(records)
    present = rationale_fields_in(records)
    if not records or not present or first_line_detects(records[0], present):
        return records
    for index, record in enumerate(records):
        entries = record.get("rationales") or []
        for position, entry in enumerate(entries):
            if all(_carries(entry, name) for name in present):
                moved = {**record, "rationales": [entry, *entries[:position], *entries[position + 1 :]]}
                return [moved, *records[:index], *records[index + 1 :]]
    return records  # no line shows every field; verify_results names the problem


def write_results(path: str | Path, records: Iterable[dict]) -> Path:
    """Write one JSON object per line (thresholds keep their shortest repr, e.g. ``0.1``, as the scorer
    needs).

    Lines are put in :func:`scorer_safe_order`, so that the scorer's first-line detection sees every field.
    Every line is serialised before the file is touched, and the file is replaced atomically: a record that
    cannot be written (a non-finite score) raises and leaves the old file as it was.
    """
    path = Path(path)
    lines = []
    for record in scorer_safe_order(records):
        try:
            lines.append(json.dumps(record, allow_nan=False) + "\n")
        except ValueError as exc:  # NaN or infinity: the scorer's JSON reader would choke on the file
            where = f"annotation {record.get('annotation_id')!r}"
            message = f"{where} cannot be written ({exc}); nothing was written"
            raise ResultsError(path, None, None, message) from None
    atomic_write_text(path, "".join(lines))
    return path


def read_results(path: str | Path) -> list[dict]:
    """The records of a results JSONL, in file order (no validation: see :func:`verify_results`)."""
    path = Path(path)
    records = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if line.strip():
                records.append(parse_json_line(line, path, line_no, ResultsError))
    return records
