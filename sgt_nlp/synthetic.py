"""A synthetic rationale task in the ERASER format, where the true rationale of every example is known
exactly.

Why it exists: the demo must show, on a laptop CPU and without network, whether saliency-guided training (SGT)
makes explanations more faithful and closer to the truth. Real rationale data sets (ERASER Movies) are large
and their human rationales are only a proxy for what a model can use. Here the label is *caused* by planted
phrases, so the planted tokens are the complete and exact ground truth.

How a document is built (one per annotation, ``NEG``/``POS`` balanced exactly within each split):

* **Evidence phrases.** Each label has six phrase templates; one to three phrases of the document's label are
  planted at random positions, each an evidence group of its own (each is sufficient on its own).
  ``templates="lexical"`` (default): each label has words of its own (``truly wonderful`` is POS,
  ``painfully dull`` NEG). ``templates="contrastive"`` (harder): both labels use the *same words in a
  different order* (``good not bad`` is POS, ``bad not good`` NEG).
* **Near-miss phrases.** One or two per document: the words of a template of either label in an order that is
  no template (``wonderful truly``, ``not bad good``), chosen independently of the label, so they carry no
  signal but make "this word occurs" an unreliable cue.
* **Neutral filler.** Sentences of words drawn from a neutral vocabulary, with frequent distractor words
  (``the``, ``film``, ``story``, ...) making up a fixed share of them, identically in both classes.

How hard it is, measured on 2000 training documents (logistic regression on word counts vs word and bigram
counts; test accuracy): lexical 0.86 vs 1.00, contrastive 0.51 vs 1.00. In the lexical task single words help
but near-misses cap them, so a model must read phrases to go beyond; in the contrastive task every word has
the same distribution in both classes, so no word-frequency shortcut exists at all (a 2-layer BERT trained
from scratch for a few CPU minutes did not learn it, which is why it is not the default).

Why the comparison it feeds is not rigged: both models see the same files, token for token; the rationales are
fixed by the generator before any model exists, not derived from either model's saliency; the task has no
knob that depends on the training method. :func:`describe` repeats this for reports and the README.
"""

from __future__ import annotations

import itertools
import json
import random
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "LABELS",
    "QUERY",
    "SyntheticConfig",
    "SyntheticExample",
    "describe",
    "find_evidence_phrases",
    "generate_split",
    "make_synthetic_eraser",
    "synthetic_vocabulary",
]

LABELS: tuple[str, str] = ("NEG", "POS")
QUERY = "What is the sentiment of this review?"
CONFIG_FILE = "synthetic.json"
SPLITS: tuple[str, ...] = ("train", "val", "test")

#: (POS order, NEG order): same words, opposite meaning; the order alone decides the label.
CONTRASTIVE_TEMPLATES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("good", "not", "bad"), ("bad", "not", "good")),
    (("fun", "rather", "than", "dull"), ("dull", "rather", "than", "fun")),
    (("more", "hits", "than", "misses"), ("more", "misses", "than", "hits")),
    (("strengths", "outweigh", "flaws"), ("flaws", "outweigh", "strengths")),
    (("funny", "and", "never", "boring"), ("boring", "and", "never", "funny")),
    (("clever", "not", "clumsy"), ("clumsy", "not", "clever")),
)

#: (POS phrase, NEG phrase): each label has words of its own (the easier variant).
LEXICAL_TEMPLATES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("truly", "wonderful"), ("painfully", "dull")),
    (("superb", "pacing"), ("clumsy", "dialogue")),
    (("utterly", "charming", "cast"), ("flat", "lifeless", "characters")),
    (("gripping", "finale"), ("tedious", "subplots")),
    (("warm", "heartfelt", "script"), ("wooden", "stilted", "acting")),
    (("beautifully", "shot"), ("badly", "edited")),
)

#: Appear often and equally in both classes: a model that keys on frequency finds nothing here.
FREQUENT_WORDS: tuple[str, ...] = (
    "the", "a", "of", "to", "film", "movie", "story", "scene", "really", "just", "with", "this",
)  # fmt: skip

