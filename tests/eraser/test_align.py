"""Words ↔ word pieces: piece-to-word aggregation, query pairs, truncation report; WordPiece and byte-level
BPE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgt_nlp.eraser import align_words, load_split
from tests import tiny
from tests.toy_data import LABELS

WORDS = ["the", "movies", "plays", "good", "film"]
MASK = [0, 1, 1, 0, 1]


def piece_scores(alignment) -> torch.Tensor:
    """Score of piece t = t + 1 (so every piece is distinguishable and the sums are easy to do by hand)."""
    shape = alignment.word_index.shape
    return torch.arange(1, shape[0] * shape[1] + 1, dtype=torch.float32).reshape(shape)


def test_wordpiece_word_map_and_aggregations() -> None:
    tokenizer = tiny.wordpiece_tokenizer()
    alignment = align_words(tokenizer, [WORDS], max_length=32)
    pieces = tokenizer.convert_ids_to_tokens(alignment.encoding["input_ids"][0])
    assert pieces == ["[CLS]", "the", "movie", "##s", "play", "##s", "good", "film", "[SEP]"]
    assert alignment.word_index[0].tolist() == [-1, 0, 1, 1, 2, 2, 3, 4, -1]
    scores = piece_scores(alignment)  # [CLS]=1, the=2, movie=3, ##s=4, play=5, ##s=6, good=7, film=8, [SEP]=9
    assert alignment.aggregate(scores, "first")[0].tolist() == [2, 3, 5, 7, 8]
    assert alignment.aggregate(scores, "sum")[0].tolist() == [2, 3 + 4, 5 + 6, 7, 8]
    assert alignment.aggregate(scores, "max")[0].tolist() == [2, 4, 6, 7, 8]
    assert alignment.aggregate(scores, "mean")[0].tolist() == [2, 3.5, 5.5, 7, 8]
    assert alignment.first_piece_mask()[0].tolist() == [
        False,
        True,
        True,
        False,
        True,
        False,
        True,
        True,
        False,
    ]
    assert alignment.truncation.words_truncated == 0


def test_bpe_word_map_and_aggregations() -> None:
    tokenizer = tiny.bpe_tokenizer()
    alignment = align_words(tokenizer, [["the", "good", "fun"]], max_length=32)
    pieces = tokenizer.convert_ids_to_tokens(alignment.encoding["input_ids"][0])
    assert pieces == ["<s>", "Ġth", "e", "Ġg", "o", "o", "d", "Ġfun", "</s>"]
    assert alignment.word_index[0].tolist() == [-1, 0, 0, 1, 1, 1, 1, 2, -1]
    scores = piece_scores(alignment)  # <s>=1, Ġth=2, e=3, Ġg=4, o=5, o=6, d=7, Ġfun=8, </s>=9
    assert alignment.aggregate(scores, "first")[0].tolist() == [2, 4, 8]
    assert alignment.aggregate(scores, "sum")[0].tolist() == [2 + 3, 4 + 5 + 6 + 7, 8]
    assert alignment.aggregate(scores, "max")[0].tolist() == [3, 7, 8]
    assert alignment.aggregate(scores, "mean")[0].tolist() == [2.5, 5.5, 8]


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_query_pieces_are_not_document_words(family: str) -> None:
    tokenizer = tiny.tokenizer_for(family)
    alignment = align_words(tokenizer, [WORDS], [["is", "it", "fun"]], max_length=64)
    encoding = tokenizer([WORDS], [["is", "it", "fun"]], is_split_into_words=True)
    sequence_ids = encoding.sequence_ids(0)
    index = alignment.word_index[0].tolist()
    assert all(i == -1 for i, s in zip(index, sequence_ids, strict=True) if s != 0)
    assert sorted(set(index) - {-1}) == [0, 1, 2, 3, 4]


def test_truncation_report_counts_words_and_rationale_words() -> None:
    tokenizer = tiny.wordpiece_tokenizer()
    # max_length 6: [CLS] the movie ##s play [SEP]; "plays" keeps its first piece, "good" and "film" are cut,
    # and "film" is a human-rationale word. Example 2 ("bad film") fits.
    alignment = align_words(tokenizer, [WORDS, ["bad", "film"]], max_length=6, rationale_masks=[MASK, [1, 0]])
    assert alignment.words_kept == [3, 2] and alignment.num_words == [5, 2]
    report = alignment.truncation
    assert (report.examples, report.examples_truncated) == (2, 1)
    assert (report.words, report.words_truncated) == (7, 2)
    assert (report.rationale_words, report.rationale_words_truncated) == (4, 1)
    assert report.word_fraction_truncated == pytest.approx(2 / 7)
    assert report.rationale_fraction_truncated == pytest.approx(1 / 4)
    assert "1/4 human-rationale words" in report.summary()
    word_scores = alignment.aggregate(piece_scores(alignment), "first", fill_value=-1.0)
    assert word_scores[0].tolist() == [2, 3, 5, -1, -1]  # truncated words get the fill value
    assert word_scores[1].tolist() == [8, 9, -1, -1, -1]  # padding words too
    assert alignment.word_mask().tolist() == [
        [True, True, True, False, False],
        [True, True, False, False, False],
    ]
    as_lists = alignment.aggregate_to_lists(piece_scores(alignment))
    assert [a.tolist() for a in as_lists] == [[2, 3, 5, 0, 0], [8, 9]]


def test_query_is_kept_and_document_truncated_with_bpe() -> None:
    tokenizer = tiny.bpe_tokenizer()
    # <s> + doc + </s></s> + query "fun" (1 piece) + </s> = 4 special + 1 query pieces: 11 leaves 6 doc
    # pieces, "the"(2) "good"(4) -> "fun" (3rd word) is cut.
    alignment = align_words(
        tokenizer, [["the", "good", "fun"]], [["fun"]], max_length=11, rationale_masks=[[0, 0, 1]]
    )
    assert alignment.words_kept == [3 - 1]
    assert alignment.truncation.rationale_words_truncated == 1
    assert tokenizer.convert_ids_to_tokens(alignment.encoding["input_ids"][0])[-2:] == ["Ġfun", "</s>"]


def test_query_too_long_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no room for document words"):
        align_words(tiny.bpe_tokenizer(), [["the"]], [["the", "good", "fun"] * 4], max_length=10)


def test_scores_do_not_depend_on_padding_or_batch() -> None:
    tokenizer = tiny.wordpiece_tokenizer()
    alone = align_words(tokenizer, [WORDS])
    batched = align_words(tokenizer, [["bad"], WORDS])
    # give every piece the score of its token id, so the same word gets the same score wherever it sits
    ids_alone = alone.encoding["input_ids"].float()
    ids_batched = batched.encoding["input_ids"].float()
    for how in ("first", "sum", "max", "mean"):
        expected = alone.aggregate(ids_alone, how)[0]
        assert torch.equal(batched.aggregate(ids_batched, how)[1], expected)


def test_aggregate_is_differentiable_and_validates() -> None:
    alignment = align_words(tiny.wordpiece_tokenizer(), [WORDS])
    scores = torch.rand(alignment.word_index.shape, requires_grad=True)
    alignment.aggregate(scores, "mean").sum().backward()
    # each piece of a 2-piece word contributes 1/2, special tokens nothing
    assert scores.grad[0].tolist() == [0, 1, 0.5, 0.5, 0.5, 0.5, 1, 1, 0]
    with pytest.raises(ValueError, match="unknown aggregation"):
        alignment.aggregate(scores, "median")
    with pytest.raises(ValueError, match="shape"):
        alignment.aggregate(scores[:, :3], "first")
    with pytest.raises(ValueError, match="rationale mask"):
        align_words(tiny.wordpiece_tokenizer(), [WORDS], rationale_masks=[[1, 0]])


# ---------------------------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def movies_test(movies_dir):
    return load_split(movies_dir, "test", labels=LABELS)


def _movie_rows(split):
    words, masks = [], []
    for ann in split.annotations:
        doc = split.documents[ann.docids[0]]
        words.append(list(doc.tokens))
        masks.append(ann.rationale_mask(doc).astype(int).tolist())
    return words, masks


def test_movies_truncation_with_one_piece_per_word(movies_test) -> None:
    """With a word-level vocabulary every word is one piece, so at 512 exactly min(n, 510) words fit."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words, masks = _movie_rows(movies_test)
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    for doc in words:
        for word in doc:
            vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    alignment = align_words(tokenizer, words, max_length=512, rationale_masks=masks)
    lengths = np.array([len(w) for w in words])
    assert alignment.words_kept == np.minimum(lengths, 510).tolist()
    report = alignment.truncation
    assert report.words == lengths.sum()
    assert report.words_truncated == np.maximum(lengths - 510, 0).sum()
    assert report.rationale_words_truncated == sum(int(np.sum(m[510:])) for m in masks)
    assert report.examples_truncated == int(np.sum(lengths > 510))
    assert report.words_without_pieces == 0
    print(report.summary())
    # first = sum = max = mean when each word is one piece
    scores = torch.randn(alignment.word_index.shape)
    first = alignment.aggregate(scores, "first")
    for how in ("sum", "max", "mean"):
        assert torch.allclose(alignment.aggregate(scores, how), first)


