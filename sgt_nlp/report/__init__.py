"""Reports for rationale evaluations: the standalone HTML page of ``sgt-nlp report`` and per-word heatmaps
(terminal and HTML) shared with ``sgt-nlp explain``; the sanity checks' page, section and tables."""

from .build import METRIC_COLUMNS, PLOT_FILES, EvalRun, build_report, load_eval_dir
from .heatmap import (
    HEATMAP_CSS,
    normalise,
    render_heatmap_legend,
    render_heatmap_page,
    render_html_heatmap,
    render_terminal_heatmap,
)
from .sanity_page import render_sanity_html, sanity_section, write_sanity_html
from .sanity_tables import markdown_table, stage_table, summary_table, verdict_rows

__all__ = [
    "HEATMAP_CSS",
    "METRIC_COLUMNS",
    "PLOT_FILES",
    "EvalRun",
    "build_report",
    "load_eval_dir",
    "markdown_table",
    "normalise",
    "render_heatmap_legend",
    "render_heatmap_page",
    "render_html_heatmap",
    "render_sanity_html",
    "render_terminal_heatmap",
    "sanity_section",
    "stage_table",
    "summary_table",
    "verdict_rows",
    "write_sanity_html",
]
