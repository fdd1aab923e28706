"""``sgt-nlp rescore``'s work: score an evaluation folder again from its ``results.jsonl`` files, without
the model."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..eraser import load_split
from ..eraser.results import ResultsError, read_results, write_results
from ..eraser.verify import verify_results
from ..files import PLAIN_NAME, atomic_write_text, is_inside
from ..metrics import score_records
from .summary import aopc_curve, score_columns, summary_table

#: the scores.json sections computed from results.jsonl alone, which rescoring recomputes
RESCORED_SECTIONS = (
    "iou_scores",
    "rationale_prf",
    "token_prf",
    "token_soft_metrics",
    "sentence_soft_metrics",
    "classification_scores",
)


def _is_fraction(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1


def rescore_output(output_dir: str | Path, data_dir: str | None = None) -> list[dict[str, Any]]:
    """Score an evaluation folder again from its saved ``results.jsonl`` files, without the model.

    For when the scorer changed (a fix, a new key): every method's results file is re-verified (and
    rewritten in :func:`~sgt_nlp.eraser.results.scorer_safe_order`), the sections of ``scores.json`` that
    depend on it alone are recomputed with the current code, and the AOPC points of ``curves.json`` and the
    rows of ``summary.json`` and ``summary.md`` follow. What needs the model (``visible_only``, the
    masked-accuracy curve, timings) is kept as it was. ``data_dir`` overrides the ERASER folder recorded in
    ``run.json`` (if it moved). Returns the new summary rows.
    """
    out = Path(output_dir)
    run_path = out / "run.json"
    if not run_path.is_file():
        raise FileNotFoundError(f"{run_path} does not exist: not an sgt-nlp evaluate output folder")
    run = json.loads(run_path.read_text())
    for field_name in ("methods", "labels", "aopc_thresholds"):
        if not isinstance(run.get(field_name), list):
            got = run.get(field_name)
            raise ValueError(f"{run_path}, field '{field_name}': a list is needed, got {got!r}")
    # the removal amounts every score is taken at, as `evaluate` accepts them: fractions in (0, 1)
    bins, threshold = run["aopc_thresholds"], run.get("threshold")
    if not bins or not all(_is_fraction(t) for t in bins):
        raise ValueError(f"{run_path}, field 'aopc_thresholds': fractions in (0, 1) are needed, got {bins!r}")
    if not _is_fraction(threshold):
        raise ValueError(f"{run_path}, field 'threshold': a fraction in (0, 1) is needed, got {threshold!r}")
    for method in run["methods"]:  # each names a folder that rescoring rewrites: it must be one inside out
        plain = isinstance(method, str) and PLAIN_NAME.fullmatch(method)
        if not plain or not is_inside(out / method, out):
            raise ValueError(f"{run_path}, field 'methods': {method!r} is not a method folder of {out}")
    split = load_split(data_dir or run["data_dir"], run["split"], labels=run["labels"])
    by_id = {ann.annotation_id: ann for ann in split.annotations}
    old_rows = {row["method"]: row for row in json.loads((out / "summary.json").read_text())}
    rows, staged = [], []
    try:
        for method in run["methods"]:
            method_dir = out / method
            results_path = method_dir / "results.jsonl"
            records = read_results(results_path)
            unknown = [r.get("annotation_id") for r in records if r.get("annotation_id") not in by_id]
            if unknown:
                raise ValueError(
                    f"{results_path}: annotations not in {run['split']} of the data, e.g. {unknown[:3]}"
                )
            wanted = {r["annotation_id"] for r in records}
            annotations = [ann for ann in split.annotations if ann.annotation_id in wanted]
            # every method is checked and scored before any file is replaced: a bad record leaves them all
            staged_results = method_dir / ".results.jsonl.rescored"
            staged.append(staged_results)
            write_results(staged_results, records)
            try:
                verify_results(
                    staged_results, annotations, split.documents, run["labels"], run["aopc_thresholds"]
                )
            except ResultsError as exc:  # name the user's file and its line, not the staged copy
                raise _in_original(exc, records, read_results(staged_results), results_path) from None
            old = json.loads((method_dir / "scores.json").read_text())
            settings = old.get("evaluation_settings", {})
            new = score_records(
                records,
                annotations,
                split.documents,
                run["labels"],
                iou_thresholds=settings.get("iou_thresholds", (0.5,)),
                aopc_thresholds=run["aopc_thresholds"],
                removal=settings.get("removal", run["removal"]),
                threshold=run["threshold"],
            )
            scores = {k: v for k, v in old.items() if k not in RESCORED_SECTIONS}
            scores.update({k: v for k, v in new.items() if k in RESCORED_SECTIONS})
            curves = json.loads((method_dir / "curves.json").read_text())
            cls = scores.get("classification_scores", {})
            curves["aopc"] = aopc_curve(run["aopc_thresholds"], cls)
            texts = {
                "scores.json": json.dumps(scores, indent=2, allow_nan=False),
                "curves.json": json.dumps(curves, indent=2, allow_nan=False),
            }
            rows.append((method_dir, texts, {**old_rows[method], **score_columns(scores, curves)}))
        summary = [row for _, _, row in rows]
        summary_json, summary_md = json.dumps(summary, indent=2), summary_table(summary) + "\n"
    except BaseException:
        for path in staged:
            path.unlink(missing_ok=True)
        raise
    for (method_dir, texts, _), staged_results in zip(rows, staged, strict=True):
        os.replace(staged_results, method_dir / "results.jsonl")
        for name, text in texts.items():
            atomic_write_text(method_dir / name, text)
    atomic_write_text(out / "summary.json", summary_json)
    atomic_write_text(out / "summary.md", summary_md)
    return summary


def _in_original(error: ResultsError, original: list[dict], staged: list[dict], path: Path) -> ResultsError:
    """``error`` about the staged (reordered) copy, restated for the line of ``path`` it came from."""
    line = error.line
    if line is not None and 0 < line <= len(staged):
        wanted = staged[line - 1].get("annotation_id")
        line = next((i for i, r in enumerate(original, start=1) if r.get("annotation_id") == wanted), None)
    return ResultsError(path, line, error.field, error.message)
