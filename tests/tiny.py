"""Tiny tokenizers and models built from configs, shared by the tests (no model hub, no network)."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import torch
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForSequenceClassification,
)

WORDS = (
    "the a an is was and but not very good great bad awful movie film plot actor story boring fun "
    "loved hated best worst wonderful terrible it this that i we they saw watched really quite so "
    "ending music scene scenes character characters funny sad slow fast long short play played"
).split()

FAMILIES = ("bert", "roberta", "distilbert", "albert", "electra", "deberta-v2")


@functools.cache
def wordpiece_tokenizer() -> BertTokenizerFast:
    """A WordPiece tokenizer over WORDS plus a few suffix pieces, written to a temporary vocab file."""
    folder = Path(tempfile.mkdtemp(prefix="sgt_vocab_"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ed", "##ing", "##ly"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab=str(folder / "vocab.txt"))


@functools.cache
def bpe_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (RoBERTa style) trained on a sentence of WORDS."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    corpus = [" ".join(WORDS)] * 4 + ["the movie was good", "the film was bad and boring"]
    bpe.train_from_iterator(
        corpus, vocab_size=300, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    folder = Path(tempfile.mkdtemp(prefix="sgt_bpe_"))
    bpe.save_model(str(folder))
    tok = RobertaTokenizerFast(
        vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), add_prefix_space=True
    )
    assert json.loads((folder / "vocab.json").read_text())["<pad>"] == tok.pad_token_id
    return tok


def tokenizer_for(family: str):
    return bpe_tokenizer() if family == "roberta" else wordpiece_tokenizer()


def tiny_model(family: str = "bert", num_labels: int = 2, seed: int = 0, dropout: float = 0.0, **overrides):
    """A 2-layer, 32-wide randomly initialised classifier of the given family, matched to its tokenizer."""
    tok = tokenizer_for(family)
    torch.manual_seed(seed)
    common = dict(vocab_size=len(tok), num_labels=num_labels, pad_token_id=tok.pad_token_id)
    if family == "bert":
        config = BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            **common,
        )
        cls = BertForSequenceClassification
    elif family == "roberta":
        config = RobertaConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=130,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            **common,
        )
        cls = RobertaForSequenceClassification
    elif family == "distilbert":
        config = DistilBertConfig(
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=128,
            dropout=dropout,
            attention_dropout=dropout,
            seq_classif_dropout=dropout,
            **common,
        )
        cls = DistilBertForSequenceClassification
    elif family == "albert":
        config = AlbertConfig(
            embedding_size=16,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            classifier_dropout_prob=dropout,
            **common,
        )
        cls = AlbertForSequenceClassification
    elif family == "electra":
        config = ElectraConfig(
            embedding_size=16,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            **common,
        )
        cls = ElectraForSequenceClassification
    elif family == "deberta-v2":
        config = DebertaV2Config(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            pooler_dropout=dropout,
            relative_attention=True,
            position_buckets=16,
            max_relative_positions=32,
            pos_att_type=["p2c", "c2p"],
            **common,
        )
        cls = DebertaV2ForSequenceClassification
    else:
        raise ValueError(family)
    for key, value in overrides.items():
        setattr(config, key, value)
    return cls(config).eval()


SENTENCES = [
    ("the movie was good and i loved it", 1),
    ("the film was bad and boring", 0),
    ("great story and wonderful music", 1),
    ("worst plot i saw", 0),
    ("it was fun and funny", 1),
    ("terrible ending and slow scenes", 0),
    ("the best actor played very well", 1),
    ("i hated this awful film", 0),
]


def encode(family: str, sentences=SENTENCES, padding_side: str = "right", max_length: int = 24):
    """A padded batch (with labels) of the given sentences for the family's tokenizer."""
    tok = tokenizer_for(family)
    tok.padding_side = padding_side
    batch = tok(
        [s for s, _ in sentences], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    tok.padding_side = "right"
    batch["labels"] = torch.tensor([y for _, y in sentences])
    return dict(batch)


# ---- decoder-only classifiers, ModernBERT and their tokenizers ---------------------------------------------

DECODER_FAMILIES = ("gpt2", "llama", "qwen2", "mistral", "gemma", "phi")
#: Which tokenizer each family is tested with: byte-level BPE (GPT-2 style) or SentencePiece-style Unigram
#: (Llama).
TOKENIZER_KIND = {
    "gpt2": "byte_level",
    "qwen2": "byte_level",
    "phi": "byte_level",
    "llama": "sentencepiece",
    "mistral": "sentencepiece",
    "gemma": "sentencepiece",
    "modernbert": "wordpiece",
}
_CORPUS = [" ".join(WORDS)] * 4 + [
    s
    for s, _ in (
        ("the movie was good and i loved it", 1),
        ("the film was bad and boring", 0),
        ("worst plot i saw", 0),
    )
]


@functools.cache
def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE (no BOS; ``<|endoftext|>`` is EOS; a separate ``<|pad|>``), trained
    offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(_CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|pad|>")


@functools.cache
def sentencepiece_tokenizer() -> PreTrainedTokenizerFast:
    """A Llama-style tokenizer: Unigram pieces with the ``▁`` word marker and a BOS ``<s>`` before every
    text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=120, special_tokens=["<unk>", "<s>", "</s>", "<pad>"], unk_token="<unk>"
    )
    backend.train_from_iterator(_CORPUS, trainer)
    bos = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B:1", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def family_tokenizer(family: str):
    kind = TOKENIZER_KIND.get(family)
    if kind == "byte_level":
        return byte_level_tokenizer()
    if kind == "sentencepiece":
        return sentencepiece_tokenizer()
    return tokenizer_for(family)


def tiny_family_model(family: str, num_labels: int = 2, seed: int = 0):
    """A 2-layer, 32-wide classifier of a decoder family or ModernBERT, dropout off, matched to its
    tokenizer."""
    from transformers import (
        AutoModelForSequenceClassification,
        GemmaConfig,
        GPT2Config,
        LlamaConfig,
        MistralConfig,
        ModernBertConfig,
        PhiConfig,
        Qwen2Config,
    )

    tok = family_tokenizer(family)
    torch.manual_seed(seed)
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    common = dict(vocab_size=len(tok), num_labels=num_labels, **ids)
    rope = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        max_position_embeddings=128,
        attention_dropout=0.0,
    )
    if family == "gpt2":
        config = GPT2Config(
            n_embd=32,
            n_layer=2,
            n_head=2,
            n_positions=128,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            summary_first_dropout=0.0,
            **common,
        )
    elif family == "llama":
        config = LlamaConfig(**rope, **common)
    elif family == "qwen2":
        config = Qwen2Config(**rope, **common)
    elif family == "mistral":
        config = MistralConfig(**rope, sliding_window=None, **common)
    elif family == "gemma":
        config = GemmaConfig(**rope, head_dim=16, **common)
    elif family == "phi":
        config = PhiConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attention_dropout=0.0,
            **common,
        )
    elif family == "modernbert":
        config = ModernBertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            global_attn_every_n_layers=2,
            local_attention=16,
            embedding_dropout=0.0,
            mlp_dropout=0.0,
            attention_dropout=0.0,
            classifier_dropout=0.0,
            cls_token_id=tok.cls_token_id,
            sep_token_id=tok.sep_token_id,
            vocab_size=len(tok),
            num_labels=num_labels,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id,
        )
    else:
        raise ValueError(family)
    return AutoModelForSequenceClassification.from_config(config).eval()


def encode_family(family: str, sentences=SENTENCES, padding_side: str = "right", max_length: int = 24):
    """As :func:`encode`, with the family's tokenizer."""
    tok = family_tokenizer(family)
    side = tok.padding_side
    tok.padding_side = padding_side
    try:
        batch = tok(
            [s for s, _ in sentences],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
    finally:
        tok.padding_side = side
    batch["labels"] = torch.tensor([y for _, y in sentences])
    return dict(batch)


def save_binary_bert(folder):
    """A tiny NEG/POS BERT classifier with the WordPiece tokenizer, saved to ``folder`` (returned)."""
    model = tiny_model("bert", seed=3)
    model.config.id2label, model.config.label2id = {0: "NEG", 1: "POS"}, {"NEG": 0, "POS": 1}
    model.save_pretrained(folder)
    wordpiece_tokenizer().save_pretrained(folder)
    return folder


#: Invariance tests (gradient accumulation, 1 vs 2 processes) train with plain SGD: its update is linear in
#: the gradient, so a gradient scaled wrongly moves every parameter by a visibly different amount, while the
#: rounding that a different summation order brings stays at rounding size. Adam normalises each update by
#: its gradient's running size, which hides a constant scale and amplifies rounding on parameters whose
#: gradients are near zero (a 0.7 % difference on one bias, on one CPU type, failed a 1e-4 comparison).
INVARIANCE_OPTIMIZER = {"optim": "sgd", "learning_rate": 0.1}


def assert_same_updates(initial: dict, got: dict, expected: dict, rtol: float = 1e-3, share: float = 1e-4):
    """Each parameter moved from ``initial`` as in ``expected``: element-wise within ``rtol``, or within
    ``share`` of the largest update of any parameter (absolute rounding of a float32 parameter)."""
    updates = {n: expected[n] - initial[n] for n in expected}
    largest = max(float(u.abs().max()) for u in updates.values())
    assert largest > 0, "no parameter moved"
    for name, update in updates.items():
        torch.testing.assert_close(
            got[name] - initial[name],
            update,
            rtol=rtol,
            atol=share * largest,
            msg=lambda message, name=name: f"{name}: {message}",
        )
