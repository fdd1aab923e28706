"""An evaluation's output folder, computed by pure functions and written by :func:`write_evaluation`.

Per removal mode (the main one in ``output_dir``, each extra one in ``output_dir/removal_<mode>``) and method:
``<method>/results.jsonl`` (the official ERASER results format), ``scores.json`` (the scorer's keys and
nesting, plus ``visible_only``: AUPRC, token and IOU F1 over the words the model saw, and
``evaluation_settings``), ``curves.json`` (AOPC points, masked-accuracy curve) and, with ``per_example``,
``per_example.jsonl``; beside them ``examples.jsonl`` (the first examples' words and scores),
``summary.json``, ``summary.md`` and ``run.json``; with ``--naopc_bounds beam|exact``, ``bounds.jsonl`` in
``output_dir`` (every removal mode's lines).

Hard rationales are the top ``round(threshold * n)`` of the ``n`` words the model saw; words the truncation
dropped rank below every seen word in the soft scores.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..eraser.results import result_record, write_results
from ..eraser.verify import verify_results
from ..explainers import explainer_class
from ..files import CLAIM_FILE, atomic_write_text, holds_claim
from ..metrics import (
    hard_rationale_from_scores,
    iou_f1,
    mask_to_spans,
    score_records,
    soft_token_metrics,
    token_prf,
)
from ..precision import precision_name
from ..validation import UsageError, remove_outputs
from .bounds import bounds_lines, bounds_summary, naopc_scores
from .config import MASKED_ACCURACY_FRACTIONS
from .records import EvaluationResult, Example
from .summary import aopc_curve, summary_row, summary_table

logger = logging.getLogger(__name__)

#: what an evaluation writes at the top of its output folder (besides one folder per method)
EVALUATION_FILES = ("run.json", "summary.json", "summary.md", "examples.jsonl", "bounds.jsonl")

Key = tuple[str, str]  # (annotation_id, docid)


@dataclass
class MethodRecords:
    """One method's results lines under one removal mode, and its rationales over the words the model saw
    (per ``(annotation_id, docid)`` with human evidence): gold mask and soft scores, gold and hard spans."""

    records: list[dict[str, Any]]
    truth: dict[Key, np.ndarray] = field(default_factory=dict)
    soft: dict[Key, np.ndarray] = field(default_factory=dict)
    gold: dict[Key, set] = field(default_factory=dict)
    hard: dict[Key, set] = field(default_factory=dict)


@dataclass
class MethodScores:
    """One method's ``scores.json``, ``curves.json`` and summary row under one removal mode."""

    scores: dict[str, Any]
    curves: dict[str, Any]
    row: dict[str, Any]


# ---- pure: from an EvaluationResult to what the files hold -------------------------------------------------


def full_scores(ex: Example, kept: Sequence[int], kept_scores: np.ndarray) -> np.ndarray:
    """One score per document word; words the truncation dropped rank below every seen word."""
    floor = (kept_scores.min() - 1.0) if len(kept_scores) else 0.0
    scores = np.full(len(ex.words), floor, dtype=float)
    scores[list(kept)] = kept_scores
    return scores[: sum(ex.doc_lengths)]


def hard_rationale_over_seen(
    doc_scores: np.ndarray, seen: Sequence[int], threshold: float
) -> list[tuple[int, int]]:
    """Spans, in document positions, of the top ``round(threshold * len(seen))`` seen words (ties: earlier
    first). Unseen words are never chosen, so no span bridges a cut (``head_tail`` drops a document's middle).
    """
    chosen = np.zeros(len(doc_scores), dtype=bool)
    for start, end in hard_rationale_from_scores(doc_scores[list(seen)], threshold):
        chosen[list(seen[start:end])] = True
    return mask_to_spans(chosen)


