"""ERASER-style rationale evaluation: explain a classifier's predictions on an ERASER split and score them.

- :func:`evaluate_rationales` (model, tokenizer and data as objects) → :class:`EvaluationResult`;
  :func:`write_evaluation` writes its output folder; :func:`evaluate_folder` does both from folders.
- Modules: ``config`` (:class:`EvaluationConfig`), ``examples`` (which examples, label order),
  ``perturbation`` (pure removal helpers), ``evaluator`` (the batched model side), ``runner`` (processes),
  ``outputs`` (results.jsonl, scores.json, curves, summaries), ``summary``, ``rescore``, ``cli``.

Conventions (written into every ``scores.json`` under ``evaluation_settings`` and into ``run.json``):
- An example's document is what the model sees: the words that survive ``max_length`` truncation
  (``truncation``: ``head`` keeps the start, ``tail`` the end, ``head_tail`` both; see
  :mod:`sgt_nlp.eraser.align`). Removal fractions count those words; words cut off get the lowest score in the
  soft predictions. Perturbed inputs are built from the seen words only and encoded under the same
  ``truncation`` (which then keeps them all), so a removal never lets a previously unseen word in.
- The query (second sequence of the text pair) is never removed, as in the ERASER baselines.
- ``removal``: ``delete`` drops words (the sequence shrinks; ERASER's baselines), ``mask_token`` replaces each
  removed word by the tokenizer's mask token, ``random_token`` by a random whole-word vocabulary entry.
- Hard rationales are the top ``round(threshold * n)`` of the ``n`` words the model saw. ``scores.json`` adds
  ``visible_only`` (AUPRC, token and IOU F1 over the seen words): with long documents cut at ``max_length``,
  the whole-document numbers are dominated by human rationale no method could see.
- ``tokens_to_flip`` is the fewest top words whose removal changes the prediction (n when none does). By
  default it is resolved on the grid of evaluated removal fractions (AOPC bins, threshold and the
  masked-accuracy curve); ``tokens_to_flip="exact"`` also tries every count the grid skipped below its first
  flip.
"""

from .cli import config_from_args, main, make_parser, make_rescore_parser, rescore_main
from .config import DEFAULT_METHODS, MASKED_ACCURACY_FRACTIONS, REMOVALS, EvaluationConfig
from .evaluator import BatchEvaluator
from .examples import rationale_coverage
from .outputs import EVALUATION_FILES, write_evaluation
from .perturbation import (
    example_seed,
    kept_positions,
    perturbation_keys,
    perturbed_words,
    whole_word_vocabulary,
)
from .records import EvaluationResult, Example, ExampleOutput, MethodResult
from .rescore import RESCORED_SECTIONS, rescore_output
from .runner import evaluate_folder, evaluate_rationales, length_batches
from .summary import SUMMARY_COLUMNS, summary_table

__all__ = [
    "DEFAULT_METHODS",
    "EVALUATION_FILES",
    "MASKED_ACCURACY_FRACTIONS",
    "REMOVALS",
    "RESCORED_SECTIONS",
    "SUMMARY_COLUMNS",
    "BatchEvaluator",
    "EvaluationConfig",
    "EvaluationResult",
    "Example",
    "ExampleOutput",
    "MethodResult",
    "config_from_args",
    "evaluate_folder",
    "evaluate_rationales",
    "example_seed",
    "kept_positions",
    "length_batches",
    "main",
    "make_parser",
    "make_rescore_parser",
    "perturbation_keys",
    "perturbed_words",
    "rationale_coverage",
    "rescore_main",
    "rescore_output",
    "summary_table",
    "whole_word_vocabulary",
    "write_evaluation",
]
