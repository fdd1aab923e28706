"""Check an ERASER results file the way the official scorer would (and more), before it is scored: every
annotation once, labels and score distributions over the whole label set, soft scores one per token, hard
spans within the document, and the same optional fields on every line (the scorer reads which fields exist
from the first line only)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from sgt_nlp.eraser.data import parse_json_line
from sgt_nlp.eraser.records import Annotation, Document
from sgt_nlp.eraser.results import (
    RATIONALE_FIELDS,
    SCORE_FIELDS,
    ResultsError,
    first_line_detects,
    rationale_fields_in,
)

#: how far a distribution's sum may be from 1 (float32 softmax outputs written as float64 are within 1e-6)
PROBABILITY_SUM_TOLERANCE = 1e-3


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_distribution(value: object, labels: set[str], path: Path, line_no: int, name: str) -> None:
    if not isinstance(value, dict):
        raise ResultsError(path, line_no, name, "must be an object {label: probability}")
    if set(value) != labels:
        raise ResultsError(
            path, line_no, name, f"labels {sorted(value)} differ from the label set {sorted(labels)}"
        )
    for label, prob in value.items():
        if not _is_number(prob):
            raise ResultsError(path, line_no, f"{name}.{label}", f"must be a finite number, got {prob!r}")
        if not 0.0 <= prob <= 1.0:
            raise ResultsError(
                path, line_no, f"{name}.{label}", f"a probability must be in [0, 1], got {prob!r}"
            )
    total = math.fsum(value.values())
    if abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE:
        raise ResultsError(path, line_no, name, f"the probabilities sum to {total:.6g}, not 1")


def _check_score_list(
    values: object, expected: int, what: str, path: Path, line_no: int, field_name: str
) -> None:
    """A per-token or per-sentence score list: absent, or ``expected`` finite numbers."""
    if values is None:
        return
    if not isinstance(values, list) or len(values) != expected:
        length = len(values) if isinstance(values, list) else type(values).__name__
        raise ResultsError(path, line_no, field_name, f"has {length} scores, {what}")
    if not all(_is_number(v) for v in values):
        raise ResultsError(path, line_no, field_name, "scores must be finite numbers")


def _check_rationales(
    record: dict, annotation: Annotation, documents: Mapping[str, Document], path: Path, line_no: int
) -> None:
    rationales = record.get("rationales", [])
    if not isinstance(rationales, list):
        raise ResultsError(path, line_no, "rationales", "must be a list")
    first_fields: frozenset[str] | None = None
    for i, entry in enumerate(rationales):
        fields = frozenset(
            n for n in RATIONALE_FIELDS if isinstance(entry, dict) and entry.get(n) is not None
        )
        if first_fields is not None and fields != first_fields:
            differ = sorted(fields ^ first_fields)
            raise ResultsError(
                path,
                line_no,
                f"rationales[{i}].{differ[0]}",
                f"{differ} on some documents of the annotation but not on rationales[0]; the scorer needs "
                "the same fields on every listed document",
            )
        first_fields = fields
    allowed = set(annotation.docids) | set(annotation.evidence_docids)
    seen: set[str] = set()
    for i, entry in enumerate(rationales):
        where = f"rationales[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("docid"), str):
            raise ResultsError(path, line_no, f"{where}.docid", "each rationale needs a string docid")
        docid = entry["docid"]
        if docid in seen:
            raise ResultsError(path, line_no, f"{where}.docid", f"document {docid!r} listed twice")
        seen.add(docid)
        if docid not in allowed:
            raise ResultsError(
                path,
                line_no,
                f"{where}.docid",
                f"document {docid!r} is not a document of annotation {annotation.annotation_id!r}",
            )
        if docid not in documents:
            raise ResultsError(path, line_no, f"{where}.docid", f"document {docid!r} does not exist")
        doc_len = len(documents[docid])
        document = documents[docid]
        for name, expected, unit in (
            ("soft_rationale_predictions", len(document), "tokens"),
            ("soft_sentence_predictions", len(document.sentences), "sentences"),
        ):
            _check_score_list(
                entry.get(name),
                expected,
                f"document {docid!r} has {expected} {unit}",
                path,
                line_no,
                f"{where}.{name}",
            )
        doc_len = len(document)
        hard = entry.get("hard_rationale_predictions")
        if hard is not None:
            if not isinstance(hard, list):
                raise ResultsError(
                    path, line_no, f"{where}.hard_rationale_predictions", "must be a list of spans"
                )
            spans = []
            for j, span in enumerate(hard):
                span_where = f"{where}.hard_rationale_predictions[{j}]"
                if not isinstance(span, dict) or not all(
                    isinstance(span.get(k), int) and not isinstance(span.get(k), bool)
                    for k in ("start_token", "end_token")
                ):
                    raise ResultsError(path, line_no, span_where, "needs integer start_token and end_token")
                start, end = span["start_token"], span["end_token"]
                if not 0 <= start < end <= doc_len:
                    raise ResultsError(
                        path,
                        line_no,
                        span_where,
                        f"span [{start}, {end}) is not within document {docid!r} ({doc_len} tokens)",
                    )
                spans.append((start, end))
            spans.sort()
            for (s1, e1), (s2, e2) in zip(spans, spans[1:], strict=False):
                if s2 < e1:
                    raise ResultsError(
                        path,
                        line_no,
                        f"{where}.hard_rationale_predictions",
                        f"spans [{s1}, {e1}) and [{s2}, {e2}) overlap",
                    )


def _optional_fields(record: dict) -> tuple[frozenset[str], frozenset[str] | None]:
    """Record fields that must be on all lines or none (classification included, as in the scorer), and the
    rationale fields (None when the record lists no rationale)."""
    present = {
        name
        for name in ("classification", *SCORE_FIELDS, "tokens_to_flip", "thresholded_scores")
        if record.get(name) is not None
    }
    entries = [e for e in record.get("rationales") or [] if isinstance(e, dict)]
    if not entries:
        return frozenset(present), None
    return frozenset(present), frozenset(k for e in entries for k in RATIONALE_FIELDS if e.get(k) is not None)


def _check_same_fields(
    first: tuple[int, frozenset[str]] | None, present: frozenset[str], path: Path, line_no: int, what: str
) -> tuple[int, frozenset[str]]:
    if first is None:
        return (line_no, present)
    if present != first[1]:
        differ = sorted(present ^ first[1])
        raise ResultsError(
            path,
            line_no,
            differ[0],
            f"optional {what} {differ} differ from line {first[0]}; every optional field must be on all "
            "lines or on none",
        )
    return first


def verify_results(
    path: str | Path,
    annotations: Sequence[Annotation],
    documents: Mapping[str, Document],
    labels: Sequence[str] | None = None,
    thresholds: Sequence[float] | None = None,
) -> list[dict]:
    """Check a results file the way the official scorer would, and return its records (file order).

    Every annotation needs exactly one line and no line may name an unknown annotation; ``classification``
    must be a label (``labels``, default: the labels of ``annotations``); score fields are {label: number}
    over the whole label set; soft scores have one number per document token (sentence scores one per
    sentence); hard spans lie within the document and do not overlap; optional fields appear on all lines or
    none, and rationale fields on every document of a line; the first line shows every rationale field the
    file has (the scorer looks only there); classification comes with classification_scores, and comp/suff
    scores need both; every line carries the same thresholds (equal to ``thresholds`` when given), which need
    the classification and comp/suff scores.
    """
    path = Path(path)
    if not path.is_file():
        raise ResultsError(path, None, None, "results file does not exist")
    by_id = {ann.annotation_id: ann for ann in annotations}
    label_set = set(labels) if labels is not None else {ann.classification for ann in annotations}
    records = []
    seen: dict[str, int] = {}  # annotation_id: line number
    fields_first: tuple[int, frozenset[str]] | None = None
    rationale_first: tuple[int, frozenset[str]] | None = None
    thresholds_first: tuple[int, list[float]] | None = None
    with path.open(encoding="utf-8") as handle:
        numbered = [(n, line) for n, line in enumerate(handle, start=1) if line.strip()]
    for line_no, line in numbered:
        record = parse_json_line(line, path, line_no, ResultsError)
        ann_id = record.get("annotation_id")
        if not isinstance(ann_id, str):
            raise ResultsError(path, line_no, "annotation_id", f"must be a string, got {ann_id!r}")
        if ann_id in seen:
            raise ResultsError(
                path, line_no, "annotation_id", f"duplicate {ann_id!r} (first on line {seen[ann_id]})"
            )
        seen[ann_id] = line_no
        if ann_id not in by_id:
            raise ResultsError(
                path, line_no, "annotation_id", f"{ann_id!r} is not an annotation of the split"
            )
        classification = record.get("classification")
        if classification is not None or thresholds is not None or "thresholded_scores" in record:
            if not isinstance(classification, str):
                raise ResultsError(
                    path, line_no, "classification", f"must be a string, got {classification!r}"
                )
            if classification not in label_set:
                raise ResultsError(
                    path,
                    line_no,
                    "classification",
                    f"{classification!r} is not in the label set {sorted(label_set)}",
                )
        has_classification = record.get("classification") is not None
        if has_classification != (record.get("classification_scores") is not None):
            raise ResultsError(
                path,
                line_no,
                "classification_scores" if has_classification else "classification",
                "classification and classification_scores go together: the scorer rejects one without the "
                "other",
            )
        for name in SCORE_FIELDS[1:]:
            if record.get(name) is not None and not has_classification:
                raise ResultsError(path, line_no, name, "needs classification and classification_scores")
        for name in SCORE_FIELDS:
            if name in record:
                _check_distribution(record[name], label_set, path, line_no, name)
        _check_rationales(record, by_id[ann_id], documents, path, line_no)
        if "tokens_to_flip" in record and not (
            isinstance(record["tokens_to_flip"], int) and not isinstance(record["tokens_to_flip"], bool)
        ):
            raise ResultsError(path, line_no, "tokens_to_flip", "must be an integer")
        record_fields, rationale_fields = _optional_fields(record)
        fields_first = _check_same_fields(fields_first, record_fields, path, line_no, "fields")
        if rationale_fields is not None:
            rationale_first = _check_same_fields(
                rationale_first, rationale_fields, path, line_no, "rationale fields"
            )
        if "thresholded_scores" in record:
            found = _check_thresholded(record, label_set, path, line_no)
            if thresholds_first is None:
                thresholds_first = (line_no, found)
            elif found != thresholds_first[1]:
                raise ResultsError(
                    path,
                    line_no,
                    "thresholded_scores",
                    f"thresholds {found} differ from {thresholds_first[1]} on line {thresholds_first[0]}",
                )
            if thresholds is not None and found != sorted(float(t) for t in thresholds):
                raise ResultsError(
                    path,
                    line_no,
                    "thresholded_scores",
                    f"thresholds {found} differ from the requested {sorted(thresholds)} (float equality)",
                )
        elif thresholds is not None:
            raise ResultsError(path, line_no, "thresholded_scores", "missing, but thresholds were requested")
        records.append(record)
    _check_first_line(records, path, numbered[0][0] if numbered else None)
    missing = [ann.annotation_id for ann in annotations if ann.annotation_id not in seen]
    if missing:
        raise ResultsError(
            path, None, "annotation_id", f"{len(missing)} annotations have no line, e.g. {missing[:3]}"
        )
    return records


def _check_first_line(records: Sequence[dict], path: Path, line_no: int | None) -> None:
    """The scorer looks for rationale fields on line 1's first rationale only; a field it cannot see there is
    silently left unscored for the whole file."""
    present = rationale_fields_in(records)
    hidden = sorted(name for name in present if not first_line_detects(records[0], [name]))
    if hidden:
        raise ResultsError(
            path,
            line_no,
            f"rationales[0].{hidden[0]}",
            f"the official scorer decides from this line's first rationale alone whether the file has "
            f"{hidden} (hard spans must be non-empty) and would skip those metrics for every line; put a "
            "line that has them first (write_results does)",
        )


def _check_thresholded(record: dict, labels: set[str], path: Path, line_no: int) -> list[float]:
    for name in SCORE_FIELDS:
        if name not in record:
            raise ResultsError(path, line_no, name, "thresholded_scores requires this field")
    entries = record["thresholded_scores"]
    if not isinstance(entries, list):
        raise ResultsError(path, line_no, "thresholded_scores", "must be a list")
    found = []
    for i, entry in enumerate(entries):
        where = f"thresholded_scores[{i}]"
        if not isinstance(entry, dict) or not _is_number(entry.get("threshold")):
            raise ResultsError(path, line_no, f"{where}.threshold", "each entry needs a numeric threshold")
        for name in SCORE_FIELDS[1:]:
            if name not in entry:
                raise ResultsError(path, line_no, f"{where}.{name}", "missing")
            _check_distribution(entry[name], labels, path, line_no, f"{where}.{name}")
        found.append(float(entry["threshold"]))
    if len(set(found)) != len(found):
        raise ResultsError(path, line_no, "thresholded_scores", f"repeated thresholds {found}")
    return sorted(found)
