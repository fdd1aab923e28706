"""Long documents: head / tail / head_tail truncation, the same in training, evaluation, explain and
sanity."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sgt_nlp.eraser import align_words, encode_words, load_split, select_kept_words, to_hf_dataset
from sgt_nlp.evaluation import BatchEvaluator, EvaluationConfig, evaluate_folder
from sgt_nlp.explainers import EXPLAINERS
from sgt_nlp.explainers.random import Random
from sgt_nlp.finetune_data import DataArguments, load_raw_splits, tokenize_splits
from tests import tiny

MODES = ("head", "tail", "head_tail")

# ---- the pure selection ------------------------------------------------------------------------------------

COUNTS = [1, 2, 1, 3, 1, 1, 2, 1]  # 12 pieces


@pytest.mark.parametrize(
    "budget,mode,expected",
    [
        # head: every word whose first piece starts before the budget (starts 0,1,3,4,7,...): word 3 is cut
        # after its 2nd piece, as the tokenizer's own truncation does.
        (6, "head", [0, 1, 2, 3]),
        (7, "head", [0, 1, 2, 3]),
        # tail: whole words from the end while they fit: 1 + 2 + 1 + 1 = 5, word 3 (3 pieces) would make
        # 8 > 7.
        (7, "tail", [4, 5, 6, 7]),
        (8, "tail", [3, 4, 5, 6, 7]),
        # head_tail: head budget round(7 / 4) = 2 -> word 0 (word 1 would make 3); the tail gets 7 - 1 = 6.
        (7, "head_tail", [0, 4, 5, 6, 7]),
        # round(9 / 4) = 2 -> word 0; the tail gets 8 = 1 + 2 + 1 + 1 + 3.
        (9, "head_tail", [0, 3, 4, 5, 6, 7]),
        # round(12.0 / 4) would be 3 but the document fits: kept whole in every mode.
        (12, "tail", list(range(8))),
        (12, "head_tail", list(range(8))),
    ],
)
def test_select_kept_words_by_hand(budget, mode, expected):
    kept = select_kept_words(COUNTS, budget, mode)
    assert kept == expected
    if mode != "head":  # whole words only: the kept pieces fit in the budget
        assert sum(COUNTS[i] for i in kept) <= budget


def test_head_tail_uses_a_quarter_of_the_budget_for_the_head():
    # Sun et al. (2019): 510 pieces -> 128 head + 382 tail with one piece per word.
    kept = select_kept_words([1] * 1000, 510, "head_tail")
    assert kept == list(range(128)) + list(range(1000 - 382, 1000))


def test_words_without_pieces():
    # head: a zero-piece word after the cut is cut (a later word has pieces) ...
    assert select_kept_words([1, 0, 2, 0, 0], 1, "head") == [0]
    # ... but trailing zero-piece words after the last piece-bearing word are not truncation.
    assert select_kept_words([1, 3, 0], 2, "head") == [0, 1, 2]
    # tail/head_tail: zero-piece words cost nothing inside a kept run
    assert select_kept_words([2, 2, 0, 1], 1, "tail") == [2, 3]
    assert select_kept_words([1, 0, 3, 3, 1], 4, "head_tail") == [0, 1, 4]


def test_bad_selection_arguments():
    with pytest.raises(ValueError, match="truncation='middle' is not one of: head, tail, head_tail"):
        select_kept_words([1], 1, "middle")
    with pytest.raises(ValueError, match="budget"):
        select_kept_words([1], -1, "tail")


# ---- alignment: word_ids follow the kept words -------------------------------------------------------------

WORDS = ["the", "movies", "plays", "good", "film"]  # pieces: 1, 2 (movie ##s), 2 (play ##s), 1, 1
MASK = [0, 1, 1, 0, 1]


@pytest.mark.parametrize(
    "mode,pieces,word_index,kept,rationale_cut",
    [
        # max_length 6 -> budget 4 (2 special tokens)
        ("head", ["the", "movie", "##s", "play"], [0, 1, 1, 2], [0, 1, 2], 1),
        ("tail", ["play", "##s", "good", "film"], [2, 2, 3, 4], [2, 3, 4], 1),
        # head budget round(4 / 4) = 1: "the"; the tail gets 3: "film", "good" ("plays" would make 4 > 3)
        ("head_tail", ["the", "good", "film"], [0, 3, 4], [0, 3, 4], 2),
    ],
)
def test_alignment_follows_the_kept_words(mode, pieces, word_index, kept, rationale_cut):
    tokenizer = tiny.wordpiece_tokenizer()
    alignment = align_words(tokenizer, [WORDS], max_length=6, rationale_masks=[MASK], truncation=mode)
    tokens = tokenizer.convert_ids_to_tokens(alignment.encoding["input_ids"][0])
    assert tokens[1 : 1 + len(pieces)] == pieces
    assert alignment.word_index[0].tolist()[1 : 1 + len(pieces)] == word_index
    assert alignment.kept_words == [kept] and alignment.words_kept == [len(kept)]
    assert alignment.word_mask()[0].tolist() == [i in kept for i in range(5)]
    report = alignment.truncation
    assert (report.words_truncated, report.rationale_words_truncated) == (5 - len(kept), rationale_cut)
    # word scores sit at the original word positions; dropped words get the fill value
    scores = torch.arange(alignment.word_index.numel(), dtype=torch.float32).reshape(
        alignment.word_index.shape
    )
    words = alignment.aggregate(scores, "first", fill_value=-1.0)[0].tolist()
    assert [i for i, v in enumerate(words) if v != -1.0] == kept


def test_a_rationale_in_the_tail_is_seen_under_tail_and_head_tail_only():
    tokenizer = tiny.wordpiece_tokenizer()
    tail_rationale = [[0, 0, 0, 0, 1]]  # "film", the last word
    cut = {
        mode: align_words(
            tokenizer, [WORDS], max_length=6, rationale_masks=tail_rationale, truncation=mode
        ).truncation.rationale_words_truncated
        for mode in MODES
    }
    assert cut == {"head": 1, "tail": 0, "head_tail": 0}


@pytest.mark.parametrize("family", ["bert", "roberta"])
@pytest.mark.parametrize("mode", MODES)
def test_the_query_is_never_cut_and_the_budget_counts_it(family, mode):
    tokenizer = tiny.tokenizer_for(family)
    words = (tiny.WORDS * 2)[:40]
    query = ["is", "it", "fun"]
    alignment = align_words(tokenizer, [words], [query], max_length=24, truncation=mode)
    ids = alignment.encoding["input_ids"][0].tolist()
    query_ids = tokenizer(query, is_split_into_words=True, add_special_tokens=False)["input_ids"]
    assert ids[-1 - len(query_ids) : -1] == query_ids  # the whole query, before the closing special token
    budget = 24 - tokenizer.num_special_tokens_to_add(pair=True) - len(query_ids)
    document_pieces = int((alignment.word_index[0] >= 0).sum())
    longest_word = max(
        len(tokenizer([w], is_split_into_words=True, add_special_tokens=False)["input_ids"]) for w in words
    )
    assert budget - longest_word < document_pieces <= budget
    if mode != "head":
        assert alignment.kept_words[0][-1] == len(words) - 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("max_length", [10, 13, 30, 200])
def test_encoding_the_kept_words_again_keeps_them_all(mode, max_length):
    """What makes evaluation's perturbations consistent: the seen words re-encoded are the same input."""
    tokenizer = tiny.bpe_tokenizer()
    words = [(tiny.WORDS * 3)[:n] for n in (3, 25, 90)]
    query = [["is", "it", "fun"]] * 3
    first, kept = encode_words(tokenizer, words, query, max_length, mode)
    seen = [[w[i] for i in k] for w, k in zip(words, kept, strict=True)]
    again, kept_again = encode_words(tokenizer, seen, query, max_length, mode)
    assert kept_again == [list(range(len(s))) for s in seen]
    assert again["input_ids"] == first["input_ids"]