def method_records(result: EvaluationResult, removal: str, method: str) -> MethodRecords:
    """The results lines of ``method`` under ``removal`` and its rationales over the seen words."""
    out = MethodRecords([])
    for ann, ex, output in zip(result.annotations, result.examples, result.outputs, strict=True):
        found = output.result(removal, method)
        kept = output.kept_words
        scores = full_scores(ex, kept, found.word_scores)
        soft, hard, offset = {}, {}, 0
        for docid, length in zip(ex.docids, ex.doc_lengths, strict=True):
            doc_scores = scores[offset : offset + length]
            seen = [i - offset for i in kept if offset <= i < offset + length]
            soft[docid] = doc_scores
            # hard rationales come from the words the model saw: top round(threshold * seen) of them
            hard[docid] = hard_rationale_over_seen(doc_scores, seen, result.threshold)
            if seen and docid in ann.evidence_docids:
                key = (ann.annotation_id, docid)
                document_truth = np.asarray(ex.rationale[offset : offset + length], dtype=bool)
                out.truth[key], out.soft[key] = document_truth[seen], doc_scores[seen]
                out.hard[key] = set(hard[docid])
                # gold spans over the seen words, in document positions (like the hard spans)
                out.gold[key] = set(mask_to_spans(document_truth & np.isin(np.arange(length), seen)))
            offset += length
        out.records.append(
            result_record(
                ann,
                result.labels,
                found.probs,
                soft_scores=soft,
                hard_spans=hard,
                comprehensiveness_probabilities=found.comp,
                sufficiency_probabilities=found.suff,
                thresholded_probabilities=found.thresholded,
                tokens_to_flip=found.tokens_to_flip,
            )
        )
    return out


def summary_name(result: EvaluationResult) -> str:
    """The model's name in summary rows: ``model_name``, else the model folder's name."""
    config = result.config
    return config.model_name or (Path(config.model).name if config.model else result.model_name)


def method_scores(result: EvaluationResult, removal: str, method: str, found: MethodRecords) -> MethodScores:
    """``scores.json`` (the scorer's sections, ``visible_only``, ``evaluation_settings``), ``curves.json`` and
    the summary row of ``method`` under ``removal``."""
    config = result.config
    scores = score_records(
        found.records,
        result.annotations,
        result.split.documents,
        result.labels,
        aopc_thresholds=config.aopc_thresholds,
        removal=removal,
        threshold=result.threshold,
    )
    # ERASER scores whole documents, so human rationale beyond max_length counts as missed by every method;
    # the same metrics over the words the model saw tell the methods apart when documents are cut.
    scores["visible_only"] = {
        "token_soft_metrics": soft_token_metrics(found.truth, found.soft),
        "token_prf": token_prf(found.gold, found.hard),
        "iou_scores": iou_f1(found.gold, found.hard),
    }
    scores["evaluation_settings"].update(
        {
            "method": method,
            "explainer": result.explainer_params[method],
            "word_aggregation": config.word_aggregation,
            "max_length": config.max_length,
            "truncation": config.truncation,
            "target": config.target,
            "precision": precision_name(config.bf16),
        }
    )
    fractions = list(MASKED_ACCURACY_FRACTIONS) if config.masked_accuracy_curve else []
    per_method = [o.result(removal, method) for o in result.outputs]
    masked = np.array([r.masked_correct for r in per_method], dtype=float)
    curves = {
        "aopc": aopc_curve(config.aopc_thresholds, scores.get("classification_scores", {})),
        "masked_accuracy": {
            "fractions": fractions,
            "accuracy": masked.mean(axis=0).tolist() if fractions and len(masked) else [],
        },
    }
    seconds = float(sum(r.seconds for r in per_method))
    scores["naopc"] = naopc_scores(result, removal, method)
    row = summary_row(summary_name(result), method, scores, curves, seconds)
    for bounds, values in scores["naopc"].items():  # NAOPC with each kind of bounds, side by side
        for name in ("comprehensiveness", "sufficiency"):
            row[f"{name}_naopc_{bounds}"] = values[name]
    if explainer_class(method).has_convergence_delta:
        deltas = [abs(r.convergence_delta or 0.0) for r in per_method]
        row["ig_mean_abs_delta"] = float(np.mean(deltas)) if deltas else 0.0
    return MethodScores(scores, curves, row)


