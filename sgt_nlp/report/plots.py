"""The report's line plots (AOPC comprehensiveness, AOPC sufficiency, masked accuracy) as PNG bytes.

Colour encodes the model and line style the method, so "same method, different model" (the SGT-vs-plain
question) is always the same line style in two colours.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window: the report must build on headless machines

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

__all__ = ["Series", "figure", "line_plot_png"]

MODEL_COLOURS = ("#1b6ca8", "#d1495b", "#2a9d8f", "#e9a03b", "#6a4c93", "#4d4d4d", "#8ab17d", "#b5651d")
METHOD_STYLES: tuple[Any, ...] = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3)))
METHOD_MARKERS = ("o", "s", "^", "D", "v", "P")


@dataclass(frozen=True)
class Series:
    """One line: ``model`` and ``method`` pick colour and style; ``x`` in percent."""

    model: str
    method: str
    x: Sequence[float]
    y: Sequence[float]


def line_plot_png(
    series: Sequence[Series],
    title: str,
    xlabel: str,
    ylabel: str,
    note: str | None = None,
    ylim: tuple[float, float] | None = None,
) -> bytes:
    """Render ``series`` to a PNG (144 dpi); an empty ``series`` gives a plot saying there is no data."""
    models = list(dict.fromkeys(s.model for s in series))
    methods = list(dict.fromkeys(s.method for s in series))
    with plt.rc_context({"font.size": 11.5, "axes.titlesize": 12.5, "legend.fontsize": 10}):
        fig = figure(series, models, methods, title, xlabel, ylabel, note, ylim)
        try:
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", metadata={"Software": None})
            return buffer.getvalue()
        finally:
            plt.close(fig)


def figure(
    series: Sequence[Series],
    models: list[str],
    methods: list[str],
    title: str,
    xlabel: str,
    ylabel: str,
    note: str | None = None,
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """The plot as a matplotlib figure. The keys (colour = model, line style = method) sit below the axes,
    never over a curve."""
    fig, ax = plt.subplots(figsize=(6.0, 5.6), dpi=144)
    for s in series:
        m, k = models.index(s.model), methods.index(s.method)
        ax.plot(
            list(s.x),
            list(s.y),
            color=MODEL_COLOURS[m % len(MODEL_COLOURS)],
            linestyle=METHOD_STYLES[k % len(METHOD_STYLES)],
            marker=METHOD_MARKERS[k % len(METHOD_MARKERS)],
            markersize=4.5,
            linewidth=2.0,
        )
    if not series:
        ax.text(
            0.5, 0.5, "no data in the evaluation folders", ha="center", va="center", transform=ax.transAxes
        )
    ax.set_title(title, fontweight="bold", loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.spines[["top", "right"]].set_visible(False)
    keys = 0.0
    if series:
        model_handles = [
            Line2D([], [], color=MODEL_COLOURS[i % len(MODEL_COLOURS)], linewidth=3)
            for i in range(len(models))
        ]
        method_handles = [
            Line2D(
                [],
                [],
                color="#333333",
                linestyle=METHOD_STYLES[i % len(METHOD_STYLES)],
                marker=METHOD_MARKERS[i % len(METHOD_MARKERS)],
                markersize=4.5,
            )
            for i in range(len(methods))
        ]
        # stacked below the axes, the methods' key under the models': neither can cover a curve or the other
        bottom, row = (0.045 if note else 0.0), 0.036
        method_rows, model_rows = math.ceil(len(methods) / 2), math.ceil(len(models) / 4)
        common = {"frameon": False, "fontsize": 8.5, "title_fontsize": 8.5, "alignment": "left"}
        fig.legend(
            method_handles,
            methods,
            title="method (line style)",
            loc="lower left",
            bbox_to_anchor=(0.01, bottom),
            ncol=min(2, len(methods)),
            **common,
        )
        fig.legend(
            model_handles,
            models,
            title="model (colour)",
            loc="lower left",
            bbox_to_anchor=(0.01, bottom + row * (method_rows + 1) + 0.01),
            ncol=min(4, len(models)),
            **common,
        )
        keys = row * (method_rows + model_rows + 2) + 0.03
    if note:
        fig.text(0.01, 0.01, note, fontsize=9, color="#555555", ha="left", va="bottom")
    fig.tight_layout(rect=(0, (0.045 if note else 0) + keys, 1, 1))
    return fig