@pytest.mark.parametrize("mode", MODES)
def test_choosing_the_kept_words_raises_no_too_long_warning(mode, caplog):
    """Counting a whole document's pieces is not feeding it to the model: the tokenizer's "longer than the
    maximum sequence length ... indexing errors" warning, printed for every long review, would be false."""
    from transformers.utils import logging as hf_logging

    tokenizer = copy.deepcopy(tiny.wordpiece_tokenizer())  # its own: the warning is given once per tokenizer
    tokenizer.model_max_length = 32
    hf_logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            _, kept = encode_words(tokenizer, [["the", "movies", "plays"] * 30], None, 32, mode)
    finally:
        hf_logging.disable_propagation()
    assert len(kept[0]) < 90  # the document was cut
    assert not [r for r in caplog.records if "maximum sequence length" in r.getMessage()]


def test_head_is_the_tokenizers_own_truncation():
    tokenizer = tiny.wordpiece_tokenizer()
    words = [(["the", "movies", "plays"] * 20)[:n] for n in (5, 31, 60)]
    query = [["is", "it", "fun"]] * 3
    for max_length in (9, 16, 40, 128):
        encoding, _ = encode_words(tokenizer, words, query, max_length, "head")
        reference = tokenizer(
            words, query, is_split_into_words=True, truncation="only_first", max_length=max_length
        )
        assert encoding["input_ids"] == reference["input_ids"]


