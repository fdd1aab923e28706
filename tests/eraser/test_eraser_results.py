"""The ERASER results JSONL: records, writing, and verification errors the official scorer would hit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sgt_nlp.eraser import (
    ERASERSplit,
    ResultsError,
    load_split,
    read_results,
    result_record,
    verify_results,
    write_results,
)
from tests.toy_data import LABELS, write_toy_dataset

THRESHOLDS = (0.1, 0.5)


@pytest.fixture
def split(tmp_path: Path) -> ERASERSplit:
    return load_split(write_toy_dataset(tmp_path / "data"), "train", labels=LABELS)


def records_for(split: ERASERSplit) -> list[dict]:
    records = []
    for ann in split.annotations:
        records.append(
            result_record(
                ann,
                LABELS,
                [0.25, 0.75],
                soft_scores={d: [0.5] * len(split.documents[d]) for d in ann.docids},
                hard_spans={d: [(0, 1)] for d in ann.docids},
                comprehensiveness_probabilities=[0.5, 0.5],
                sufficiency_probabilities=[0.3, 0.7],
                thresholded_probabilities={t: ([0.4, 0.6], [0.2, 0.8]) for t in THRESHOLDS},
                tokens_to_flip=2,
            )
        )
    return records


def test_record_fields_and_only_evidence_docids(split: ERASERSplit) -> None:
    a1, a2, a3 = records_for(split)
    assert a1["annotation_id"] == "a1"
    assert [r["docid"] for r in a1["rationales"]] == ["d1", "d2"]
    assert [r["docid"] for r in a2["rationales"]] == ["d2"]
    assert a3["rationales"] == []  # d3:0 has no evidence, so its document is left out
    assert a1["rationales"][0]["hard_rationale_predictions"] == [{"start_token": 0, "end_token": 1}]
    assert len(a1["rationales"][0]["soft_rationale_predictions"]) == 8
    assert a1["classification"] == "POS"  # argmax of [0.25, 0.75]
    assert a1["classification_scores"] == {"NEG": 0.25, "POS": 0.75}
    assert a1["thresholded_scores"][0] == {
        "threshold": 0.1,
        "comprehensiveness_classification_scores": {"NEG": 0.4, "POS": 0.6},
        "sufficiency_classification_scores": {"NEG": 0.2, "POS": 0.8},
    }
    assert a1["tokens_to_flip"] == 2


def test_minimal_record_leaves_optional_fields_out(split: ERASERSplit) -> None:
    record = result_record(split.annotations[0], LABELS, [0.9, 0.1])
    assert set(record) == {"annotation_id", "rationales", "classification", "classification_scores"}
    assert record["rationales"] == [{"docid": "d1"}, {"docid": "d2"}]


def test_write_read_verify_round_trip(split: ERASERSplit, tmp_path: Path) -> None:
    path = write_results(tmp_path / "out" / "results.jsonl", records_for(split))
    text = path.read_text().splitlines()
    assert (
        len(text) == 3 and '"threshold": 0.1,' in text[0]
    )  # exact float repr, as the scorer compares with ==
    assert read_results(path) == records_for(split)
    verified = verify_results(path, split.annotations, split.documents, labels=LABELS, thresholds=THRESHOLDS)
    assert [r["annotation_id"] for r in verified] == ["a1", "a2", "d3:0"]


def _verify_error(split: ERASERSplit, tmp_path: Path, records: list[dict], **kwargs) -> ResultsError:
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(ResultsError) as info:
        verify_results(path, split.annotations, split.documents, labels=LABELS, **kwargs)
    assert "results.jsonl" in str(info.value)
    return info.value


def test_error_annotation_without_line(split: ERASERSplit, tmp_path: Path) -> None:
    error = _verify_error(split, tmp_path, records_for(split)[:2])
    assert error.field == "annotation_id" and "d3:0" in str(error)


def test_error_duplicate_line(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    error = _verify_error(split, tmp_path, [*records, records[0]])
    assert (error.line, error.field) == (4, "annotation_id") and "duplicate" in str(error)


def test_error_unknown_annotation(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    records[1]["annotation_id"] = "zz"
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (2, "annotation_id")


def test_error_classification_not_a_label(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    records[2]["classification"] = "MAYBE"
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (3, "classification") and "MAYBE" in str(error)


def test_error_scores_over_wrong_labels(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    records[0]["sufficiency_classification_scores"] = {"NEG": 0.5}
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (1, "sufficiency_classification_scores")


def test_error_soft_length(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    records[0]["rationales"][1]["soft_rationale_predictions"].append(0.0)  # d2 has 5 tokens
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (1, "rationales[1].soft_rationale_predictions")
    assert "6 scores" in str(error) and "5 tokens" in str(error)


def test_error_span_past_document(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    records[1]["rationales"][0]["hard_rationale_predictions"] = [{"start_token": 3, "end_token": 6}]
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (2, "rationales[0].hard_rationale_predictions[0]")
    assert "5 tokens" in str(error)


def test_error_overlapping_spans(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    records[0]["rationales"][0]["hard_rationale_predictions"] = [
        {"start_token": 2, "end_token": 5},
        {"start_token": 1, "end_token": 3},
    ]
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (1, "rationales[0].hard_rationale_predictions") and "overlap" in str(
        error
    )


def test_error_document_not_of_annotation(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    records[1]["rationales"][0]["docid"] = "d1"
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (2, "rationales[0].docid")


def test_error_thresholds_differ_between_lines(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    records[2]["thresholded_scores"][1]["threshold"] = 0.5000001
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (3, "thresholded_scores") and "line 1" in str(error)


def test_error_thresholds_differ_from_requested(split: ERASERSplit, tmp_path: Path) -> None:
    error = _verify_error(split, tmp_path, records_for(split), thresholds=(0.01, 0.1, 0.5))
    assert (error.line, error.field) == (1, "thresholded_scores")


def test_error_optional_field_on_some_lines(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    del records[1]["tokens_to_flip"]
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (2, "tokens_to_flip") and "all lines or on none" in str(error)


def test_error_thresholded_without_comprehensiveness(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    for record in records:
        del record["comprehensiveness_classification_scores"]
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (1, "comprehensiveness_classification_scores")


def test_error_invalid_json(split: ERASERSplit, tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(records_for(split)[0]) + "\n[1, 2\n")
    with pytest.raises(ResultsError, match="line 2"):
        verify_results(path, split.annotations, split.documents)


def test_record_rejects_wrong_number_of_probabilities(split: ERASERSplit) -> None:
    with pytest.raises(ValueError, match="3 probabilities for 2 labels"):
        result_record(split.annotations[0], LABELS, [0.2, 0.3, 0.5])


def test_error_rationale_field_on_some_lines(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    del records[1]["rationales"][0]["soft_rationale_predictions"]  # d3:0 lists no rationale: not compared
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (2, "soft_rationale_predictions")


def test_error_classification_without_its_scores(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    del records[1]["classification_scores"]
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (2, "classification_scores") and "go together" in str(error)


def test_error_comprehensiveness_without_classification(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    for record in records:
        for name in ("classification", "classification_scores", "thresholded_scores"):
            del record[name]
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (1, "comprehensiveness_classification_scores")


def test_error_classification_on_some_lines_only(split: ERASERSplit, tmp_path: Path) -> None:
    records = [result_record(ann, LABELS, [0.4, 0.6]) for ann in split.annotations]
    del records[2]["classification"], records[2]["classification_scores"]
    error = _verify_error(split, tmp_path, records)
    assert error.line == 3 and error.field in {"classification", "classification_scores"}
    assert "all lines or on none" in str(error)


def test_error_soft_scores_on_some_documents_of_a_line(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    del records[0]["rationales"][1]["soft_rationale_predictions"]  # a1 lists d1 and d2
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (1, "rationales[1].soft_rationale_predictions")


def test_error_sentence_scores_length(split: ERASERSplit, tmp_path: Path) -> None:
    records = records_for(split)
    for record in records:
        for entry in record["rationales"]:
            entry["soft_sentence_predictions"] = [0.5] * len(split.documents[entry["docid"]].sentences)
    path = write_results(tmp_path / "ok.jsonl", records)
    verify_results(path, split.annotations, split.documents, labels=LABELS)
    records[1]["rationales"][0]["soft_sentence_predictions"].append(0.1)  # d2 has 2 sentences
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (2, "rationales[0].soft_sentence_predictions")
    assert "3 scores" in str(error) and "2 sentences" in str(error)


def test_first_line_must_show_hard_spans_and_writer_puts_such_a_line_first(
    split: ERASERSplit, tmp_path: Path
):
    """The scorer reads line 1's first rationale to decide whether the file has hard predictions at all."""
    records = records_for(split)
    records[0]["rationales"][0]["hard_rationale_predictions"] = []  # a1's first document got no span
    error = _verify_error(split, tmp_path, records)
    assert (error.line, error.field) == (1, "rationales[0].hard_rationale_predictions")
    assert "skip" in str(error)
    path = write_results(tmp_path / "out.jsonl", records)
    written = verify_results(path, split.annotations, split.documents, labels=LABELS)
    assert [r["annotation_id"] for r in written] == ["a1", "a2", "d3:0"]  # a1's d2 entry now leads
    assert [e["docid"] for e in written[0]["rationales"]] == ["d2", "d1"]
    # a line listing no document first (d3:0 has no evidence) is moved behind one that shows the fields
    reordered = write_results(tmp_path / "out2.jsonl", [records_for(split)[2], *records_for(split)[:2]])
    assert [r["annotation_id"] for r in read_results(reordered)] == ["a1", "d3:0", "a2"]
    assert {r["annotation_id"]: r for r in read_results(reordered)} == {
        r["annotation_id"]: r for r in records_for(split)
    }