def per_example_lines(result: EvaluationResult, removal: str, method: str, found: MethodRecords) -> list[str]:
    """One JSON line per example: gold label, class probabilities of the full input, of the empty input and
    after each removal/keep of the top words (threshold and AOPC bins), and the example's own agreement with
    the human rationale over the words the model saw (None without human evidence)."""
    lines = []
    for ann, ex, output in zip(result.annotations, result.examples, result.outputs, strict=True):
        r = output.result(removal, method)
        keys = [key for key in found.truth if key[0] == ann.annotation_id]
        agreement: dict[str, float | None] = {"auprc_visible": None, "token_f1_visible": None}
        if keys:
            agreement["auprc_visible"] = float(
                np.mean([soft_token_metrics({k: found.truth[k]}, {k: found.soft[k]})["auprc"] for k in keys])
            )
            agreement["token_f1_visible"] = float(
                np.mean(
                    [token_prf({k: found.gold[k]}, {k: found.hard[k]})["instance_macro"]["f1"] for k in keys]
                )
            )
        thresholds = sorted(r.thresholded)
        empty: np.ndarray | list[float] = r.empty if r.empty is not None else []
        lines.append(
            json.dumps(
                {
                    "annotation_id": ann.annotation_id,
                    "label": ex.label,
                    "words_kept": output.words_kept,
                    "probs": [float(v) for v in r.probs],
                    "empty_probs": [float(v) for v in empty],
                    "comp_probs": [float(v) for v in r.comp],
                    "suff_probs": [float(v) for v in r.suff],
                    "aopc_thresholds": [float(t) for t in thresholds],
                    "comp_aopc_probs": [[float(v) for v in r.thresholded[t][0]] for t in thresholds],
                    "suff_aopc_probs": [[float(v) for v in r.thresholded[t][1]] for t in thresholds],
                    "tokens_to_flip": int(r.tokens_to_flip),
                    "aopc_bounds": output.bounds.get(removal),
                    **agreement,
                }
            )
            + "\n"
        )
    return lines


def shown_examples(result: EvaluationResult, removal: str) -> list[dict[str, Any]]:
    """The first ``shown_examples`` examples' seen words, rationale and every method's word scores."""
    shown = []
    pairs = list(zip(result.examples, result.outputs, strict=True))[: result.config.shown_examples]
    for ex, output in pairs:
        kept = output.kept_words
        methods = output.methods[removal]
        first = next(iter(methods.values()))
        shown.append(
            {
                "annotation_id": ex.annotation_id,
                "label": result.labels[ex.label],
                "prediction": result.labels[int(np.argmax(first.probs))],
                "words": [ex.words[i] for i in kept],
                "rationale": [ex.rationale[i] for i in kept],
                "scores": {m: [float(v) for v in r.word_scores] for m, r in methods.items()},
            }
        )
    return shown


def run_info(result: EvaluationResult) -> dict[str, Any]:
    """The body of ``run.json`` (each removal mode's copy adds its ``removal`` and the list of all)."""
    config = result.config
    return {
        "model": config.model,
        "model_name": result.model_name,
        "data_dir": config.data_dir,
        "split": config.split,
        "examples": len(result.examples),
        "labels": result.labels,
        "methods": list(config.methods),
        "removal": config.removal,
        "aggregation": config.aggregation,
        "word_aggregation": config.word_aggregation,
        "max_length": config.max_length,
        "truncation_mode": config.truncation,
        "threshold": result.threshold,
        "aopc_thresholds": list(config.aopc_thresholds),
        "truncation": result.truncation,
        "rationale_coverage": result.rationale_coverage,
        "sgt_settings": result.sgt_settings,
        "precision": precision_name(config.bf16),  # of the model passes; accumulations are float32
        "processes": result.processes,
        "seconds": result.seconds,
        "forward_passes": result.forward_passes,
        "config": {k: v for k, v in asdict(config).items() if k not in ("model", "data_dir", "output_dir")},
        "load_report": result.split.report.summary(),
    }