#: Neutral filler vocabulary: no sentiment, disjoint from every template word.
NEUTRAL_WORDS: tuple[str, ...] = tuple(
    """
    about across after afternoon airport along among animal apartment around arrives autumn avenue back
    basket beach before behind bicycle blue boat book bottle box bridge brother building bus camera car
    carries case castle cat chair chapter city coat coffee color corner country cousin crowd cup daughter
    day desk detective dinner dog door doctor drawer early east engine evening factory family farm father
    field finds floor forest friday garden gate glass green grey hallway harbor hat hill holds house hour
    island journey key kitchen ladder lake lamp later letter library light map market meeting minute
    mirror month morning mother mountain museum neighbor newspaper night noon north office opens orange
    paper park passes path pencil phone piano picture plate platform pocket quiet radio rain reads river
    road roof room runs school season second shelf ship shop sister sits sky small snow south station
    stairs stone street summer sunday table tells then through ticket today tower town train tree truck
    turns uncle under valley village visits wall walks watches water west while window winter year yellow
    """.split()
)

_TEMPLATES = {"contrastive": CONTRASTIVE_TEMPLATES, "lexical": LEXICAL_TEMPLATES}
#: the task variants ``SyntheticConfig.templates`` accepts
TEMPLATE_NAMES = tuple(_TEMPLATES)


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that shapes the generated data; written to ``synthetic.json`` beside the data for
    provenance."""

    seed: int = 0
    n_train: int = 2000
    n_val: int = 200
    n_test: int = 200
    min_words: int = 40
    max_words: int = 120
    evidence_per_doc: tuple[int, int] = (1, 3)
    near_miss_per_doc: tuple[int, int] = (1, 2)
    frequent_share: float = 0.3
    label_noise: float = 0.0
    templates: str = "lexical"
    sentence_words: tuple[int, int] = field(default=(5, 12))

    def __post_init__(self) -> None:
        if self.templates not in _TEMPLATES:
            raise ValueError(f"templates must be one of {sorted(_TEMPLATES)}, got {self.templates!r}")
        for name in ("evidence_per_doc", "near_miss_per_doc", "sentence_words"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {(low, high)}")
        if self.evidence_per_doc[0] < 1:
            raise ValueError("evidence_per_doc must plant at least one phrase (the label depends on it)")
        if self.sentence_words[0] < 1:
            raise ValueError("sentence_words must allow at least one word per sentence")
        if not 0 < self.min_words <= self.max_words:
            raise ValueError(f"need 0 < min_words <= max_words, got {self.min_words}, {self.max_words}")
        if not 0.0 <= self.label_noise < 0.5:
            raise ValueError(f"label_noise must be in [0, 0.5), got {self.label_noise}")
        if not 0.0 <= self.frequent_share <= 1.0:
            raise ValueError(f"frequent_share must be in [0, 1], got {self.frequent_share}")
        if min(self.n_train, self.n_val, self.n_test) < 0:
            raise ValueError("example counts must be >= 0")

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}


@dataclass(frozen=True)
class SyntheticExample:
    """One generated document with its exact rationale: ``spans`` are ``(start, end, sentence)`` token
    spans."""

    annotation_id: str
    label: str
    planted_label: str
    sentences: tuple[tuple[str, ...], ...]
    spans: tuple[tuple[int, int, int], ...]

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(token for sentence in self.sentences for token in sentence)

    def to_annotation(self) -> dict:
        """The ERASER ``{split}.jsonl`` record (one evidence group per planted phrase)."""
        tokens = self.tokens
        evidences = [
            [
                {
                    "docid": self.annotation_id,
                    "start_token": start,
                    "end_token": end,
                    "start_sentence": sentence,
                    "end_sentence": sentence,
                    "text": " ".join(tokens[start:end]),
                }
            ]
            for start, end, sentence in self.spans
        ]
        return {
            "annotation_id": self.annotation_id,
            "query": QUERY,
            "evidences": evidences,
            "classification": self.label,
            "query_type": None,
            "docids": [self.annotation_id],
        }

    def document_text(self) -> str:
        """The ``docs/<docid>`` file: one sentence per line, tokens separated by single spaces."""
        return "".join(" ".join(sentence) + "\n" for sentence in self.sentences)


def _template_words(templates: str) -> set[str]:
    return {word for pair in _TEMPLATES[templates] for phrase in pair for word in phrase}


def _near_miss_orders(templates: str) -> list[list[tuple[str, ...]]]:
    """Per template pair, the word orders that are neither label's phrase (contrastive: permutations of the
    shared words; lexical: permutations of either label's words), sorted so generation is deterministic."""
    evidence = {phrase for pair in _TEMPLATES[templates] for phrase in pair}
    orders = []
    for pair in _TEMPLATES[templates]:
        sources = pair[:1] if templates == "contrastive" else pair
        candidates = {perm for phrase in sources for perm in itertools.permutations(phrase)}
        orders.append(sorted(candidates - evidence))
    return orders


