"""``sgt-nlp evaluate`` output folders read for the report: :class:`EvalRun` and :func:`load_eval_dir`
(the folder layout is docs/evaluation_output.md's)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EvalRun:
    """One evaluation folder, read leniently: what is missing is listed in ``problems`` and shown on the
    page."""

    path: Path
    name: str
    run: dict
    summary: list[dict]
    curves: dict[str, dict] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: ``(method, removal) -> results.jsonl``, for the per-example comparison of the difference table
    results: dict[tuple[str, str], Path] = field(default_factory=dict)

    @property
    def removals(self) -> list[str]:
        """Every removal mode of the folder: the main one first, then each ``removal_<mode>`` subfolder's."""
        return list(dict.fromkeys(str(row.get("removal", "-")) for row in self.summary))

    @property
    def methods(self) -> list[str]:
        listed = self.run.get("methods") or []
        return list(
            dict.fromkeys([*listed, *(row.get("method") for row in self.summary if row.get("method"))])
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc.msg}, line {exc.lineno})") from None


def load_eval_dir(path: str | Path) -> EvalRun:
    """Read one evaluation folder. ``run.json`` and ``summary.json`` are required (they make the table);
    curves and examples are optional and their absence is recorded in :attr:`EvalRun.problems`."""
    path = Path(path)
    for required in ("run.json", "summary.json"):
        if not (path / required).is_file():
            raise FileNotFoundError(f"{path} is not an evaluation folder: {required} is missing")
    run = _read_json(path / "run.json")
    summary = _read_json(path / "summary.json")
    if not isinstance(run, dict) or not isinstance(summary, list):
        raise ValueError(f"{path}: run.json must hold an object and summary.json a list of rows")
    name = str(run.get("model_name") or (summary[0].get("model_name") if summary else None) or path.name)
    main_removal = str(run.get("removal", "-"))
    summary = [{**row, "removal": str(row.get("removal", main_removal))} for row in summary]
    result = EvalRun(path=path, name=name, run=run, summary=summary)
    # every removal mode: the extra ones live in removal_<mode>/ with their own summary and results
    folders = [(main_removal, path)] + [
        (sub.name[len("removal_") :], sub)
        for sub in sorted(path.glob("removal_*"))
        if (sub / "summary.json").is_file()
    ]
    for removal, folder in folders:
        if folder != path:
            extra = _read_json(folder / "summary.json")
            if isinstance(extra, list):
                summary.extend({**row, "removal": str(row.get("removal", removal))} for row in extra)
        for row in summary:
            method = row.get("method")
            if row["removal"] == removal and method and (folder / method / "results.jsonl").is_file():
                result.results[(method, removal)] = folder / method / "results.jsonl"
    for method in result.methods:
        curves_path = path / method / "curves.json"
        if curves_path.is_file():
            result.curves[method] = _read_json(curves_path)
        else:
            result.problems.append(f"{method}/curves.json is missing: no curves for {method}")
    examples_path = path / "examples.jsonl"
    if examples_path.is_file():
        lines = examples_path.read_text(encoding="utf-8").splitlines()
        result.examples = [json.loads(line) for line in lines if line.strip()]
    else:
        result.problems.append("examples.jsonl is missing: no heatmaps")
    return result


def unique_names(runs: list[EvalRun]) -> None:
    """Two folders with the same model name (e.g. two seeds) get their folder name appended."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.name] = counts.get(run.name, 0) + 1
    for run in runs:
        if counts[run.name] > 1:
            run.name = f"{run.name} ({run.path.name})"
    seen: dict[str, int] = {}
    for run in runs:  # still equal (same folder name under different parents): number them
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name = f"{run.name} #{seen[run.name]}"


#: what two evaluation folders of one report must share: their examples (data and split); otherwise the
#: differences and the paired intervals compare numbers of different examples as if they were the same
COMPARED_SETTINGS = ("data_dir", "split")
_AMOUNTS = "its differences against it compare numbers taken at different removal amounts"
_INPUTS = "its differences against it compare models that saw different words of each document"
#: what they should share, and why: the fractions their comp/suff and AOPC numbers are taken at (a folder
#: evaluated on fewer examples has another default threshold), the words the models saw, and the precision
#: of the passes; a difference is listed among the later folder's problems (the README's own report pairs
#: two thresholds, and two models may need different lengths)
WARNED_SETTINGS = {
    "threshold": _AMOUNTS,
    "aopc_thresholds": _AMOUNTS,
    "max_length": _INPUTS,
    "truncation_mode": _INPUTS,
    "precision": "fp32 and bf16 passes are two protocols (docs/bf16.md); compare runs of one precision",
}


def check_comparable(runs: list[EvalRun]) -> None:
    """Refuse evaluation folders that did not evaluate the same examples, naming both ``run.json`` files and
    the setting (one missing from a ``run.json``, or a data folder that no longer exists, is not compared);
    list a different threshold, AOPC bins, max_length, truncation or precision among the later folder's
    problems."""
    import os

    def setting(run: EvalRun, key: str) -> Any:
        value = run.run.get(key)
        if key == "data_dir" and isinstance(value, str):
            # the folder itself (a demo's seed<s>/data links to the data); not compared where it is gone
            return os.path.realpath(value) if os.path.isdir(value) else None
        return list(value) if isinstance(value, (list, tuple)) else value

    first = runs[0]
    for other in runs[1:]:
        for key, why in WARNED_SETTINGS.items():
            a, b = setting(first, key), setting(other, key)
            if a is not None and b is not None and a != b:
                other.problems.append(f"{key} {b!r} differs from {a!r} of {first.name}: {why}")
        for key in COMPARED_SETTINGS:
            a, b = setting(first, key), setting(other, key)
            if a is not None and b is not None and a != b:
                where = other.path / "run.json"
                raise ValueError(
                    f"{where}: {key} {b!r} differs from {a!r} in {first.path / 'run.json'}; a report "
                    "compares models on the same examples, evaluated the same way"
                )


def merge_methods(run: EvalRun, other: EvalRun, rename: dict[str, str]) -> EvalRun:
    """``run`` with the methods of ``other`` (another evaluation of the same model and examples) added under
    new names: rows, curves, per-example files and heatmap scores. The experiment runner evaluates the
    ``l2`` gradient in a folder of its own (``gradient`` renamed ``gradient_l2``), and a verdict that names it
    needs its rows on the page."""
    for row in other.summary:
        method = row.get("method")
        if method in rename:
            run.summary.append({**row, "method": rename[method]})
    for (method, removal), path in other.results.items():
        if method in rename:
            run.results[(rename[method], removal)] = path
    for method, curves in other.curves.items():
        if method in rename:
            run.curves[rename[method]] = curves
    scores = {ex.get("annotation_id"): ex.get("scores") or {} for ex in other.examples}
    for example in run.examples:
        extra = scores.get(example.get("annotation_id"), {})
        for method, new in rename.items():
            if method in extra:
                example.setdefault("scores", {})[new] = extra[method]
    listed = list(run.run.get("methods") or [])
    run.run["methods"] = [new for new in rename.values() if new not in listed] + listed
    return run
