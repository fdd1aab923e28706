"""Reports for rationale evaluations: the standalone HTML page of ``sgt-nlp report`` and per-word heatmaps
(terminal and HTML) shared with ``sgt-nlp explain``."""

from .build import METRIC_COLUMNS, PLOT_FILES, EvalRun, build_report, load_eval_dir
from .heatmap import (
    HEATMAP_CSS,
    normalise,
    render_heatmap_legend,
    render_heatmap_page,
    render_html_heatmap,
    render_terminal_heatmap,
)

__all__ = [
    "HEATMAP_CSS",
    "METRIC_COLUMNS",
    "PLOT_FILES",
    "EvalRun",
    "build_report",
    "load_eval_dir",
    "normalise",
    "render_heatmap_legend",
    "render_heatmap_page",
    "render_html_heatmap",
    "render_terminal_heatmap",
]
