"""The synthetic rationale task: valid ERASER data, exact planted rationales, determinism, no frequency
shortcut."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from sgt_nlp.eraser import load_split
from sgt_nlp.synthetic import (
    FREQUENT_WORDS,
    LABELS,
    SyntheticConfig,
    describe,
    find_evidence_phrases,
    generate_split,
    make_synthetic_eraser,
    synthetic_vocabulary,
)

SMALL = {"n_train": 60, "n_val": 20, "n_test": 21}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("templates", ["lexical", "contrastive"])
def test_folder_loads_without_any_skipped_item(tmp_path, templates):
    out = make_synthetic_eraser(tmp_path / "data", seed=1, templates=templates, **SMALL)
    assert out == tmp_path / "data"
    assert len(list((out / "docs").iterdir())) == sum(SMALL.values())
    for split, n in zip(("train", "val", "test"), SMALL.values(), strict=True):
        data = load_split(out, split, labels=LABELS)
        report = data.report
        assert len(data) == n
        assert report.empty_spans_skipped == report.empty_groups_dropped == 0
        assert report.annotations_without_evidence == []
        assert report.sentence_index_minus_one == 0
        assert report.evidence_text_mismatches == 0
        assert report.docids_from_evidences == report.docids_from_annotation_id == 0
        assert report.blank_lines_skipped == 0
        counts = Counter(a.classification for a in data.annotations)
        assert abs(counts["POS"] - counts["NEG"]) <= 1
        for ann in data.annotations:
            doc = data.documents[ann.docids[0]]
            assert ann.query and ann.docids == (ann.annotation_id,)
            for ev in ann.all_evidences:
                sentence = doc.sentences[ev.start_sentence]
                start = doc.sentence_starts[ev.start_sentence]
                assert ev.start_sentence == ev.end_sentence
                assert start <= ev.start_token < ev.end_token <= start + len(sentence)
            # the planted spans are every occurrence of an evidence template, all of the label's class
            found = find_evidence_phrases(doc.tokens, templates)
            assert sorted((e.start_token, e.end_token) for e in ann.all_evidences) == [
                (s, e) for s, e, _ in found
            ]
            assert {label for _, _, label in found} == {ann.classification}
            assert 1 <= len(ann.evidences) <= 3


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    a = _files(make_synthetic_eraser(tmp_path / "a", seed=7, **SMALL))
    b = _files(make_synthetic_eraser(tmp_path / "b", seed=7, **SMALL))
    c = _files(make_synthetic_eraser(tmp_path / "c", seed=8, **SMALL))
    assert a == b
    assert a.keys() == c.keys()
    assert [k for k in a if a[k] != c[k]], "a different seed must change the data"
    assert a["test.jsonl"] != c["test.jsonl"]


def test_test_split_does_not_depend_on_train_size(tmp_path):
    a = make_synthetic_eraser(tmp_path / "a", seed=3, n_train=10, n_val=5, n_test=8)
    b = make_synthetic_eraser(tmp_path / "b", seed=3, n_train=30, n_val=5, n_test=8)
    assert (a / "test.jsonl").read_bytes() == (b / "test.jsonl").read_bytes()


def test_rewrites_its_own_folder_but_never_foreign_data(tmp_path):
    out = make_synthetic_eraser(tmp_path / "d", seed=0, n_train=30, n_val=4, n_test=4)
    make_synthetic_eraser(out, seed=0, n_train=5, n_val=4, n_test=4)
    assert len(list((out / "docs").iterdir())) == 13  # stale documents of the larger run are gone
    config = json.loads((out / "synthetic.json").read_text())
    assert config["n_train"] == 5 and config["generator"] == "sgt_nlp.synthetic"
    foreign = tmp_path / "movies"
    (foreign / "docs").mkdir(parents=True)
    (foreign / "train.jsonl").write_text("")
    with pytest.raises(FileExistsError):
        make_synthetic_eraser(foreign, n_train=2, n_val=2, n_test=2)


def test_lengths_and_documents_follow_the_settings(tmp_path):
    config = SyntheticConfig(seed=4, min_words=40, max_words=120)
    examples = generate_split("train", 200, config)
    lengths = [len(ex.tokens) for ex in examples]
    assert 40 <= min(lengths) and max(lengths) <= 120
    assert max(lengths) - min(lengths) > 40  # actually spread over the range
    for ex in examples:
        assert all(sentence[-1] == "." and len(sentence) >= 2 for sentence in ex.sentences)
        assert ex.document_text().endswith("\n") and "  " not in ex.document_text()


def test_vocabulary_covers_everything_emitted(tmp_path):
    out = make_synthetic_eraser(tmp_path / "v", seed=2, templates="contrastive", **SMALL)
    make_synthetic_eraser(tmp_path / "w", seed=2, templates="lexical", **SMALL)
    emitted = set()
    for folder in (out, tmp_path / "w"):
        for doc in (folder / "docs").iterdir():
            emitted |= set(doc.read_text().split())
        for line in (folder / "train.jsonl").read_text().splitlines():
            emitted |= set(json.loads(line)["query"].split())
    vocabulary = synthetic_vocabulary()
    assert vocabulary == sorted(set(vocabulary))
    assert emitted <= set(vocabulary)
    assert set(synthetic_vocabulary("lexical")) < set(vocabulary)
    assert 150 <= len(vocabulary) <= 400


def test_contrastive_words_are_equally_frequent_in_both_classes():
    """No word-frequency shortcut: each word's mean count per document is the same for POS and NEG."""
    examples = generate_split("train", 3000, SyntheticConfig(seed=5, templates="contrastive"))
    per_class = {label: Counter() for label in LABELS}
    sizes = Counter(ex.label for ex in examples)
    for ex in examples:
        per_class[ex.label].update(ex.tokens)
    template_words = {w for ex in examples for s, e, _ in ex.spans for w in ex.tokens[s:e]}
    for word in template_words | set(FREQUENT_WORDS):
        pos = per_class["POS"][word] / sizes["POS"]
        neg = per_class["NEG"][word] / sizes["NEG"]
        assert abs(pos - neg) < 0.1 * max(pos, neg) + 0.02, (word, pos, neg)