# ---- writing -----------------------------------------------------------------------------------------------


def remove_previous_outputs(out: Path) -> None:
    """Clear what an earlier evaluation wrote into ``out`` (method folders, ``removal_*`` folders, summaries),
    so that a method or removal mode not evaluated this time cannot sit beside the new results; other files
    stay."""
    if not out.is_dir():
        return
    method_dirs = [p.name for p in out.iterdir() if p.is_dir() and (p / "scores.json").is_file()]
    removed = remove_outputs(out, [*EVALUATION_FILES, *method_dirs], ["removal_*"])
    if removed:
        logger.info("replaced the earlier evaluation in %s (%s)", out, ", ".join(sorted(removed)))


def write_removal(result: EvaluationResult, removal: str, out_dir: Path) -> list[dict[str, Any]]:
    """Every method's files, ``examples.jsonl`` and the summary of one removal mode; returns its rows."""
    config = result.config
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in config.methods:
        method_dir = out_dir / method
        method_dir.mkdir(exist_ok=True)
        found = method_records(result, removal, method)
        if config.per_example:
            lines = per_example_lines(result, removal, method, found)
            atomic_write_text(method_dir / "per_example.jsonl", "".join(lines))
        results_path = write_results(method_dir / "results.jsonl", found.records)
        verify_results(
            results_path, result.annotations, result.split.documents, result.labels, config.aopc_thresholds
        )
        scored = method_scores(result, removal, method, found)
        atomic_write_text(method_dir / "scores.json", json.dumps(scored.scores, indent=2))
        atomic_write_text(method_dir / "curves.json", json.dumps(scored.curves, indent=2))
        rows.append(scored.row)
    shown = shown_examples(result, removal)
    atomic_write_text(out_dir / "examples.jsonl", "".join(json.dumps(s) + "\n" for s in shown))
    atomic_write_text(out_dir / "summary.json", json.dumps(rows, indent=2))
    atomic_write_text(out_dir / "summary.md", summary_table(rows) + "\n")
    return rows


def write_evaluation(
    result: EvaluationResult, output_dir: str | Path | None = None, claim: str | None = None
) -> list[dict[str, Any]]:
    """Write the output folder of ``result`` into ``output_dir`` (default: the config's) and return the
    summary rows (one per method and removal mode). An earlier evaluation's files there are replaced; with
    ``claim`` (the CLI's), only while this run still holds the folder (nothing is deleted otherwise)."""
    began = time.perf_counter()
    base = Path(output_dir if output_dir is not None else result.config.output_dir)  # type: ignore[arg-type]
    if not holds_claim(base, claim):
        raise UsageError(
            f"{base} was taken over by another run since this evaluation started (its {CLAIM_FILE} changed); "
            "nothing was written or deleted there"
        )
    config = result.config
    remove_previous_outputs(base)
    rows = []
    for removal in config.removals:
        rows += write_removal(result, removal, config.output_dir_for(removal, base))
    lines = bounds_lines(result)
    if lines:
        atomic_write_text(base / "bounds.jsonl", "".join(lines))
    run = run_info(result)
    run["seconds"] = result.seconds + (time.perf_counter() - began)
    for removal in config.removals:
        info = {**run, "removal": removal, "removals": list(config.removals)}
        info["naopc_bounds"] = {"search": config.naopc_bounds, "cost": bounds_summary(result, removal)}
        atomic_write_text(config.output_dir_for(removal, base) / "run.json", json.dumps(info, indent=2))
    return rows
