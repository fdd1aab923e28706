"""The sections of the evaluation report, each an HTML fragment from :class:`EvalRun` s: the metrics table,
the differences against the first model (with paired-bootstrap intervals), the runs table, the curve plots
and the per-example heatmaps. :mod:`sgt_nlp.report.build` assembles them into the page."""

from __future__ import annotations

import html
import math
from pathlib import Path

from ..metrics.verdict_rule import NOT_MEASURED
from .eval_runs import EvalRun
from .experiment import METHOD_TITLES
from .heatmap import render_heatmap_legend, render_html_heatmap
from .noise import (
    NOISE_THRESHOLD,
    PER_EXAMPLE_METRICS,
    VERDICT_FAMILIES,
    compare,
    measures,
    per_example_faithfulness,
    read_bounds,
    three_measure_verdict,
)
from .plots import Series, line_plot_png

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


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(float(value)) else None


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def method_title(method: str, aggregation: object = None) -> str:
    """The method's name as the verdict writes it; ``gradient`` under another aggregation than
    grad × input is named by it."""
    if method == "gradient" and aggregation not in (None, "grad_x_input"):
        return f"Gradient ({aggregation})"
    return METHOD_TITLES.get(method, method)


def run_method_title(runs: list[EvalRun], method: str) -> str:
    return method_title(method, next((run.run.get("aggregation") for run in runs), None))


def shown_columns(runs: list[EvalRun]) -> tuple[tuple[str, str, int], ...]:
    """The metric columns with a value in at least one row (an all-dash column is left out)."""
    rows = [row for run in runs for row in run.summary]
    return tuple(c for c in METRIC_COLUMNS if any(_number(row.get(c[0])) is not None for row in rows))


def removals_of(runs: list[EvalRun]) -> list[str]:
    return list(dict.fromkeys(r for run in runs for r in run.removals))


def _head(key: str, label: str, sign: int | None = None) -> str:
    arrow = "" if sign is None else f' <span class="dir">{"↑" if sign > 0 else "↓"}</span>'
    better = "" if sign is None else f' title="{"higher" if sign > 0 else "lower"} is better"'
    return f'<th scope="col" data-term="{escape(key)}"{better}>{escape(label)}{arrow}</th>'


def _method_cell(runs: list[EvalRun], method: str) -> str:
    return (
        f'<td class="method" data-term="{escape(method)}" title="{escape(method)}">'
        f"{escape(run_method_title(runs, method))}</td>"
    )


# ------------------------------------------------------------------------------------------------ sections


