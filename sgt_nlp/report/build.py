"""Turn ``sgt-nlp evaluate`` output folders (docs/evaluation_output.md) into one standalone HTML report.

The page needs nothing but a browser: no network, no JavaScript, plots embedded as base64 PNG (also written as
files beside the page for papers and slides). Rows are grouped by method so that the question the report
exists for, "does model B explain better than model A with the same method?", is answered by adjacent rows.
This module assembles the page; :mod:`.sections` renders its parts, :mod:`.eval_runs` reads the folders.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..files import atomic_write_bytes, atomic_write_text
from .eval_runs import EvalRun, check_comparable, load_eval_dir, unique_names
from .glossary import VERDICT_TERMS, glossary_html
from .heatmap import HEATMAP_CSS
from .sanity_page import sanity_section
from .sections import (
    METRIC_COLUMNS,
    PLOT_FILES,
    delta_table,
    escape,
    example_section,
    metrics_table,
    plots,
    removals_of,
    run_method_title,
    runs_table,
    shared_examples,
    shown_columns,
)

__all__ = ["METRIC_COLUMNS", "PLOT_FILES", "EvalRun", "build_report", "load_eval_dir"]


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
h2 { font-size: 1.25rem; margin: 2.2rem 0 0.6rem; border-bottom: 2px solid var(--line);
     padding-bottom: 0.3rem; }
h3 { font-size: 1.02rem; margin: 1.2rem 0 0.4rem; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.2rem;
        box-shadow: 0 1px 2px rgba(0,0,0,0.03); }
.howto p { margin: 0 0 0.6rem; }
.hint { color: var(--muted); font-size: 0.88rem; margin: 0.2rem 0 0.6rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 0.9rem; }
th, td { padding: 0.42rem 0.6rem; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
table.metrics td { text-align: right; font-variant-numeric: tabular-nums; }
table.metrics td.method { text-align: left; color: var(--muted); }
thead th { background: #eef1f5; font-weight: 600; position: sticky; top: 0; }
table.metrics { font-size: 0.84rem; } table.metrics th, table.metrics td { padding: 0.36rem 0.45rem; }
table.metrics thead th { white-space: normal; vertical-align: bottom; }
table.metrics td { white-space: nowrap; }
#delta-table td[data-measures-verdict] { white-space: normal; min-width: 4.5rem; }
#delta-table { font-size: 0.8rem; } #delta-table th, #delta-table td { padding: 0.32rem 0.35rem; }
th .dir { color: var(--muted); font-weight: 400; }
tr.group-start > * { border-top: 2px solid #c9ced8; }
td.best { font-weight: 700; color: #0b5394; }
td.better { color: #1a7f37; font-weight: 600; } td.worse { color: #c0392b; font-weight: 600; }
td.noise { color: #888; } .ci { display: block; font-size: 0.78em; color: #666; font-weight: normal; }
#bottom-line .card { border-left: 5px solid var(--accent); font-size: 1.05rem; }
#bottom-line p { margin: 0; }
dl.glossary { display: grid; grid-template-columns: minmax(11rem, max-content) 1fr; gap: 0.25rem 1rem;
              margin: 0 0 0.8rem; font-size: 0.9rem; }
dl.glossary dt { font-weight: 600; } dl.glossary dd { margin: 0; }
table.runs { font-size: 0.82rem; } table.runs code { font-size: 0.78rem; word-break: break-all; }
ul.problems { margin: 0.3rem 0 0; padding-left: 1.1rem; color: #b35900; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 1rem; }
.plots figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px;
                padding: 0.5rem; }
.plots img { width: 100%; height: auto; display: block; }
#sanity img { max-width: 100%; height: auto; } #sanity table { font-size: 0.82rem; }
#sanity .legend { color: var(--muted); font-size: 0.84rem; }
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
<p><b>Faithfulness</b> (comprehensiveness, sufficiency, AOPC) asks whether the words an explanation ranks
highest are the ones the model actually uses; <b>agreement</b> (AUPRC, token and IOU F1) whether they are the
words a human marked. ↑ higher is better, ↓ lower is better; bold marks the best model for each method.</p>
"""

HEATMAPS = """
<p><b>Heatmaps</b>: each word is coloured by its score, normalised per example. Signed methods use
<span style="color:#ca0020;font-weight:600">red</span> for evidence for the predicted class and
<span style="color:#0571b0;font-weight:600">blue</span> against it; positive-only methods run from white to
red. <u><b>Underlined</b></u> words are the human rationale. Hover a word for its raw score.</p>
"""