def test_near_misses_exist_and_carry_no_label():
    """Near-miss phrases (template words, no template order) occur in both classes at the same rate."""
    config = SyntheticConfig(seed=6)
    examples = generate_split("train", 1000, config)
    template_words = {"truly", "wonderful", "painfully", "dull"}
    rates = {}
    for label in LABELS:
        docs = [ex for ex in examples if ex.label == label]
        outside = 0
        for ex in docs:
            planted = {i for s, e, _ in ex.spans for i in range(s, e)}
            outside += sum(1 for i, w in enumerate(ex.tokens) if w in template_words and i not in planted)
        rates[label] = outside / len(docs)
    assert rates["POS"] > 0.05 and rates["NEG"] > 0.05
    assert abs(rates["POS"] - rates["NEG"]) < 0.5 * max(rates.values())


def test_label_noise_flips_labels_without_moving_evidence():
    clean = generate_split("train", 400, SyntheticConfig(seed=9))
    noisy = generate_split("train", 400, SyntheticConfig(seed=9, label_noise=0.2))
    flipped = [ex for ex in noisy if ex.label != ex.planted_label]
    assert 40 <= len(flipped) <= 120
    assert all(ex.label == ex.planted_label for ex in clean)
    for ex in noisy:
        assert {label for _, _, label in find_evidence_phrases(ex.tokens)} == {ex.planted_label}


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="templates"):
        SyntheticConfig(templates="nope")
    with pytest.raises(ValueError, match="evidence_per_doc"):
        SyntheticConfig(evidence_per_doc=(0, 2))
    with pytest.raises(ValueError, match="label_noise"):
        SyntheticConfig(label_noise=0.5)
    with pytest.raises(ValueError, match="min_words"):
        SyntheticConfig(min_words=50, max_words=10)


def test_describe_explains_design_and_fairness():
    text = describe(SyntheticConfig(templates="contrastive", n_train=123))
    assert "123" in text and "contrastive" in text
    assert "not rigged" in text and "same" in text
    assert "near-miss" in text
