"""The model side of an evaluation: explain a batch of examples and run every perturbed input it needs.

For each example and explainer: word scores (piece scores aggregated to whitespace words), the prediction,
and the perturbed inputs of ERASER's faithfulness metrics (comprehensiveness and sufficiency at the threshold
and at every AOPC bin, plus the masked-accuracy curve), pushed through the model in length-sorted batches;
identical perturbations are run once, and several removal modes share one explanation pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..eraser.align import align_words, encode_words
from ..explainers import get_explainer
from ..metrics import removal_count, top_k_indices
from ..precision import autocast
from ..saliency import embedding_forward_kwargs
from .bounds import add_bounds
from .config import MASKED_ACCURACY_FRACTIONS, EvaluationConfig
from .perturbation import (
    example_seed,
    kept_positions,
    perturbation_keys,
    perturbed_words,
    whole_word_vocabulary,
)
from .records import Example, ExampleOutput, MethodResult


@dataclass
class _Plan:
    """One example's perturbations for one method: its seen words, their ranking and where each input sits."""

    seen_words: list[str]
    n: int
    scores: np.ndarray
    order: np.ndarray
    replacement: str | list[str] | None
    slots: dict[tuple[str, int], int]


class BatchEvaluator:
    """Holds the model, tokenizer and explainers of one run; ``run_batch`` does all work for a batch of
    examples."""

    def __init__(
        self, config: EvaluationConfig, model, tokenizer, labels: list[str], threshold: float, device
    ):
        self.config, self.model, self.tokenizer, self.labels = config, model, tokenizer, labels
        self.threshold, self.device = threshold, device
        self.explainers = {
            m: get_explainer(m, model, tokenizer=tokenizer, **config.explainer_kwargs(m))
            for m in config.methods
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

    # -- model passes ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def probabilities(self, word_lists: list[list[str]], query_lists: list[list[str]]) -> np.ndarray:
        """Class probabilities for many inputs, in length-sorted batches (padding costs real compute on a
        CPU)."""
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
            with autocast(self.model, self.config.bf16):  # --bf16: the pass in bf16, the rest in fp32
                logits = self.model(**encoding).logits.float()
            out[chunk] = torch.softmax(logits, dim=-1).cpu().numpy()
            self.forward_passes += len(chunk)
            self.forward_lengths.extend(int(n) for n in encoding["attention_mask"].sum(dim=1).tolist())
        return out

    def _encode(self, words: list[list[str]], queries: list[list[str]]) -> dict[str, torch.Tensor]:
        encoding, _ = encode_words(
            self.tokenizer,
            words,
            queries,
            self.config.max_length,
            self.config.truncation,
            padding=True,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in encoding.items()}

    # -- one batch -------------------------------------------------------------------------------------------

    def run_batch(self, batch: list[Example]) -> list[ExampleOutput]:
        alignment = align_words(
            self.tokenizer,
            [ex.words for ex in batch],
            [ex.query_words for ex in batch],
            max_length=self.config.max_length,
            rationale_masks=[ex.rationale for ex in batch],
            truncation=self.config.truncation,
        )
        encoding = {k: v.to(self.device) for k, v in alignment.encoding.items()}
        self.example_lengths.extend(int(n) for n in encoding["attention_mask"].sum(dim=1).tolist())
        outputs = [
            ExampleOutput(ex.index, ex.annotation_id, alignment.words_kept[b], alignment.kept_words[b])
            for b, ex in enumerate(batch)
        ]
        gold = torch.tensor([ex.label for ex in batch], device=self.device)
        for method, explainer in self.explainers.items():
            start = time.perf_counter()
            target = gold if self.config.target == "gold" else None
            with autocast(self.model, self.config.bf16):  # the explainers accumulate in float32
                attribution = explainer.attribute(
                    encoding, target, word_ids=alignment.word_index.to(self.device)
                )
            word_scores = alignment.aggregate_to_lists(attribution.scores, self.config.word_aggregation)
            full_probs = torch.softmax(attribution.logits.float(), dim=-1).cpu().numpy()
            explained = time.perf_counter()
            for removal in self.config.removals:
                started = time.perf_counter()
                per_example = self._faithfulness(
                    batch, alignment.kept_words, word_scores, full_probs, removal
                )
                # Explaining is shared by the removal modes; each is charged for it plus its own passes.
                seconds = (explained - start) + (time.perf_counter() - started)
                for b, result in enumerate(per_example):
                    result.seconds = seconds / len(batch)
                    if explainer.has_convergence_delta and "delta" in attribution.extras:
                        result.convergence_delta = float(attribution.extras["delta"][b])
                    outputs[b].methods.setdefault(removal, {})[method] = result
        add_bounds(self, batch, outputs)  # --naopc_bounds beam|exact: after every method, which seed it
        return outputs

    def _faithfulness(self, batch, kept_words, word_scores, full_probs, removal: str) -> list[MethodResult]:
        """All perturbed inputs of the batch for one method, run together, then the per-example results."""
        plans: list[_Plan] = []
        inputs: list[list[str]] = []
        queries: list[list[str]] = []
        for b, ex in enumerate(batch):
            kept = kept_words[b]
            seen_words, n = [ex.words[i] for i in kept], len(kept)
            scores = np.asarray(word_scores[b], dtype=float)[kept]
            order = top_k_indices(scores, n)
            key_set = perturbation_keys(n, self.fractions_removed, self.fractions_kept)
            if self.config.per_example and n:
                key_set.add(("comp", n))  # the empty input: every seen word removed
            keys = sorted(key_set)
            replacement = self.replacements(ex, n, removal)
            slots = {}
            for key in keys:
                slots[key] = len(inputs)
                inputs.append(
                    perturbed_words(seen_words, kept_positions(order, n, key), removal, replacement)
                )
                queries.append(ex.query_words)
            plans.append(_Plan(seen_words, n, scores, order, replacement, slots))
        probs = self.probabilities(inputs, queries)

        def at(b: int, kind: str, fraction: float) -> np.ndarray:
            key = (kind, removal_count(plans[b].n, fraction))
            return full_probs[b] if key in (("comp", 0), ("suff", plans[b].n)) else probs[plans[b].slots[key]]

        flipped = [
            {
                removal_count(plans[b].n, f)
                for f in self.fractions_removed
                if int(at(b, "comp", f).argmax()) != int(full_probs[b].argmax())
            }
            for b in range(len(batch))
        ]
        if self.config.tokens_to_flip == "exact":
            self._add_exact_flips(batch, plans, full_probs, flipped, removal)
        results = []
        for b, ex in enumerate(batch):
            curve = [at(b, "comp", f) for f in self.curve]
            results.append(
                MethodResult(
                    word_scores=plans[b].scores,
                    probs=full_probs[b],
                    comp=at(b, "comp", self.threshold),
                    suff=at(b, "suff", self.threshold),
                    thresholded={
                        t: (at(b, "comp", t), at(b, "suff", t)) for t in self.config.aopc_thresholds
                    },
                    masked_correct=[int(int(p.argmax()) == ex.label) for p in curve],
                    tokens_to_flip=min(flipped[b], default=plans[b].n),
                    empty=at(b, "comp", 1.0) if self.config.per_example else None,
                )
            )
        return results

    def _add_exact_flips(
        self, batch, plans: list[_Plan], full_probs, flipped: list[set[int]], removal
    ) -> None:
        """Adds to ``flipped`` every removal count below the first flip on the grid (all of 1..n when none
        flips) that the grid skipped and that changes the prediction, all run in one batch, so that
        ``tokens_to_flip`` is the fewest top words whose removal changes it."""
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

    def replacements(self, ex: Example, n: int, removal: str) -> str | list[str] | None:
        """What replaces the removed words of ``ex`` (n seen words) under ``removal``: None for delete."""
        if removal == "mask_token":
            return self.mask_word
        if removal == "random_token":
            assert self.vocabulary is not None  # __init__ builds it when random_token is among the removals
            rng = np.random.default_rng(example_seed(self.config.seed, ex.annotation_id))
            return [self.vocabulary[i] for i in rng.integers(0, len(self.vocabulary), size=n)]
        return None