def test_movies_truncation_with_trained_wordpiece(movies_test) -> None:
    """A WordPiece vocabulary (2,000 entries) trained on the test documents splits words the BERT way."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    words, masks = _movie_rows(movies_test)
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=2000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False
    )
    backend.train_from_iterator((" ".join(w) for w in words), trainer=trainer)
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    alignment = align_words(
        tokenizer, words, [["what", "is", "the", "sentiment", "?"]] * len(words), 512, masks
    )
    report = alignment.truncation
    lengths = np.array([len(w) for w in words])
    # independent count: words beyond the last word that has a piece in the encoding
    kept = [int(row[row >= 0].max()) + 1 for row in alignment.word_index]
    assert alignment.words_kept == kept
    assert report.words_truncated == int(np.sum(lengths - np.array(kept)))
    assert report.rationale_words_truncated == sum(
        int(np.sum(m[k:])) for m, k in zip(masks, kept, strict=True)
    )
    # SOURCE.md: docs average 774 words, so most exceed 512 pieces; 1 + 5 + 2 special/query pieces
    # -> <= 504 words
    assert report.examples_truncated > 0.8 * len(words)
    assert max(kept) <= 504
    # measured here: 186/199 documents truncated, 57.5 % of words and 67.4 % of human-rationale words cut
    # (the comprehensive test rationales sit more often in the second half of a review)
    assert 0.5 < report.word_fraction_truncated < 0.65
    assert 0.6 < report.rationale_fraction_truncated < 0.75