# ---- a hand-built ERASER folder: 20 distinct one-piece words, rationale at the start and near the end ------

DOC = [
    "the",
    "a",
    "an",
    "is",
    "was",
    "and",
    "but",
    "not",
    "very",
    "good",
    "great",
    "bad",
    "awful",
    "movie",
    "film",
    "plot",
    "actor",
    "story",
    "boring",
    "fun",
]
SHORT = ["the", "movie", "was", "good"]
QUERY = "what is the sentiment ?"  # 5 pieces ("what", "sentiment", "?" are [UNK])
# max_length 18 = 3 special + 5 query + a budget of 10 document pieces (of 20)
MAX_LENGTH = 18
KEPT = {
    "head": list(range(10)),
    "tail": list(range(10, 20)),
    "head_tail": [0, 1, *range(12, 20)],  # head round(10 / 4) = 2 pieces, tail 8
}
RATIONALE = {0, 14, 15, 16, 17}  # "the", "film plot actor story"


def _evidence(docid, words, start, end):
    return {
        "docid": docid,
        "start_token": start,
        "end_token": end,
        "start_sentence": 0,
        "end_sentence": 1,
        "text": " ".join(words[start:end]),
    }


def write_long_eraser(folder: Path) -> Path:
    (folder / "docs").mkdir(parents=True)
    for split in ("train", "val"):
        (folder / "docs" / f"{split}_long").write_text(" ".join(DOC) + "\n")
        (folder / "docs" / f"{split}_short").write_text(" ".join(SHORT) + "\n")
        rows = [
            {
                "annotation_id": f"{split}_long",
                "classification": "POS",
                "query": QUERY,
                "query_type": None,
                "evidences": [
                    [_evidence(f"{split}_long", DOC, 0, 1)],
                    [_evidence(f"{split}_long", DOC, 14, 18)],
                ],
            },
            {
                "annotation_id": f"{split}_short",
                "classification": "NEG",
                "query": QUERY,
                "query_type": None,
                "evidences": [[_evidence(f"{split}_short", SHORT, 3, 4)]],
            },
        ]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def long_data(tmp_path_factory):
    return write_long_eraser(tmp_path_factory.mktemp("long_eraser"))


class PositionScores(Random):
    """Test explainer: piece ``t`` scores ``t``, so the top words are the last seen ones (hand-computable)."""

    name = "position"

    def _attribute(self, inputs, target, mask):
        logits, target = self._predict(inputs, target)
        batch, length = inputs["input_ids"].shape
        scores = torch.arange(1, length + 1, dtype=torch.float32).expand(batch, length).clone()
        return scores.to(mask.device), logits, target, {}


@pytest.mark.parametrize("mode", MODES)
def test_long_document_kept_words_in_the_alignment(mode, long_data):
    split = load_split(long_data, "val")
    row = to_hf_dataset(split)[0]
    assert [i for i, v in enumerate(row["rationale_mask"]) if v] == sorted(RATIONALE)
    alignment = align_words(
        tiny.wordpiece_tokenizer(),
        [row["words"]],
        [row["query_words"]],
        MAX_LENGTH,
        rationale_masks=[row["rationale_mask"]],
        truncation=mode,
    )
    assert alignment.kept_words == [KEPT[mode]]
    assert len(alignment.encoding["input_ids"][0]) == MAX_LENGTH
    assert alignment.truncation.rationale_words_truncated == len(RATIONALE - set(KEPT[mode]))