def _check_vocabularies() -> None:
    neutral, frequent = set(NEUTRAL_WORDS), set(FREQUENT_WORDS)
    if len(neutral) != len(NEUTRAL_WORDS) or neutral & frequent:
        raise AssertionError("filler vocabularies must be duplicate-free and disjoint")
    for name in _TEMPLATES:
        if _template_words(name) & (neutral | frequent):
            raise AssertionError(f"{name} template words must not occur in the filler vocabulary")
        if not all(_near_miss_orders(name)):
            raise AssertionError(f"every {name} template needs at least one near-miss order")


_check_vocabularies()


def synthetic_vocabulary(templates: str | None = None) -> list[str]:
    """Every whitespace token the generator can emit (documents and query), sorted: train a tokenizer on it.

    ``templates=None`` covers both template sets, so one tokenizer serves either variant.
    """
    names = list(_TEMPLATES) if templates is None else [templates]
    if any(name not in _TEMPLATES for name in names):
        raise ValueError(f"templates must be one of {sorted(_TEMPLATES)}, got {templates!r}")
    words = set(NEUTRAL_WORDS) | set(FREQUENT_WORDS) | {"."} | set(QUERY.split())
    for name in names:
        words |= _template_words(name)
    return sorted(words)


def _filler_sentences(rng: random.Random, n_tokens: int, config: SyntheticConfig) -> list[list[str]]:
    """Sentences (each ending in ``.``) totalling ``n_tokens`` tokens, at least one word per sentence."""
    low, high = config.sentence_words
    sentences: list[list[str]] = []
    remaining = max(n_tokens, 2)
    while remaining > 0:
        n_words = min(rng.randint(low, high), remaining - 1)
        if n_words < 1:  # one token left: lengthen the last sentence instead of emitting a bare "."
            sentences[-1].insert(-1, _filler_word(rng, config))
            break
        sentences.append([_filler_word(rng, config) for _ in range(n_words)] + ["."])
        remaining -= n_words + 1
    return sentences


def _filler_word(rng: random.Random, config: SyntheticConfig) -> str:
    pool = FREQUENT_WORDS if rng.random() < config.frequent_share else NEUTRAL_WORDS
    return rng.choice(pool)