def metrics_table(runs: list[EvalRun], methods: list[str]) -> str:
    """Rows grouped by method; within a method the best value of each column is bold (when models differ).
    Columns without a value in any row are left out, and the removal column when every row has the same."""
    columns = shown_columns(runs)
    header = "".join(_head(key, label, sign) for key, label, sign in columns)
    body = []
    removals = removals_of(runs)
    several = len(removals) > 1
    for method, removal in [(m, r) for m in methods for r in removals]:
        rows = [
            (run, row)
            for run in runs
            for row in run.summary
            if row.get("method") == method and row.get("removal") == removal
        ]
        best: dict[str, float] = {}
        if len(rows) > 1:
            for key, _, sign in columns:
                values = [v for _, row in rows if (v := _number(row.get(key))) is not None]
                if len(set(values)) > 1:
                    best[key] = max(values) if sign > 0 else min(values)
        for i, (run, row) in enumerate(rows):
            cells = []
            for key, _, _ in columns:
                value = _number(row.get(key))
                bold = ' class="best"' if value is not None and best.get(key) == value else ""
                data = "" if value is None else f' data-value="{value!r}"'
                cells.append(f'<td data-metric="{escape(key)}"{data}{bold}>{_fmt(value)}</td>')
            group = ' class="group-start"' if i == 0 else ""
            removal_cell = f'<td class="removal">{escape(removal)}</td>' if several else ""
            body.append(
                f'<tr{group} data-model="{escape(run.name)}" data-method="{escape(method)}" '
                f'data-removal="{escape(removal)}">'
                f'<th scope="row">{escape(run.name)}</th>{_method_cell(runs, method)}'
                f"{removal_cell}{''.join(cells)}</tr>"
            )
    removal_head = _head("removal", "Removal") if several else ""
    return (
        '<table id="metrics-table" class="metrics"><thead><tr><th scope="col">Model</th>'
        f"{_head('method', 'Method')}{removal_head}{header}"
        f"</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def delta_table(runs: list[EvalRun], methods: list[str]) -> str:
    """Each later model minus the first one, per method: the headline comparison in one glance."""
    if len(runs) < 2:
        return ""
    base = runs[0]
    keys = [c for c in shown_columns(runs) if c[0] != "macro_f1"]
    several = len(removals_of(runs)) > 1
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
                a = next(
                    (r for r in base.summary if r.get("method") == method and r["removal"] == removal), None
                )
                b = next(
                    (r for r in other.summary if r.get("method") == method and r["removal"] == removal), None
                )
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
                cells += _verdict_cells(base, other, method, removal, values_of)
                removal_cell = f'<td class="removal">{escape(removal)}</td>' if several else ""
                rows.append(
                    f'<tr><th scope="row">{escape(other.name)} − {escape(base.name)}</th>'
                    f"{_method_cell(runs, method)}{removal_cell}{''.join(cells)}</tr>"
                )
    if not rows:
        return ""
    header = "".join(_head(key, label) for key, label, _ in keys)
    removal_head = _head("removal", "Removal") if several else ""
    header += "".join(f'<th scope="col">{name.capitalize()} verdict</th>' for name, _ in VERDICT_FAMILIES)
    bootstrapped = ", ".join(label for key, label, _ in keys if key in PER_EXAMPLE_METRICS)
    return (
        f"<h3>Differences against {escape(base.name)}</h3>"
        '<p class="hint">Green: the later model is better on that metric (direction as in the table above); '
        "red: worse; grey ≈: within the noise, not a difference. "
        f"{escape(bootstrapped)}: paired bootstrap over the examples both folders share (per-example values "
        "from their results.jsonl, 2000 resamples); a difference counts when its 95% interval, shown beside "
        "it, excludes 0. Other columns are not stored per example: a difference below "
        f"{NOISE_THRESHOLD} counts as noise. Rows compare the same removal mode only. The verdict columns "
        "call a faithfulness difference better or worse only when raw AOPC, AOPC minus the same model's "
        "Random AOPC and NAOPC with all-order bounds (bounds.jsonl, evaluate --naopc_bounds beam) all say "
        "so beyond their intervals, and 'depends on normalisation' when they differ (hover for the three "
        "numbers; * NAOPC with all-order bounds not measured: the folders have no bounds.jsonl).</p>"
        f'<table id="delta-table" class="metrics"><thead><tr><th scope="col">Models</th>'
        f"{_head('method', 'Method')}{removal_head}{header}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _delta_cell(key: str, delta: float, sign: int, paths: tuple[Path | None, Path | None], values_of) -> str:
    """One cell of the difference table: coloured only when the difference is larger than the noise."""
    interval = ""
    if key in PER_EXAMPLE_METRICS and all(paths):
        base_values, other_values = values_of(paths[0]).get(key, {}), values_of(paths[1]).get(key, {})
        verdict, bounds, shared = compare(base_values, other_values, sign)
        if bounds is not None:
            interval = f'<span class="ci">[{bounds[0]:+.3f}, {bounds[1]:+.3f}]</span>'
            title = f"95% paired-bootstrap interval over {shared} shared examples"
        else:
            verdict, title = (
                ("noise" if abs(delta) < NOISE_THRESHOLD else _direction(delta, sign)),
                "no shared examples",
            )
    else:
        verdict = "noise" if abs(delta) < NOISE_THRESHOLD else _direction(delta, sign)
        title = f"stated noise threshold: differences below {NOISE_THRESHOLD} are noise"
    mark = "≈ " if verdict == "noise" else ""
    return (
        f'<td class="{verdict}" data-metric="{escape(key)}" data-verdict="{verdict}" title="{escape(title)}">'
        f"{mark}{delta:+.3f}{interval}</td>"
    )


def _verdict_cells(base: EvalRun, other: EvalRun, method: str, removal: str, values_of) -> list[str]:
    """The verdict from three measures per faithfulness metric for one row (– without per-example
    results)."""
    cells = []
    for name, sign in VERDICT_FAMILIES:
        of_run = []
        for run in (base, other):
            path, random_path = run.results.get((method, removal)), run.results.get(("random", removal))
            if path is None:
                break
            random_aopc = None
            if random_path is not None and method != "random":
                random_aopc = values_of(random_path).get(f"{name}_aopc", {})
            bounds = read_bounds(run.path / "bounds.jsonl").get(removal, {})
            of_run.append(measures(values_of(path).get(f"{name}_aopc", {}), random_aopc, bounds, name))
        if len(of_run) < 2:
            cells.append("<td>–</td>")
            continue
        verdict, shown = three_measure_verdict(of_run[0], of_run[1], sign)
        title = "; ".join(
            f"{key}: {word}"
            + ("" if mean is None else f" {mean:+.3f}")
            + ("" if interval is None else f" [{interval[0]:+.3f}, {interval[1]:+.3f}]")
            for key, (word, interval, mean) in shown.items()
        )
        word = verdict.split(" (")[0]
        css = {"better": "better", "worse": "worse"}.get(word, "noise")
        shown_word = word + ("*" if NOT_MEASURED in verdict else "")  # * is explained under the table
        cells.append(
            f'<td class="{css}" data-measures-verdict="{escape(verdict)}" title="{escape(title)}">'
            f"{escape(shown_word)}</td>"
        )
    return cells


def _direction(delta: float, sign: int) -> str:
    return "better" if delta * sign > 0 else "worse"


def runs_table(runs: list[EvalRun]) -> str:
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
            examples += (
                f" ({coverage['with_rationale']} with a human rationale: the plausibility columns "
                "cover these)"
            )
        problems = "".join(f"<li>{escape(p)}</li>" for p in run.problems)
        rows.append(
            f'<tr><th scope="row">{escape(run.name)}</th>'
            f"<td><code>{escape(info.get('model', ''))}</code></td>"
            f"<td><code>{escape(info.get('data_dir', ''))}</code> / {escape(info.get('split', ''))}</td>"
            f"<td>{escape(examples)}</td><td>{escape(settings)}"
            f"{'' if threshold is None else f'; threshold={threshold:.4g}'}</td>"
            f"<td>{escape(sgt_text)}</td><td>{escape(trunc) or '–'}</td>"
            f"<td><code>{escape(run.path)}</code>"
            f"{f'<ul class=problems>{problems}</ul>' if problems else ''}</td></tr>"
        )
    return (
        '<table id="runs-table" class="runs"><thead><tr><th>Model</th><th>Model path</th>'
        "<th>Data / split</th><th>Examples</th><th>Settings</th><th>SGT settings</th><th>Truncation</th>"
        "<th>Folder</th></tr></thead>"
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


#: the curve panels: (key, curve kind, title, x label, y label, note, y limits)
PANELS: tuple[tuple[str, str, str, str, str, str, tuple[float, float] | None], ...] = (
    (
        "aopc_comprehensiveness",
        "comprehensiveness",
        "AOPC: comprehensiveness per bin (higher is better)",
        "top-k% most salient words removed",
        "drop in p(predicted class)",
        "Removing the words a faithful explanation ranks first should hurt the prediction most.",
        None,
    ),
    (
        "aopc_sufficiency",
        "sufficiency",
        "AOPC: sufficiency per bin (lower is better)",
        "top-k% most salient words kept (the rest removed)",
        "drop in p(predicted class)",
        "Keeping only the words a faithful explanation ranks first should preserve the prediction.",
        None,
    ),
    (
        "masked_accuracy",
        "masked_accuracy",
        "Accuracy as the most salient words are removed",
        "top-k% most salient words removed",
        "accuracy",
        "A faithful explanation makes accuracy fall fast; Random is the reference.",
        (0.0, 1.02),
    ),
)


def plots(runs: list[EvalRun], methods: list[str]) -> dict[str, bytes]:
    """The curve panels that have data (an evaluation without the masked-accuracy curve, as the experiment
    runner's, has no masked-accuracy panel rather than an empty one)."""
    images = {}
    for key, kind, title, xlabel, ylabel, note, ylim in PANELS:
        series = [
            Series(s.model, run_method_title(runs, s.method), s.x, s.y)
            for s in _curve_series(runs, methods, kind)
        ]
        if series:
            images[key] = line_plot_png(series, title, xlabel, ylabel, note=note, ylim=ylim)
    return images


def shared_examples(runs: list[EvalRun], limit: int) -> list[str]:
    """Annotation ids shown by every folder that has examples, in the first folder's order."""
    with_examples = [run for run in runs if run.examples]
    if not with_examples:
        return []
    common = set.intersection(*({ex.get("annotation_id") for ex in run.examples} for run in with_examples))
    ordered = [
        ex.get("annotation_id") for ex in with_examples[0].examples if ex.get("annotation_id") in common
    ]
    # ids as read from examples.jsonl (which this package writes with one in every line); not checked here
    return list(dict.fromkeys(ordered))[:limit]  # type: ignore[return-value]


def example_section(index: int, annotation_id: str, runs: list[EvalRun], methods: list[str]) -> str:
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
            f'<span class="pred {"ok" if correct else "wrong"}">{escape(run.name)}: {escape(prediction)} '
            f"{'✓' if correct else '✗'}</span>"
        )
    cells = []
    for method in methods:
        for run in runs:
            rec = records[run.name]
            title = f"{run.name} · {run_method_title(runs, method)}"
            scores = (rec or {}).get("scores", {}).get(method)
            words = (rec or {}).get("words") or []
            if rec is None or scores is None or len(scores) != len(words):
                reason = "not in this folder" if rec is None else "no scores for this method"
                cells.append(
                    f'<div class="cell missing"><div class="cell-title">{escape(title)}</div>'
                    f"{escape(reason)}</div>"
                )
                continue
            rationale = rec.get("rationale")
            if rationale is not None and len(rationale) != len(words):
                rationale = None
            signed = any(float(s) < 0 for s in scores)
            cells.append(
                f'<div class="cell"><div class="cell-title">{escape(title)} '
                f"{render_heatmap_legend(signed)}</div>"
                f"{render_html_heatmap(words, scores, rationale, signed=signed)}</div>"
            )
    n_rationale = sum(1 for v in first.get("rationale") or [] if v)
    return (
        f'<section class="example" id="example-{index}" data-annotation-id="{escape(annotation_id)}">'
        f'<h3>{escape(annotation_id)} <span class="gold">gold: {escape(first.get("label"))}</span> '
        f"{' '.join(predictions)}"
        f'</h3><p class="hint">{len(first.get("words") or [])} words, {n_rationale} in the human rationale '
        "(underlined).</p>"
        f'<div class="grid" style="grid-template-columns: repeat({len(runs)}, minmax(0, 1fr))">'
        f"{''.join(cells)}</div>"
        "</section>"
    )
