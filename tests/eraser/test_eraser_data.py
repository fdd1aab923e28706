"""ERASER loading: a hand-built toy folder with every quirk, one test per bad input, and the real Movies
data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sgt_nlp.eraser import (
    ERASERDataError,
    load_documents,
    load_split,
    read_annotations,
    to_hf_dataset,
)
from tests.toy_data import LABELS, toy_records, write_toy_dataset


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    return write_toy_dataset(tmp_path)


def test_toy_split_structure_and_quirks(toy: Path) -> None:
    split = load_split(toy, "train", labels=LABELS)
    a1, a2, a3 = split.annotations
    assert [a.annotation_id for a in split.annotations] == ["a1", "a2", "d3:0"]
    assert a1.docids == ("d1", "d2") and a2.docids == ("d2",) and a3.docids == ("d3",)
    assert [len(g) for g in a1.evidences] == [1, 2]
    assert a1.evidence_docids == ("d1", "d2")
    assert len(a2.evidences) == 1 and a2.all_evidences[0].start_token == 2  # the empty group was dropped
    assert a3.evidences == () and a3.evidence_docids == ()
    assert a1.line == 1 and a3.line == 3
    assert split.documents["d1"].sentences == (("a", "b", "c", "d"), ("e", "f", "g", "h"))
    assert split.documents["d2"].tokens == ("p", "q", "r", "s", "t")  # blank line and empty token dropped
    assert split.documents["d2"].sentence_starts == (0, 3)
    report = split.report
    assert report.annotations == 3 and report.documents == 3
    assert report.evidence_spans == 4  # 3 in a1 + 1 kept in a2
    assert report.empty_spans_skipped == 1 and report.empty_span_annotation_ids == ["a2"]
    assert report.empty_groups_dropped == 1
    assert report.annotations_without_evidence == ["d3:0"]
    assert report.sentence_index_minus_one == 1
    assert report.docids_from_evidences == 1 and report.docids_from_annotation_id == 1
    assert report.blank_lines_skipped == 1
    assert report.evidence_text_mismatches == 0
    assert "1 empty spans" in report.summary()


def test_toy_rationale_masks_and_fraction(toy: Path) -> None:
    split = load_split(toy, "train", labels=LABELS)
    a1, a2, a3 = split.annotations
    assert a1.rationale_mask(split.documents["d1"]).astype(int).tolist() == [0, 1, 1, 0, 0, 1, 0, 0]
    assert a1.rationale_mask(split.documents["d2"]).astype(int).tolist() == [1, 1, 0, 0, 0]
    assert a2.rationale_mask(split.documents["d2"]).astype(int).tolist() == [0, 0, 1, 1, 0]
    # a1: 3 + 2 of 8 + 5 tokens; a2: 2 of 5; d3:0: 0 of 6
    np.testing.assert_allclose(split.rationale_fractions(), [5 / 13, 2 / 5, 0.0])
    assert split.mean_rationale_fraction() == pytest.approx((5 / 13 + 2 / 5 + 0) / 3)


def test_text_mismatch_is_counted(tmp_path: Path) -> None:
    records = toy_records()
    records[0]["evidences"][0][0]["text"] = "not the doc"
    split = load_split(write_toy_dataset(tmp_path, records), "train", labels=LABELS)
    assert split.report.evidence_text_mismatches == 1


def test_labels_default_to_sorted_set(toy: Path) -> None:
    split = load_split(toy, "train")
    assert split.labels == ("NEG", "POS") and split.label_to_id == {"NEG": 0, "POS": 1}


def test_hf_dataset_pair_mode(toy: Path) -> None:
    dataset = to_hf_dataset(load_split(toy, "train", labels=LABELS))
    assert dataset.column_names == [
        "annotation_id",
        "docids",
        "doc_lengths",
        "words",
        "query",
        "query_words",
        "label",
        "rationale_mask",
        "is_document_word",
    ]
    row = dataset[0]
    assert row["words"] == list("abcdefgh") + list("pqrst")
    assert row["doc_lengths"] == [8, 5] and row["docids"] == ["d1", "d2"]
    assert row["rationale_mask"] == [0, 1, 1, 0, 0, 1, 0, 0] + [1, 1, 0, 0, 0]
    assert row["is_document_word"] == [1] * 13
    assert row["query_words"] == ["is", "it", "good", "?"]
    assert dataset["label"] == [1, 0, 0]
    assert dataset.features["label"].names == ["NEG", "POS"]


def test_hf_dataset_append_mode(toy: Path) -> None:
    dataset = to_hf_dataset(load_split(toy, "train", labels=LABELS), query_mode="append", separator="[SEP]")
    row = dataset[1]
    assert row["words"] == ["p", "q", "r", "s", "t", "[SEP]", "is", "it", "good", "?"]
    assert row["rationale_mask"] == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    assert row["is_document_word"] == [1] * 5 + [0] * 5
    assert dataset[2]["words"] == list("xyzwvu")  # empty query: no separator


def test_hf_dataset_rejects_unknown_query_mode(toy: Path) -> None:
    with pytest.raises(ValueError, match="query_mode"):
        to_hf_dataset(load_split(toy, "train"), query_mode="prefix")


def test_docs_jsonl_keeps_empty_tokens(tmp_path: Path) -> None:
    # docs.jsonl is split on '\n' then ' ' with no filtering: "p  q" has an empty middle token (ERASER utils)
    (tmp_path / "docs.jsonl").write_text(json.dumps({"docid": "d", "document": "p  q\nr"}) + "\n")
    docs = load_documents(tmp_path)
    assert docs["d"].tokens == ("p", "", "q", "r")


# ---------------------------------------------------------------------------------------------- errors


def _error(tmp_path: Path, records: list[dict], labels=LABELS) -> ERASERDataError:
    write_toy_dataset(tmp_path, records)
    with pytest.raises(ERASERDataError) as info:
        load_split(tmp_path, "train", labels=labels)
    return info.value


def test_error_missing_document(tmp_path: Path) -> None:
    records = toy_records()
    records[1]["evidences"][1][0]["docid"] = "nope"
    error = _error(tmp_path, records)
    assert error.line == 2 and error.field == "evidences[1][0].docid"
    assert "train.jsonl, line 2, field 'evidences[1][0].docid'" in str(error) and "'nope'" in str(error)


def test_error_missing_document_in_docids(tmp_path: Path) -> None:
    records = toy_records()
    records[1]["docids"] = ["gone"]
    error = _error(tmp_path, records)
    assert (error.line, error.field) == (2, "docids[0]")


def test_error_offset_past_end(tmp_path: Path) -> None:
    records = toy_records()
    records[0]["evidences"][1][0]["end_token"] = 9  # d1 has 8 tokens
    error = _error(tmp_path, records)
    assert (error.line, error.field) == (1, "evidences[1][0].end_token")
    assert "past the end" in str(error) and "8 tokens" in str(error)


def test_error_duplicate_annotation_id(tmp_path: Path) -> None:
    records = toy_records()
    records[2]["annotation_id"] = "a1"
    error = _error(tmp_path, records)
    assert (error.line, error.field) == (3, "annotation_id") and "first on line 1" in str(error)


def test_error_label_not_in_label_set(tmp_path: Path) -> None:
    records = toy_records()
    records[1]["classification"] = "NEUTRAL"
    error = _error(tmp_path, records)
    assert (error.line, error.field) == (2, "classification") and "NEUTRAL" in str(error)


def test_error_invalid_json_names_the_line(tmp_path: Path) -> None:
    write_toy_dataset(tmp_path)
    with (tmp_path / "train.jsonl").open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(ERASERDataError, match=r"train.jsonl, line 5"):
        read_annotations(tmp_path / "train.jsonl")


def test_error_start_after_end(tmp_path: Path) -> None:
    records = toy_records()
    records[0]["evidences"][0][0].update(start_token=3, end_token=2)
    error = _error(tmp_path, records)
    assert (error.line, error.field) == (1, "evidences[0][0].end_token")


def test_error_both_document_sources(toy: Path) -> None:
    (toy / "docs.jsonl").write_text("")
    with pytest.raises(ERASERDataError, match="both docs/ and docs.jsonl"):
        load_split(toy, "train")


def test_error_unknown_docid_in_load_documents(toy: Path) -> None:
    with pytest.raises(ERASERDataError, match="'zz' does not exist"):
        load_documents(toy, ["zz"])


# ---------------------------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def movies(movies_dir):
    return {split: load_split(movies_dir, split, labels=LABELS) for split in ("train", "val", "test")}


def test_movies_counts_and_quirks(movies) -> None:
    train, val, test = movies["train"], movies["val"], movies["test"]
    assert (len(train), len(val), len(test)) == (1600, 200, 199)  # SOURCE.md
    labels = {
        name: np.bincount([split.label_to_id[a.classification] for a in split.annotations]).tolist()
        for name, split in movies.items()
    }
    assert labels == {"train": [800, 800], "val": [100, 100], "test": [100, 99]}
    assert train.report.evidence_spans == 13878 and val.report.evidence_spans == 1517
    assert test.report.empty_spans_skipped == 20 and test.report.evidence_spans == 2067 - 20
    assert "negR_902.txt" in test.report.empty_span_annotation_ids
    assert test.report.sentence_index_minus_one == 2067  # comprehensive test rationales are token level only
    assert train.report.annotations_without_evidence == ["posR_161.txt"]
    assert train.annotations[[a.annotation_id for a in train.annotations].index("posR_161.txt")].docids == (
        "posR_161.txt",
    )
    assert all(s.report.evidence_text_mismatches == 0 for s in movies.values())
    assert test.report.docids_from_evidences == 199  # test has docids: null


def test_movies_rationale_fractions(movies) -> None:
    # SOURCE.md: rationale share of tokens train 9.3 %, val 7.2 %, test 31.4 %; REFERENCE §2.1: train 0.0935
    assert movies["train"].mean_rationale_fraction() == pytest.approx(0.0935, abs=5e-4)
    assert movies["val"].mean_rationale_fraction() == pytest.approx(0.072, abs=5e-4)
    assert movies["test"].mean_rationale_fraction() == pytest.approx(0.314, abs=5e-4)
    lengths = [len(doc) for doc in movies["train"].documents.values()]
    # REFERENCE §2.1 quotes 773.6 from the ERASER notebook; the 1600 train documents measure 773.29 here
    assert np.mean(lengths) == pytest.approx(773.29, abs=0.01)
    assert np.mean([len(d.sentences) for d in movies["train"].documents.values()]) == pytest.approx(
        36.8, abs=0.05
    )