def _make_example(
    rng: random.Random, annotation_id: str, label: str, config: SyntheticConfig
) -> SyntheticExample:
    pairs = _TEMPLATES[config.templates]
    near_orders = _near_miss_orders(config.templates)
    label_index = 0 if label == "POS" else 1  # position in each (POS, NEG) template pair
    n_evidence = rng.randint(*config.evidence_per_doc)
    n_near = rng.randint(*config.near_miss_per_doc)
    phrases: list[tuple[tuple[str, ...], bool]] = [
        (rng.choice(pairs)[label_index], True) for _ in range(n_evidence)
    ]
    phrases += [(rng.choice(rng.choice(near_orders)), False) for _ in range(n_near)]
    rng.shuffle(phrases)

    target = rng.randint(config.min_words, config.max_words)
    sentences = _filler_sentences(rng, target - sum(len(p) for p, _ in phrases), config)
    # Every phrase gets its own gap between filler words (never the gap after a sentence's "."), so two
    # phrases are never adjacent and no template can form across phrase boundaries.
    gaps = [(s, g) for s, sentence in enumerate(sentences) for g in range(len(sentence))]
    while len(gaps) < len(phrases):  # a very short document: add a sentence to make room
        sentences.append([_filler_word(rng, config), "."])
        gaps += [(len(sentences) - 1, 0), (len(sentences) - 1, 1)]
    chosen = sorted(rng.sample(gaps, len(phrases)))
    inserts: dict[tuple[int, int], tuple[tuple[str, ...], bool]] = dict(zip(chosen, phrases, strict=True))

    out_sentences: list[tuple[str, ...]] = []
    spans: list[tuple[int, int, int]] = []
    offset = 0
    for s, sentence in enumerate(sentences):
        built: list[str] = []
        for g, word in enumerate(sentence):
            if (s, g) in inserts:
                phrase, is_evidence = inserts[(s, g)]
                if is_evidence:
                    spans.append((offset + len(built), offset + len(built) + len(phrase), s))
                built.extend(phrase)
            built.append(word)
        out_sentences.append(tuple(built))
        offset += len(built)

    shown = label
    if config.label_noise and rng.random() < config.label_noise:
        shown = LABELS[1 - LABELS.index(label)]
    example = SyntheticExample(annotation_id, shown, label, tuple(out_sentences), tuple(spans))
    _check_rationale_exact(example, config.templates)
    return example


def find_evidence_phrases(tokens: Sequence[str], templates: str = "lexical") -> list[tuple[int, int, str]]:
    """Every occurrence of an evidence template in ``tokens`` as ``(start, end, label)``.

    The generator guarantees these are exactly the planted spans; tests and the demo use it to check that.
    """
    found = []
    for pos_phrase, neg_phrase in _TEMPLATES[templates]:
        for phrase, label in ((pos_phrase, "POS"), (neg_phrase, "NEG")):
            n = len(phrase)
            found += [
                (i, i + n, label) for i in range(len(tokens) - n + 1) if tuple(tokens[i : i + n]) == phrase
            ]
    return sorted(found)


def _check_rationale_exact(example: SyntheticExample, templates: str) -> None:
    """The planted spans must be every template occurrence, all of the planted label (a generator
    invariant)."""
    found = find_evidence_phrases(example.tokens, templates)
    expected = sorted((start, end, example.planted_label) for start, end, _ in example.spans)
    if found != expected:
        raise AssertionError(f"{example.annotation_id}: evidence found {found} != planted {expected}")


def generate_split(split: str, n: int, config: SyntheticConfig) -> list[SyntheticExample]:
    """``n`` examples of ``split``, labels balanced exactly (POS gets the extra one when ``n`` is odd).

    Each split has its own random stream (seeded by ``seed`` and the split name), so changing ``n_train``
    never changes the test set.
    """
    rng = random.Random(f"sgt_nlp.synthetic:{config.seed}:{split}")
    labels = [LABELS[(i + 1) % 2] for i in range(n)]
    rng.shuffle(labels)
    return [_make_example(rng, f"{split}_{i:05d}", label, config) for i, label in enumerate(labels)]


