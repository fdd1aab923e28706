"""Turn ``sgt-nlp evaluate`` output folders (docs/evaluation_output.md) into one standalone HTML report.

The page needs nothing but a browser: no network, no JavaScript, plots embedded as base64 PNG (also written as
files beside the page for papers and slides). Rows are grouped by method so that the question the report
exists for, "does model B explain better than model A with the same method?", is answered by adjacent rows.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .heatmap import HEATMAP_CSS, render_heatmap_legend, render_html_heatmap
from .noise import NOISE_THRESHOLD, PER_EXAMPLE_METRICS, compare, per_example_faithfulness
from .plots import Series, line_plot_png

__all__ = ["METRIC_COLUMNS", "PLOT_FILES", "EvalRun", "build_report", "load_eval_dir"]

#: (summary key, column heading, +1 if higher is better / -1 if lower is better)
METRIC_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("accuracy", "Accuracy", 1),
    ("macro_f1", "Macro F1", 1),
    ("comprehensiveness", "Comprehensiveness", 1),
    ("sufficiency", "Sufficiency", -1),
    ("comprehensiveness_aopc", "AOPC comp.", 1),
    ("sufficiency_aopc", "AOPC suff.", -1),
    ("auprc", "AUPRC", 1),
    ("token_f1", "Token F1", 1),
    ("iou_f1", "IOU F1", 1),
    ("masked_accuracy_auc", "Masked-acc. mean", -1),
)

PLOT_FILES: dict[str, str] = {
    "aopc_comprehensiveness": "aopc_comprehensiveness.png",
    "aopc_sufficiency": "aopc_sufficiency.png",
    "masked_accuracy": "masked_accuracy.png",
}


@dataclass
class EvalRun:
    """One evaluation folder, read leniently: what is missing is listed in ``problems`` and shown on the page."""

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


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc.msg}, line {exc.lineno})") from None


def load_eval_dir(path: str | Path) -> EvalRun:
    """Read one evaluation folder. ``run.json`` and ``summary.json`` are required (they make the table); curves
    and examples are optional and their absence is recorded in :attr:`EvalRun.problems`."""
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
        (sub.name[len("removal_"):], sub) for sub in sorted(path.glob("removal_*")) if (sub / "summary.json").is_file()
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


def _unique_names(runs: list[EvalRun]) -> None:
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


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(float(value)) else None


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


# ------------------------------------------------------------------------------------------------ sections


def _metrics_table(runs: list[EvalRun], methods: list[str]) -> str:
    """Rows grouped by method; within a method the best value of each column is bold (when models differ)."""
    header = "".join(
        f'<th scope="col" title="{"higher" if sign > 0 else "lower"} is better">{_e(label)} '
        f'<span class="dir">{"↑" if sign > 0 else "↓"}</span></th>'
        for _, label, sign in METRIC_COLUMNS
    )
    body = []
    removals = list(dict.fromkeys(r for run in runs for r in run.removals))
    for method, removal in [(m, r) for m in methods for r in removals]:
        rows = [(run, row) for run in runs for row in run.summary
                if row.get("method") == method and row.get("removal") == removal]
        best: dict[str, float] = {}
        if len(rows) > 1:
            for key, _, sign in METRIC_COLUMNS:
                values = [v for _, row in rows if (v := _number(row.get(key))) is not None]
                if len(set(values)) > 1:
                    best[key] = max(values) if sign > 0 else min(values)
        for i, (run, row) in enumerate(rows):
            cells = []
            for key, _, _ in METRIC_COLUMNS:
                value = _number(row.get(key))
                bold = ' class="best"' if value is not None and best.get(key) == value else ""
                data = "" if value is None else f' data-value="{value!r}"'
                cells.append(f'<td data-metric="{_e(key)}"{data}{bold}>{_fmt(value)}</td>')
            group = ' class="group-start"' if i == 0 else ""
            body.append(
                f'<tr{group} data-model="{_e(run.name)}" data-method="{_e(method)}" data-removal="{_e(removal)}">'
                f'<th scope="row">{_e(run.name)}</th><td class="method">{_e(method)}</td>'
                f'<td class="removal">{_e(removal)}</td>{"".join(cells)}</tr>'
            )
    return (
        '<table id="metrics-table" class="metrics"><thead><tr><th scope="col">Model</th><th scope="col">Method'
        f'</th><th scope="col" title="how removed words are replaced for comp/suff/AOPC">Removal</th>{header}'
        f"</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _delta_table(runs: list[EvalRun], methods: list[str]) -> str:
    """Each later model minus the first one, per method: the headline comparison in one glance."""
    if len(runs) < 2:
        return ""
    base = runs[0]
    keys = [c for c in METRIC_COLUMNS if c[0] != "macro_f1"]
    rows = []
    per_example: dict[Path, dict[str, dict[str, float]]] = {}

    def values_of(path: Path) -> dict[str, dict[str, float]]:
        if path not in per_example:
            per_example[path] = per_example_faithfulness(path)
        return per_example[path]

    for other in runs[1:]:
        for method in methods:
            # a difference is only meaningful between rows of the same removal mode
            for removal in [r for r in base.removals if r in other.removals]:
                a = next((r for r in base.summary if r.get("method") == method and r["removal"] == removal), None)
                b = next((r for r in other.summary if r.get("method") == method and r["removal"] == removal), None)
                if a is None or b is None:
                    continue
                paths = (base.results.get((method, removal)), other.results.get((method, removal)))
                cells = []
                for key, _, sign in keys:
                    va, vb = _number(a.get(key)), _number(b.get(key))
                    if va is None or vb is None:
                        cells.append("<td>–</td>")
                        continue
                    cells.append(_delta_cell(key, vb - va, sign, paths, values_of))
                rows.append(
                    f'<tr><th scope="row">{_e(other.name)} − {_e(base.name)}</th><td class="method">{_e(method)}</td>'
                    f'<td class="removal">{_e(removal)}</td>{"".join(cells)}</tr>'
                )
    if not rows:
        return ""
    header = "".join(f"<th>{_e(label)}</th>" for _, label, _ in keys)
    bootstrapped = ", ".join(label for key, label, _ in keys if key in PER_EXAMPLE_METRICS)
    return (
        f"<h3>Differences against {_e(base.name)}</h3>"
        '<p class="hint">Green: the later model is better on that metric (direction as in the table above); '
        "red: worse; grey ≈: within the noise, not a difference. "
        f"{_e(bootstrapped)}: paired bootstrap over the examples both folders share (per-example values from "
        "their results.jsonl, 2000 resamples); a difference counts when its 95% interval, shown beside it, "
        f"excludes 0. Other columns are not stored per example: a difference below {NOISE_THRESHOLD} counts as "
        "noise. Rows compare the same removal mode only.</p>"
        f'<table id="delta-table" class="metrics"><thead><tr><th>Models</th><th>Method</th><th>Removal</th>'
        f"{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _delta_cell(key: str, delta: float, sign: int, paths: tuple[Path | None, Path | None], values_of) -> str:
    """One cell of the difference table: coloured only when the difference is larger than the noise."""
    interval = ""
    if key in PER_EXAMPLE_METRICS and all(paths):
        base_values, other_values = values_of(paths[0]).get(key, {}), values_of(paths[1]).get(key, {})
        verdict, bounds, shared = compare(base_values, other_values, sign)
        if bounds is not None:
            interval = f' <span class="ci">[{bounds[0]:+.3f}, {bounds[1]:+.3f}]</span>'
            title = f"95% paired-bootstrap interval over {shared} shared examples"
        else:
            verdict, title = ("noise" if abs(delta) < NOISE_THRESHOLD else _direction(delta, sign)), "no shared examples"
    else:
        verdict = "noise" if abs(delta) < NOISE_THRESHOLD else _direction(delta, sign)
        title = f"stated noise threshold: differences below {NOISE_THRESHOLD} are noise"
    mark = "≈ " if verdict == "noise" else ""
    return (f'<td class="{verdict}" data-metric="{_e(key)}" data-verdict="{verdict}" title="{_e(title)}">'
            f"{mark}{delta:+.3f}{interval}</td>")


def _direction(delta: float, sign: int) -> str:
    return "better" if delta * sign > 0 else "worse"


def _runs_table(runs: list[EvalRun]) -> str:
    rows = []
    for run in runs:
        info = run.run
        truncation = info.get("truncation") or {}
        trunc = ""
        if truncation.get("examples"):
            trunc = f"{truncation.get('examples_truncated', 0)}/{truncation['examples']} examples truncated"
            if truncation.get("rationale_words"):
                trunc += (
                    f"; {truncation.get('rationale_words_truncated', 0)}/{truncation['rationale_words']} "
                    "rationale words cut"
                )
        sgt = info.get("sgt_settings")
        sgt_text = ", ".join(f"{k}={v}" for k, v in sgt.items()) if isinstance(sgt, dict) and sgt else "plain"
        settings = ", ".join(
            f"{key}={info[key]}"
            for key in ("removal", "aggregation", "word_aggregation", "max_length")
            if key in info
        )
        threshold = _number(info.get("threshold"))
        coverage = info.get("rationale_coverage") or {}
        examples = str(info.get("examples", ""))
        if coverage.get("without_rationale"):  # plausibility covers only the examples with a human rationale
            examples += f" ({coverage['with_rationale']} with a human rationale: the plausibility columns cover these)"
        problems = "".join(f"<li>{_e(p)}</li>" for p in run.problems)
        rows.append(
            f'<tr><th scope="row">{_e(run.name)}</th><td><code>{_e(info.get("model", ""))}</code></td>'
            f"<td><code>{_e(info.get('data_dir', ''))}</code> / {_e(info.get('split', ''))}</td>"
            f"<td>{_e(examples)}</td><td>{_e(settings)}"
            f"{'' if threshold is None else f'; threshold={threshold:.4g}'}</td>"
            f"<td>{_e(sgt_text)}</td><td>{_e(trunc) or '–'}</td>"
            f"<td><code>{_e(run.path)}</code>{f'<ul class=problems>{problems}</ul>' if problems else ''}</td></tr>"
        )
    return (
        '<table id="runs-table" class="runs"><thead><tr><th>Model</th><th>Model path</th><th>Data / split</th>'
        "<th>Examples</th><th>Settings</th><th>SGT settings</th><th>Truncation</th><th>Folder</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _curve_series(runs: list[EvalRun], methods: list[str], kind: str) -> list[Series]:
    series = []
    for method in methods:
        for run in runs:
            curves = run.curves.get(method) or {}
            if kind == "masked_accuracy":
                part = curves.get("masked_accuracy") or {}
                x, y = part.get("fractions"), part.get("accuracy")
            else:
                part = curves.get("aopc") or {}
                x, y = part.get("thresholds"), part.get(kind)
            if x and y and len(x) == len(y):
                series.append(Series(run.name, method, [100 * float(v) for v in x], [float(v) for v in y]))
    return series


def _plots(runs: list[EvalRun], methods: list[str]) -> dict[str, bytes]:
    return {
        "aopc_comprehensiveness": line_plot_png(
            _curve_series(runs, methods, "comprehensiveness"),
            "AOPC: comprehensiveness per bin (higher is better)",
            "top-k% most salient words removed",
            "drop in p(predicted class)",
            note="Removing the words a faithful explanation ranks first should hurt the prediction most.",
        ),
        "aopc_sufficiency": line_plot_png(
            _curve_series(runs, methods, "sufficiency"),
            "AOPC: sufficiency per bin (lower is better)",
            "top-k% most salient words kept (the rest removed)",
            "drop in p(predicted class)",
            note="Keeping only the words a faithful explanation ranks first should preserve the prediction.",
        ),
        "masked_accuracy": line_plot_png(
            _curve_series(runs, methods, "masked_accuracy"),
            "Accuracy as the most salient words are removed",
            "top-k% most salient words removed",
            "accuracy",
            note="A faithful explanation makes accuracy fall fast; Random is the reference.",
            ylim=(0.0, 1.02),
        ),
    }


def _shared_examples(runs: list[EvalRun], limit: int) -> list[str]:
    """Annotation ids shown by every folder that has examples, in the first folder's order."""
    with_examples = [run for run in runs if run.examples]
    if not with_examples:
        return []
    common = set.intersection(*({ex.get("annotation_id") for ex in run.examples} for run in with_examples))
    ordered = [
        ex.get("annotation_id") for ex in with_examples[0].examples if ex.get("annotation_id") in common
    ]
    return list(dict.fromkeys(ordered))[:limit]