@pytest.mark.parametrize("mode", MODES)
def test_training_encodes_exactly_what_evaluation_sees(mode, long_data):
    tokenizer = tiny.wordpiece_tokenizer()
    data = DataArguments(data_dir=str(long_data), truncation=mode)
    train_raw, validation_raw, labels = load_raw_splits(data)
    train, validation = tokenize_splits(train_raw, validation_raw, labels, tokenizer, data, MAX_LENGTH)
    rows = to_hf_dataset(load_split(long_data, "val", labels=labels))
    alignment = align_words(tokenizer, rows["words"], rows["query_words"], MAX_LENGTH, truncation=mode)
    for b in range(len(rows)):
        real = alignment.encoding["attention_mask"][b].bool()
        assert validation[b]["input_ids"] == alignment.encoding["input_ids"][b][real].tolist()
    kept_long = tokenizer.convert_ids_to_tokens(validation[0]["input_ids"])[1:11]
    assert kept_long == [DOC[i] for i in KEPT[mode]]


def test_training_rejects_an_unknown_truncation(long_data):
    with pytest.raises(ValueError, match="truncation='middle' is not one of"):
        DataArguments(data_dir=str(long_data), truncation="middle")


@pytest.mark.parametrize(
    "mode,token_prf",
    [
        # threshold 0.4 of 10 seen words -> the top 4 = the last 4 seen words (position scores)
        ("head", (0.0, 0.0)),  # predicted 6..9, seen gold {0}
        ("tail", (2 / 4, 2 / 4)),  # predicted 16..19, seen gold 14..17
        ("head_tail", (2 / 4, 2 / 5)),  # predicted 16..19, seen gold {0, 14..17}
    ],
)
def test_evaluation_scores_the_seen_words_of_each_mode(
    mode, token_prf, tmp_path, model_dir, long_data, monkeypatch
):
    monkeypatch.setitem(EXPLAINERS, "position", PositionScores)
    perturbed: list[list[str]] = []
    real_probabilities = BatchEvaluator.probabilities

    def spy(self, word_lists, query_lists):
        perturbed.extend(list(w) for w in word_lists)
        return real_probabilities(self, word_lists, query_lists)

    monkeypatch.setattr(BatchEvaluator, "probabilities", spy)
    out = tmp_path / mode
    config = EvaluationConfig(
        model=str(model_dir),
        data_dir=str(long_data),
        output_dir=str(out),
        split="val",
        methods=("position",),
        max_length=MAX_LENGTH,
        truncation=mode,
        threshold=0.4,
        batch_size=2,
    )
    evaluate_folder(config)
    run = json.loads((out / "run.json").read_text())
    assert run["truncation_mode"] == mode
    assert run["truncation"] == {
        "examples": 2,
        "examples_truncated": 1,
        "words": 24,
        "words_truncated": 10,
        "rationale_words": 6,
        "rationale_words_truncated": len(RATIONALE - set(KEPT[mode])),
    }
    scores = json.loads((out / "position" / "scores.json").read_text())
    assert scores["evaluation_settings"]["truncation"] == mode
    # the long example's hard rationale: the last 4 seen words, in document positions
    records = {
        json.loads(x)["annotation_id"]: json.loads(x)
        for x in (out / "position" / "results.jsonl").read_text().splitlines()
    }
    spans = records["val_long"]["rationales"][0]["hard_rationale_predictions"]
    top4 = KEPT[mode][-4:]
    assert [(s["start_token"], s["end_token"]) for s in spans] == [(top4[0], top4[-1] + 1)]
    # seen-word token P/R over the long example (key 1) and the short one (gold "good" is its last word: P 1/2
    # of round(0.4 * 4) = 2 predicted, R 1/1); instance_macro averages the two
    p_long, r_long = token_prf
    macro = scores["visible_only"]["token_prf"]["instance_macro"]
    assert macro["p"] == pytest.approx((p_long + 0.5) / 2)
    assert macro["r"] == pytest.approx((r_long + 1.0) / 2)
    f1 = lambda p, r: 2 * p * r / (p + r) if p + r else 0.0  # noqa: E731
    assert macro["f1"] == pytest.approx((f1(p_long, r_long) + f1(0.5, 1.0)) / 2)
    # soft scores: the dropped words rank below every seen word
    soft = np.asarray(records["val_long"]["rationales"][0]["soft_rationale_predictions"])
    unseen = [i for i in range(20) if i not in KEPT[mode]]
    assert soft[unseen].max() < soft[KEPT[mode]].min()
    # every perturbed input is made of the long document's seen words only, in order (none let back in)
    seen = [DOC[i] for i in KEPT[mode]]
    long_inputs = [w for w in perturbed if set(w) - set(SHORT)]
    assert long_inputs
    for words in long_inputs:
        assert [w for w in seen if w in words] == words
    # examples.jsonl shows the seen words with their rationale
    shown = json.loads((out / "examples.jsonl").read_text().splitlines()[0])
    assert shown["words"] == seen
    assert shown["rationale"] == [int(i in RATIONALE) for i in KEPT[mode]]


