"""The sanity-check page: a standalone HTML file with embedded PNGs, from a sanity result
(``sgt_nlp.sanity.run_sanity_checks``'s, or ``sanity.json`` read back).

Rendering only: ``sgt-nlp report`` embeds :func:`sanity_section` in its own page; the checks never import
matplotlib. Plots use the Agg backend: no display is needed.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from .sanity_tables import as_dict, stage_table_html, verdict_table_html

MEASURE_LABELS: dict[str, str] = {
    "spearman": "Spearman ρ (signed)",
    "spearman_abs": "Spearman ρ (|scores|)",
    "kendall": "Kendall τ",
    "top10_overlap": "top-10% overlap",
}

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.8em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.8em 0; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 0.3em 0.7em; text-align: right; }
th { background: #f6f6f6; } td.name, th.name { text-align: left; font-family: monospace; }
.verdict { font-weight: 600; } .meta { color: #666; font-size: 0.9em; } img { max-width: 100%; }
.note { background: #f8f8f4; border-left: 3px solid #ccc; padding: 0.5em 1em; font-size: 0.9em; }
"""


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _value(x: Any) -> float:
    return math.nan if x is None else float(x)


def class_sensitivity_png(result: Any) -> str:
    """Bar chart (base64 PNG): per method the mean signed and magnitude Spearman, predicted vs other
    classes."""
    result = as_dict(result)
    plt = _pyplot()
    methods = result["methods"]
    labels = [
        m["label"] + (" (rounding noise)" if m["precision"]["verdict"] == "noise" else "") for m in methods
    ]
    signed = [_value(m["class_sensitivity"]["spearman"]["mean"]) for m in methods]
    magnitude = [_value(m["class_sensitivity"]["spearman_abs"]["mean"]) for m in methods]
    settings = result.get("settings", {})
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(labels) + 1.4))
    y = range(len(labels))
    ax.barh(
        [i - 0.2 for i in y], signed, height=0.4, label="Spearman ρ (scores as returned)", color="#2166ac"
    )
    ax.barh([i + 0.2 for i in y], magnitude, height=0.4, label="Spearman ρ (|scores|)", color="#92c5de")
    ax.axvline(
        settings.get("insensitive_threshold", 0.9), color="#b2182b", ls="--", lw=1, label="insensitive ≥"
    )
    ax.axvline(settings.get("sensitive_threshold", 0.5), color="#1b7837", ls=":", lw=1, label="sensitive ≤")
    ax.axvline(0, color="#444", lw=0.6)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("mean similarity, predicted-class map vs other-class maps")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def stage_similarity_png(result: Any, mode: str) -> str | None:
    """Small multiples (base64 PNG): per method, every measure after each randomisation stage, and the
    model's agreement with its original predictions; None when the mode was not run."""
    result = as_dict(result)
    records = result.get("randomization", {}).get(mode)
    if not records:
        return None
    plt = _pyplot()
    methods = [m for m in result["methods"] if m.get(mode)]
    columns = 3
    rows = math.ceil(len(methods) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.1 * rows), squeeze=False, sharey=True)
    # the original model is the first point: every map equals itself there
    stages = ["original", *(r["stage"] for r in records)]
    agreement = [1.0, *(_value(r["agreement"]) for r in records)]
    x = list(range(len(stages)))
    for ax, method in zip(axes.flat, methods, strict=False):
        for measure, label in MEASURE_LABELS.items():
            values = [1.0, *(_value(s[measure]["mean"]) for s in method[mode])]
            ax.plot(x, values, marker="o", ms=3, label=label)
        ax.plot(x, agreement, color="#999", ls="--", lw=1, label="prediction agreement")
        ax.axhline(0, color="#444", lw=0.5)
        ax.set_title(method["label"], fontsize=9)
        ax.set_xticks(x, [_short(s) for s in stages], rotation=60, ha="right", fontsize=7)
        ax.set_ylim(-1.05, 1.05)
    for ax in list(axes.flat)[len(methods) :]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    title = "cumulative, top (head) to bottom (embeddings)" if mode == "cascading" else "one stage at a time"
    fig.suptitle(f"{mode} randomisation: similarity to the original maps ({title})", fontsize=10)
    fig.legend(
        handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.965), ncol=5, fontsize=8, frameon=False
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _png(fig)


def _short(stage: str) -> str:
    return stage.split(" (")[0]


def sanity_section(result: Any) -> str:
    """The page body without ``<html>``: what ``sgt-nlp report`` can embed as a section."""
    result = as_dict(result)
    settings = result.get("settings", {})
    parts = [
        "<h2>Verdicts</h2>",
        f"<p class='meta'>{result['examples']} examples, "
        f"target {html.escape(str(settings.get('target_output')))}, "
        f"seed {settings.get('seed')}. Class verdict on the mean signed Spearman ρ of the scores as returned "
        "(for positive-only maps that is the magnitude ranking): "
        f"insensitive ≥ {settings.get('insensitive_threshold')}, "
        f"sensitive ≤ {settings.get('sensitive_threshold')}. Randomisation verdict on the mean Spearman ρ of "
        f"|scores| after the head (and pooler) and the top encoder layer are re-drawn: insensitive > "
        f"{settings.get('insensitive_threshold')}. A map whose float32 and float64 versions agree less than "
        f"{settings.get('precision_threshold')} is rounding noise (degenerate).</p>",
        verdict_table_html(result),
        "<h2>Class sensitivity</h2>",
        f"<img alt='class sensitivity' src='data:image/png;base64,{class_sensitivity_png(result)}'>",
    ]
    for mode in ("cascading", "independent"):
        png = stage_similarity_png(result, mode)
        if png is not None:
            parts += [
                f"<h2>{mode.capitalize()} randomisation</h2>",
                f"<img alt='{mode} randomisation' src='data:image/png;base64,{png}'>",
            ]
    parts += ["<h2>Model after each stage</h2>", stage_table_html(result)]
    return "\n".join(parts)


def render_sanity_html(result: Any) -> str:
    """A complete standalone page."""
    result = as_dict(result)
    title = f"Saliency sanity checks: {result.get('model', result.get('model_class', 'model'))}"
    meta = ", ".join(
        f"{k}: {html.escape(str(result[k]))}"
        for k in ("model_class", "data_dir", "split", "max_length")
        if k in result
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><p class='meta'>{meta}</p>"
        "<p class='note'>Class sensitivity: the map explaining the predicted class against the maps "
        "explaining the other classes; a method whose ranking does not change with the class cannot say "
        "which class a word supports. Randomisation: maps of the same class after re-initialising the "
        "model's layers; maps that survive do not depend on what the model learned. See docs/sanity.md.</p>"
        f"{sanity_section(result)}</body></html>\n"
    )


def write_sanity_html(result: Any, path: str | Path) -> Path:
    """Write :func:`render_sanity_html` to ``path``."""
    path = Path(path)
    atomic_write_text(path, render_sanity_html(result))
    return path