def _example_section(index: int, annotation_id: str, runs: list[EvalRun], methods: list[str]) -> str:
    records = {
        run.name: next((ex for ex in run.examples if ex.get("annotation_id") == annotation_id), None)
        for run in runs
    }
    first = next(rec for rec in records.values() if rec is not None)
    predictions = []
    for run in runs:
        rec = records[run.name]
        if rec is None:
            continue
        prediction = rec.get("prediction")
        correct = prediction == rec.get("label")
        predictions.append(
            f'<span class="pred {"ok" if correct else "wrong"}">{_e(run.name)}: {_e(prediction)} '
            f"{'✓' if correct else '✗'}</span>"
        )
    cells = []
    for method in methods:
        for run in runs:
            rec = records[run.name]
            title = f"{run.name} · {method}"
            scores = (rec or {}).get("scores", {}).get(method)
            words = (rec or {}).get("words") or []
            if rec is None or scores is None or len(scores) != len(words):
                reason = "not in this folder" if rec is None else "no scores for this method"
                cells.append(
                    f'<div class="cell missing"><div class="cell-title">{_e(title)}</div>{_e(reason)}</div>'
                )
                continue
            rationale = rec.get("rationale")
            if rationale is not None and len(rationale) != len(words):
                rationale = None
            signed = any(float(s) < 0 for s in scores)
            cells.append(
                f'<div class="cell"><div class="cell-title">{_e(title)} {render_heatmap_legend(signed)}</div>'
                f"{render_html_heatmap(words, scores, rationale, signed=signed)}</div>"
            )
    n_rationale = sum(1 for v in first.get("rationale") or [] if v)
    return (
        f'<section class="example" id="example-{index}" data-annotation-id="{_e(annotation_id)}">'
        f'<h3>{_e(annotation_id)} <span class="gold">gold: {_e(first.get("label"))}</span> {" ".join(predictions)}'
        f'</h3><p class="hint">{len(first.get("words") or [])} words, {n_rationale} in the human rationale '
        "(underlined).</p>"
        f'<div class="grid" style="grid-template-columns: repeat({len(runs)}, minmax(0, 1fr))">{"".join(cells)}</div>'
        "</section>"
    )