def build_report(
    eval_dirs: Sequence[str | Path | EvalRun],
    output: str | Path,
    max_examples: int = 6,
    title: str = "Saliency evaluation report",
    sanity: Mapping[str, Any] | None = None,
    verdict: Sequence[str] = (),
    bottom_line: str = "",
) -> Path:
    """Write the HTML report and its PNG plots; return the HTML path.

    ``eval_dirs``: evaluation folders, or :class:`EvalRun` s already read (e.g. with methods merged in by
    :func:`~sgt_nlp.report.eval_runs.merge_methods`).

    ``sanity``: sanity-check results by name (e.g. the folder name; each a ``SanityResult`` or its dict,
    as ``sgt_nlp.sanity.load_sanity`` reads it), shown in a "Sanity checks" section.

    ``verdict``: sentences shown first, in a "Verdict" section (``sgt-nlp demo`` puts its per-method verdicts
    with their bootstrap intervals there); ``bottom_line``: one paragraph in plain words above it (the demo's
    :func:`sgt_nlp.demo.bottom_line`, drawn from the same verdict).

    ``output`` is the HTML file (``*.html``) or a folder (then ``report.html`` inside it); the PNGs
    (:data:`PLOT_FILES`, those with data) go beside the HTML.
    """
    if not eval_dirs:
        raise ValueError("build_report needs at least one evaluation folder")
    runs = [d if isinstance(d, EvalRun) else load_eval_dir(d) for d in eval_dirs]
    check_comparable(runs)
    unique_names(runs)
    methods = list(dict.fromkeys(m for run in runs for m in run.methods))
    output = Path(output)
    html_path = output if output.suffix.lower() in (".html", ".htm") else output / "report.html"
    html_path.parent.mkdir(parents=True, exist_ok=True)

    images = plots(runs, methods)
    figures = []
    captions = {
        "aopc_comprehensiveness": "Comprehensiveness per bin: one line per model × method.",
        "aopc_sufficiency": "Sufficiency per bin: one line per model × method.",
        "masked_accuracy": "Accuracy after removing the top-k% salient words (k = 0…90).",
    }
    for key, name in PLOT_FILES.items():
        if key not in images:  # no data for this panel: no panel, and no stale file from an earlier report
            (html_path.parent / name).unlink(missing_ok=True)
            continue
        png = images[key]
        atomic_write_bytes(html_path.parent / name, png)
        encoded = base64.b64encode(png).decode("ascii")
        figures.append(
            f'<figure id="plot-{key.replace("_", "-")}"><img alt="{escape(captions[key])}" '
            f'src="data:image/png;base64,{encoded}"><figcaption>{escape(captions[key])} '
            f"(<code>{escape(name)}</code>)</figcaption></figure>"
        )
    curves_html = (
        f'<section id="curves"><h2>Curves</h2><div class="plots">{"".join(figures)}</div></section>'
        if figures
        else ""
    )

    sanity_html = sanity_block(sanity)

    shown = shared_examples(runs, max_examples)
    if shown:
        examples_html = "".join(example_section(i, aid, runs, methods) for i, aid in enumerate(shown))
    else:
        examples_html = '<p class="hint">No example is shared by the evaluation folders (examples.jsonl).</p>'

    models = ", ".join(run.name for run in runs)
    datasets = sorted({f"{run.run.get('data_dir', '?')} ({run.run.get('split', '?')})" for run in runs})
    titles = ", ".join(run_method_title(runs, method) for method in methods)
    subtitle = f"Models: {models} · methods: {titles} · data: {'; '.join(datasets)}"
    top_html = ""
    if bottom_line:
        top_html += (
            '<section id="bottom-line"><h2>Bottom line</h2>'
            f'<div class="card"><p>{escape(bottom_line)}</p></div></section>\n'
        )
    if verdict:
        items = "".join(f"<li>{escape(sentence)}</li>" for sentence in verdict)
        top_html += (
            f'<section id="verdict"><h2>Verdict</h2><div class="card"><ul>{items}</ul></div></section>\n'
        )
    terms = ["method", *methods, *(key for key, _, _ in shown_columns(runs))]
    if len(removals_of(runs)) > 1:
        terms.append("removal")
    if verdict or bottom_line:
        terms += VERDICT_TERMS
    if len(runs) > 1:
        terms += ["interval", "noise"]
    removal_note = ""
    if len(removals_of(runs)) == 1:
        removal_note = (
            f" Removed words are replaced by <code>{escape(removals_of(runs)[0])}</code> in every row "
            "(delete: the word is dropped, as ERASER does)."
        )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{PAGE_CSS}{HEATMAP_CSS}</style>
</head>
<body>
<header class="top"><div class="inner"><h1 id="report-title">{escape(title)}</h1>
<p>{escape(subtitle)}</p></div></header>
<main>
{top_html}<section id="how-to-read"><h2>How to read this</h2>
<div class="card howto">{HOW_TO_READ}{glossary_html(terms)}{HEATMAPS}</div></section>
<section id="metrics"><h2>Metrics</h2>
<p class="hint">One row per model × method; ↑ higher is better, ↓ lower is better. Accuracy and macro F1 do
not depend on the method.{removal_note}</p>
<div class="table-wrap">{metrics_table(runs, methods)}</div>
<div class="table-wrap">{delta_table(runs, methods)}</div>
</section>
{curves_html}
<section id="examples"><h2>Examples</h2>
<p class="hint">The same examples for every model; columns are models, rows methods.</p>
{examples_html}
</section>
{sanity_html}
<section id="runs"><h2>Runs</h2><div class="table-wrap">{runs_table(runs)}</div></section>
<footer>Generated by <code>sgt-nlp report</code> from {len(runs)} evaluation folder(s). Standalone page: no
network, no scripts.</footer>
</main>
</body>
</html>
"""
    atomic_write_text(html_path, page)
    return html_path


def sanity_block(results: Mapping[str, Any] | None) -> str:
    """The report's "Sanity checks" section: one card per named sanity result (empty without results)."""
    if not results:
        return ""
    parts = [
        f'<div class="card"><h3>{escape(name)}</h3>{sanity_section(result)}</div>'
        for name, result in results.items()
    ]
    return (
        '<section id="sanity"><h2>Sanity checks</h2><p class="hint">Class sensitivity and model '
        "randomisation (<code>sgt-nlp sanity</code>): maps that stay the same when the explained class or "
        "the weights change do not explain the prediction.</p>" + "".join(parts) + "</section>"
    )