def make_synthetic_eraser(
    out_dir: str | Path,
    seed: int = 0,
    n_train: int = 2000,
    n_val: int = 200,
    n_test: int = 200,
    min_words: int = 40,
    max_words: int = 120,
    evidence_per_doc: tuple[int, int] = (1, 3),
    near_miss_per_doc: tuple[int, int] = (1, 2),
    frequent_share: float = 0.3,
    label_noise: float = 0.0,
    templates: str = "lexical",
) -> Path:
    """Write a complete ERASER folder (``docs/``, ``train/val/test.jsonl``, ``synthetic.json``) and return it.

    Deterministic: the same arguments give byte-identical files. An existing ``out_dir`` is rewritten only if
    it holds a previous synthetic data set (its ``synthetic.json``) or nothing ERASER-like, so a real data
    folder is never overwritten by mistake.
    """
    config = SyntheticConfig(
        seed=seed,
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        min_words=min_words,
        max_words=max_words,
        # tuple() of a pair given as a list (a JSON/YAML spec); SyntheticConfig checks its length
        evidence_per_doc=tuple(evidence_per_doc),  # type: ignore[arg-type]
        near_miss_per_doc=tuple(near_miss_per_doc),  # type: ignore[arg-type]
        frequent_share=frequent_share,
        label_noise=label_noise,
        templates=templates,
    )
    out = Path(out_dir)
    docs_dir = out / "docs"
    if out.exists() and not (out / CONFIG_FILE).exists():
        candidates = (docs_dir, out / "docs.jsonl", *(out / f"{split}.jsonl" for split in SPLITS))
        clash = [path.name for path in candidates if path.exists()]
        if clash:
            raise FileExistsError(
                f"{out} already holds ERASER data ({', '.join(clash)}) not made by this generator"
            )
    if docs_dir.exists():
        shutil.rmtree(docs_dir)
    docs_dir.mkdir(parents=True)
    for split, n in config.split_sizes().items():
        lines = []
        for example in generate_split(split, n, config):
            (docs_dir / example.annotation_id).write_text(example.document_text(), encoding="utf-8")
            lines.append(json.dumps(example.to_annotation(), ensure_ascii=False) + "\n")
        (out / f"{split}.jsonl").write_text("".join(lines), encoding="utf-8")
    record = {"generator": "sgt_nlp.synthetic", **asdict(config), "labels": list(LABELS), "query": QUERY}
    (out / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out


def describe(config: SyntheticConfig | None = None) -> str:
    """Plain-text description of the task (for the demo's terminal output, reports and the README)."""
    config = config or SyntheticConfig()
    pairs = _TEMPLATES[config.templates]
    examples = "; ".join(f"POS '{' '.join(p)}' / NEG '{' '.join(n)}'" for p, n in pairs[:3])
    near = "; ".join(f"'{' '.join(orders[0])}'" for orders in _near_miss_orders(config.templates)[:3])
    vocab = len(synthetic_vocabulary(config.templates))
    shortcut = (
        "Both labels use the same words, only in a different order, so every word is equally frequent in "
        "both classes: no bag-of-words shortcut exists, and a model must locate the phrases and read their "
        "order."
        if config.templates == "contrastive"
        else "Each label has words of its own, but near-misses made of the same words in another order "
        "appear in both classes, so a word's presence is an unreliable cue (with the default settings word "
        "counts alone reach about 86% accuracy): a model must read the phrases to do better."
    )
    return (
        f"Synthetic rationale task ({config.templates} templates, seed {config.seed}; "
        f"{config.n_train}/{config.n_val}/{config.n_test} train/val/test documents of "
        f"{config.min_words}-{config.max_words} tokens, {vocab}-word vocabulary).\n"
        f"The label ({'/'.join(LABELS)}, balanced) is set by {config.evidence_per_doc[0]}-"
        f"{config.evidence_per_doc[1]} planted evidence phrases of that label ({examples}; "
        f"{len(pairs)} templates per label) placed at random among neutral filler sentences, in which "
        f"frequent distractor words ({', '.join(FREQUENT_WORDS[:6])}, ...) make up "
        f"{config.frequent_share:.0%} of the filler in both classes alike, plus "
        f"{config.near_miss_per_doc[0]}-{config.near_miss_per_doc[1]} "
        f"near-miss phrases ({near}, ...) whose words match an evidence phrase but whose order matches "
        f"neither label, drawn independently of the label.\n"
        f"{shortcut}\n"
        f"The planted tokens are the exact and complete rationale (the generator checks that no template "
        f"occurs anywhere else); label noise flips {config.label_noise:.0%} of the labels without moving the "
        "evidence.\n"
        "The comparison is not rigged: both models are trained on the same files from the same initial "
        "weights, and the rationales are fixed by the generator before any model exists, never derived from "
        "either model's saliency. If SGT does not help, the report shows it: equal or lower AUPRC and "
        "comprehensiveness than the plain model at the same accuracy."
    )