PAGE_CSS = """
:root { --ink: #1d2330; --muted: #5b6474; --line: #e3e6ec; --accent: #1b6ca8; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: var(--bg); line-height: 1.5; }
main { max-width: 1280px; margin: 0 auto; padding: 1.5rem 1.5rem 4rem; }
header.top { background: #1d2330; color: #fff; padding: 1.6rem 1.5rem 1.3rem; }
header.top .inner { max-width: 1280px; margin: 0 auto; }
header.top h1 { margin: 0 0 0.3rem; font-size: 1.7rem; font-weight: 650; letter-spacing: -0.01em; }
header.top p { margin: 0; color: #c9d1de; }
h2 { font-size: 1.25rem; margin: 2.2rem 0 0.6rem; border-bottom: 2px solid var(--line); padding-bottom: 0.3rem; }
h3 { font-size: 1.02rem; margin: 1.2rem 0 0.4rem; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.2rem;
        box-shadow: 0 1px 2px rgba(0,0,0,0.03); }
.howto { columns: 2 28rem; column-gap: 2rem; }
.howto p { margin: 0 0 0.6rem; break-inside: avoid; }
.hint { color: var(--muted); font-size: 0.88rem; margin: 0.2rem 0 0.6rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 0.9rem; }
th, td { padding: 0.42rem 0.6rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
table.metrics td { text-align: right; font-variant-numeric: tabular-nums; }
table.metrics td.method { text-align: left; color: var(--muted); }
thead th { background: #eef1f5; font-weight: 600; white-space: nowrap; position: sticky; top: 0; }
th .dir { color: var(--muted); font-weight: 400; }
tr.group-start > * { border-top: 2px solid #c9ced8; }
td.best { font-weight: 700; color: #0b5394; }
td.better { color: #1a7f37; font-weight: 600; } td.worse { color: #c0392b; font-weight: 600; }
td.noise { color: #888; } .ci { font-size: 0.8em; color: #666; font-weight: normal; }
table.runs { font-size: 0.82rem; } table.runs code { font-size: 0.78rem; word-break: break-all; }
ul.problems { margin: 0.3rem 0 0; padding-left: 1.1rem; color: #b35900; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 1rem; }
.plots figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 0.5rem; }
.plots img { width: 100%; height: auto; display: block; }
.plots figcaption { font-size: 0.82rem; color: var(--muted); padding: 0.3rem 0.4rem 0; }
.example { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 0.4rem 1rem 1rem;
           margin-bottom: 1.2rem; }
.example h3 { display: flex; flex-wrap: wrap; gap: 0.6rem; align-items: baseline; }
.gold { font-weight: 500; color: var(--muted); font-size: 0.9rem; }
.pred { font-size: 0.8rem; font-weight: 500; padding: 0.05rem 0.45rem; border-radius: 999px; }
.pred.ok { background: #e6f4ea; color: #1a7f37; } .pred.wrong { background: #fdecea; color: #c0392b; }
.grid { display: grid; gap: 0.8rem; }
.cell { border: 1px solid var(--line); border-radius: 6px; padding: 0.5rem 0.7rem; max-height: 24rem;
        overflow-y: auto; }
.cell.missing { color: var(--muted); font-style: italic; }
.cell-title { display: flex; justify-content: space-between; flex-wrap: wrap; gap: 0.4rem;
              font-size: 0.82rem; font-weight: 600; color: var(--muted); margin-bottom: 0.3rem; }
footer { color: var(--muted); font-size: 0.8rem; margin-top: 3rem; }
"""