def test_evaluate_and_sanity_parsers_take_the_truncation():
    from sgt_nlp.evaluation import config_from_args
    from sgt_nlp.sanity.cli import make_parser

    config = config_from_args(
        ["--model", "m", "--data_dir", "d", "--output_dir", "o", "--truncation", "head_tail"]
    )
    assert config.truncation == "head_tail"
    assert EvaluationConfig(model="m", data_dir="d", output_dir="o").truncation == "head"
    with pytest.raises(ValueError, match="truncation='middle'"):
        EvaluationConfig(model="m", data_dir="d", output_dir="o", truncation="middle")
    args = make_parser().parse_args(
        ["--model", "m", "--data_dir", "d", "--output_dir", "o", "--truncation", "tail"]
    )
    assert args.truncation == "tail"


@pytest.mark.parametrize("mode", MODES)
def test_sanity_batches_match_the_evaluation_encoding(mode, long_data):
    from sgt_nlp.sanity import encode_batches

    tokenizer = tiny.wordpiece_tokenizer()
    rows = to_hf_dataset(load_split(long_data, "val"))
    (batch,) = encode_batches(tokenizer, rows["words"], rows["query_words"], MAX_LENGTH, 4, mode)
    alignment = align_words(tokenizer, rows["words"], rows["query_words"], MAX_LENGTH, truncation=mode)
    assert torch.equal(batch["input_ids"], alignment.encoding["input_ids"])


def test_explain_shows_the_seen_words(model_dir):
    from sgt_nlp.explain import explain_texts

    text = " ".join(DOC)
    # max_length 12 = 2 special + 10 pieces
    results = {
        mode: explain_texts(str(model_dir), [text], max_length=12, truncation=mode)[0] for mode in MODES
    }
    for mode, result in results.items():
        assert result["words"] == [DOC[i] for i in KEPT[mode]]
        assert len(result["scores"]) == 10 and result["truncated_words"] == 10


@pytest.mark.parametrize("mode", MODES)
def test_csv_text_is_cut_like_word_lists(mode):
    import datasets

    tokenizer = tiny.wordpiece_tokenizer()
    texts = [" ".join(DOC), "the movies plays good film"]
    raw = datasets.Dataset.from_dict({"text": texts, "label": ["pos", "neg"]})
    data = DataArguments(train_file="unused.csv", truncation=mode)
    train, _ = tokenize_splits(raw, None, ["neg", "pos"], tokenizer, data, max_length=12)
    if mode == "head":  # today's encoding of the raw text
        expected = tokenizer(texts, truncation=True, max_length=12)["input_ids"]
    else:
        expected = encode_words(tokenizer, [t.split() for t in texts], None, 12, mode)[0]["input_ids"]
    assert train["input_ids"] == expected
    assert tokenizer.convert_ids_to_tokens(train[0]["input_ids"])[1:-1] == [DOC[i] for i in KEPT[mode]]


def test_the_model_card_records_the_truncation(tmp_path, model_dir, long_data):
    from sgt_nlp.finetune import main

    out = tmp_path / "out"
    main(
        [
            "--model_name_or_path",
            str(model_dir),
            "--data_dir",
            str(long_data),
            "--output_dir",
            str(out),
            "--max_length",
            str(MAX_LENGTH),
            "--truncation",
            "head_tail",
            "--num_train_epochs",
            "1",
            "--per_device_train_batch_size",
            "2",
            "--report_to",
            "none",
            "--use_cpu",
            "--save_strategy",
            "no",
            "--sgt_mask_selection",
            "random",
            "--disable_tqdm",
            "true",
        ]
    )
    card = (out / "README.md").read_text()
    assert "| `truncation` | `head_tail` |" in card
    assert "| `sgt_mask_selection` | `random` |" in card