HOW_TO_READ = """
<p><b>Faithfulness</b> asks whether the words an explanation ranks highest are the ones the model actually uses.
<b>Comprehensiveness</b> (higher is better) is the drop in the predicted class's probability when the top-ranked
words are removed; <b>sufficiency</b> (lower is better) is the drop when only they are kept. The <b>AOPC</b>
columns average these over the bins plotted below (top 1%, 5%, 10%, 20%, 50% of the words).</p>
<p><b>Agreement with the human rationale</b>: <b>AUPRC</b> ranks every word by its score against the human
rationale; <b>token F1</b> and <b>IOU F1</b> compare the top-ranked words (as many as the threshold allows) with
it. <b>Random</b> is the floor every method should clear; bold marks the best model for each method.</p>
<p><b>Masked accuracy</b> removes each example's top-k% salient words and re-measures accuracy: the faster it
falls, the more the explanation found what the model relies on (its mean is the last column, lower is
better).</p>
<p><b>Heatmaps</b>: each word is coloured by its score, normalised per example. Signed methods use
<span style="color:#ca0020;font-weight:600">red</span> for evidence for the predicted class and
<span style="color:#0571b0;font-weight:600">blue</span> against it; positive-only methods run from white to red.
<u><b>Underlined</b></u> words are the human rationale. Hover a word for its raw score.</p>
"""


def build_report(
    eval_dirs: Sequence[str | Path],
    output: str | Path,
    max_examples: int = 6,
    title: str = "Saliency evaluation report",
    sanity_dirs: Sequence[str | Path] = (),
    verdict: Sequence[str] = (),
) -> Path:
    """Write the HTML report and its three PNG plots; return the HTML path.

    ``verdict``: sentences shown first, in a "Verdict" section (``sgt-nlp demo`` puts its per-method verdicts
    with their bootstrap intervals there).

    ``output`` is the HTML file (``*.html``) or a folder (then ``report.html`` inside it); the PNGs
    (:data:`PLOT_FILES`) go beside the HTML.
    """
    if not eval_dirs:
        raise ValueError("build_report needs at least one evaluation folder")
    runs = [load_eval_dir(d) for d in eval_dirs]
    _unique_names(runs)
    methods = list(dict.fromkeys(m for run in runs for m in run.methods))
    output = Path(output)
    html_path = output if output.suffix.lower() in (".html", ".htm") else output / "report.html"
    html_path.parent.mkdir(parents=True, exist_ok=True)

    images = _plots(runs, methods)
    figures = []
    captions = {
        "aopc_comprehensiveness": "Comprehensiveness per bin: one line per model × method.",
        "aopc_sufficiency": "Sufficiency per bin: one line per model × method.",
        "masked_accuracy": "Accuracy after removing the top-k% salient words (k = 0…90).",
    }
    for key, png in images.items():
        (html_path.parent / PLOT_FILES[key]).write_bytes(png)
        encoded = base64.b64encode(png).decode("ascii")
        figures.append(
            f'<figure id="plot-{key.replace("_", "-")}"><img alt="{_e(captions[key])}" '
            f'src="data:image/png;base64,{encoded}"><figcaption>{_e(captions[key])} '
            f"(<code>{_e(PLOT_FILES[key])}</code>)</figcaption></figure>"
        )

    sanity_html = ""
    if sanity_dirs:
        from ..sanity_report import load_sanity, sanity_section

        parts = []
        for folder in sanity_dirs:
            result = load_sanity(folder)
            parts.append(f'<div class="card"><h3>{_e(Path(folder).name)}</h3>{sanity_section(result)}</div>')
        sanity_html = (
            '<section id="sanity"><h2>Sanity checks</h2><p class="hint">Class sensitivity and model randomisation '
            "(<code>sgt-nlp sanity</code>): maps that stay the same when the explained class or the weights change "
            "do not explain the prediction.</p>" + "".join(parts) + "</section>"
        )

    shown = _shared_examples(runs, max_examples)
    if shown:
        examples_html = "".join(_example_section(i, aid, runs, methods) for i, aid in enumerate(shown))
    else:
        examples_html = '<p class="hint">No example is shared by the evaluation folders (examples.jsonl).</p>'

    models = ", ".join(run.name for run in runs)
    datasets = sorted({f"{run.run.get('data_dir', '?')} ({run.run.get('split', '?')})" for run in runs})
    subtitle = f"Models: {models} · methods: {', '.join(methods)} · data: {'; '.join(datasets)}"
    verdict_html = ""
    if verdict:
        items = "".join(f"<li>{_e(sentence)}</li>" for sentence in verdict)
        verdict_html = f'<section id="verdict"><h2>Verdict</h2><div class="card"><ul>{items}</ul></div></section>\n'
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{PAGE_CSS}{HEATMAP_CSS}</style>
</head>
<body>
<header class="top"><div class="inner"><h1 id="report-title">{_e(title)}</h1><p>{_e(subtitle)}</p></div></header>
<main>
{verdict_html}<section id="how-to-read"><h2>How to read this</h2><div class="card howto">{HOW_TO_READ}</div></section>
<section id="metrics"><h2>Metrics</h2>
<p class="hint">One row per model × method; ↑ higher is better, ↓ lower is better. Accuracy and macro F1 do
not depend on the method.</p>
<div class="table-wrap">{_metrics_table(runs, methods)}</div>
<div class="table-wrap">{_delta_table(runs, methods)}</div>
</section>
<section id="curves"><h2>Curves</h2><div class="plots">{"".join(figures)}</div></section>
<section id="examples"><h2>Examples</h2>
<p class="hint">The same examples for every model; columns are models, rows methods.</p>
{examples_html}
</section>
{sanity_html}
<section id="runs"><h2>Runs</h2><div class="table-wrap">{_runs_table(runs)}</div></section>
<footer>Generated by <code>sgt-nlp report</code> from {len(runs)} evaluation folder(s). Standalone page: no
network, no scripts.</footer>
</main>
</body>
</html>
"""
    html_path.write_text(page, encoding="utf-8")
    return html_path
