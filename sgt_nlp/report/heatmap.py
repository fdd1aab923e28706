"""Per-word saliency heatmaps for the terminal (ANSI colours) and for HTML, sharing one colour scale.

Colour rules, the same everywhere so a reader learns them once: scores are normalised per text (by the largest
absolute score), signed scores use a diverging scale (red supports the prediction, blue opposes it, white is
zero), positive-only scores a sequential white-to-red scale; human-rationale words are underlined.
"""

from __future__ import annotations

import html
import math
import shutil
from collections.abc import Sequence

__all__ = [
    "HEATMAP_CSS",
    "heatmap_colors",
    "is_signed",
    "normalise",
    "render_heatmap_legend",
    "render_heatmap_page",
    "render_html_heatmap",
    "render_terminal_heatmap",
]

WHITE = (255, 255, 255)
RED = (202, 0, 32)  # ColorBrewer RdBu ends: readable on screen and in print
BLUE = (5, 113, 176)

#: Styles for :func:`render_html_heatmap` output; the report embeds them, so does any page reusing it.
HEATMAP_CSS = """
.heatmap { line-height: 1.9; font-size: 0.95rem; word-wrap: break-word; }
.heatmap .w { padding: 0.08em 0.18em; border-radius: 3px; }
.heatmap .r { text-decoration: underline; text-decoration-thickness: 2px; text-underline-offset: 3px;
              text-decoration-color: #111; font-weight: 600; }
.heatmap-legend { display: inline-flex; align-items: center; gap: 0.5em; font-size: 0.85rem; color: #444; }
.heatmap-legend .bar { display: inline-block; width: 9em; height: 0.9em; border-radius: 3px;
                       border: 1px solid #ccc; }
"""


def is_signed(scores: Sequence[float]) -> bool:
    """Whether ``scores`` need the diverging scale (any negative value)."""
    return any(float(s) < 0 for s in scores if math.isfinite(float(s)))


def normalise(scores: Sequence[float], signed: bool | None = None) -> list[float]:
    """Scores divided by the largest absolute score: in ``[-1, 1]`` (signed) or ``[0, 1]`` (positive-only).

    Non-finite scores become 0 so one NaN never blanks a whole example; an all-zero text stays all zero.
    """
    values = [float(s) if math.isfinite(float(s)) else 0.0 for s in scores]
    signed = is_signed(values) if signed is None else signed
    if not signed:
        values = [max(0.0, v) for v in values]
    scale = max((abs(v) for v in values), default=0.0)
    return [v / scale for v in values] if scale > 0 else [0.0] * len(values)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    t = min(1.0, max(0.0, t))
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def heatmap_colors(
    normalised: Sequence[float],
) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """``(background, foreground)`` RGB per normalised score; the foreground turns white on dark
    backgrounds."""
    colours = []
    for value in normalised:
        background = _mix(WHITE, RED if value >= 0 else BLUE, abs(value))
        r, g, b = background
        luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
        colours.append((background, (255, 255, 255) if luminance < 140 else (17, 17, 17)))
    return colours


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _check_lengths(words: Sequence[str], scores: Sequence[float], rationale: Sequence | None) -> None:
    if len(words) != len(scores):
        raise ValueError(f"{len(words)} words but {len(scores)} scores")
    if rationale is not None and len(rationale) != len(words):
        raise ValueError(f"{len(words)} words but {len(rationale)} rationale flags")


def render_html_heatmap(
    words: Sequence[str],
    scores: Sequence[float],
    rationale: Sequence[int | bool] | None = None,
    signed: bool | None = None,
    title: str | None = None,
) -> str:
    """One ``<div class="heatmap">`` with a coloured ``<span>`` per word (HTML-escaped); rationale words get
    class ``r`` (underlined). Each word's tooltip shows its raw score. Style with :data:`HEATMAP_CSS`."""
    _check_lengths(words, scores, rationale)
    signed = is_signed(scores) if signed is None else signed
    normalised = normalise(scores, signed)
    spans = []
    for i, (word, raw, (background, foreground)) in enumerate(
        zip(words, scores, heatmap_colors(normalised), strict=True)
    ):
        classes = "w r" if rationale is not None and rationale[i] else "w"
        style = f"background:{_hex(background)};color:{_hex(foreground)}"
        tip = f"{float(raw):.4g}" + (" (human rationale)" if classes == "w r" else "")
        spans.append(
            f'<span class="{classes}" style="{style}" title="{html.escape(tip)}">'
            f"{html.escape(str(word))}</span>"
        )
    kind = "signed" if signed else "positive"
    heading = f'<div class="heatmap-title">{html.escape(title)}</div>' if title else ""
    return f'{heading}<div class="heatmap" data-scale="{kind}">{" ".join(spans)}</div>'


def render_heatmap_legend(signed: bool) -> str:
    """A small colour bar explaining the scale used by :func:`render_html_heatmap`."""
    if signed:
        gradient = f"linear-gradient(to right, {_hex(BLUE)}, #ffffff, {_hex(RED)})"
        ends = ("&minus;max (against)", "+max (for)")
    else:
        gradient = f"linear-gradient(to right, #ffffff, {_hex(RED)})"
        ends = ("0", "max")
    return (
        f'<span class="heatmap-legend"><span>{ends[0]}</span><span class="bar" style="background:{gradient}">'
        f"</span><span>{ends[1]}</span></span>"
    )


def _ansi_rgb(rgb: tuple[int, int, int], background: bool, truecolor: bool) -> str:
    layer = 48 if background else 38
    if truecolor:
        return f"\x1b[{layer};2;{rgb[0]};{rgb[1]};{rgb[2]}m"
    cube = [round(c / 255 * 5) for c in rgb]  # xterm 256-colour cube (16 + 36r + 6g + b)
    return f"\x1b[{layer};5;{16 + 36 * cube[0] + 6 * cube[1] + cube[2]}m"


def render_terminal_heatmap(
    words: Sequence[str],
    scores: Sequence[float],
    rationale: Sequence[int | bool] | None = None,
    signed: bool | None = None,
    width: int | None = None,
    truecolor: bool = True,
) -> str:
    """Words on ANSI background colours (same scale as the HTML), wrapped to ``width`` columns.

    Rationale words are underlined. ``width`` defaults to the terminal width; ``truecolor=False`` uses the
    256-colour palette for terminals without 24-bit colour.
    """
    _check_lengths(words, scores, rationale)
    signed = is_signed(scores) if signed is None else signed
    width = width or shutil.get_terminal_size((100, 20)).columns
    reset = "\x1b[0m"
    lines: list[str] = []
    line: list[str] = []
    used = 0
    for i, (word, (background, foreground)) in enumerate(
        zip(words, heatmap_colors(normalise(scores, signed)), strict=True)
    ):
        word = str(word)
        if line and used + 1 + len(word) > width:
            lines.append(" ".join(line))
            line, used = [], 0
        underline = "\x1b[4m" if rationale is not None and rationale[i] else ""
        line.append(
            f"{_ansi_rgb(background, True, truecolor)}{_ansi_rgb(foreground, False, truecolor)}{underline}"
            f"{word}{reset}"
        )
        used += len(word) + (1 if used else 0)
    if line:
        lines.append(" ".join(line))
    scale = "blue = against, red = for the prediction" if signed else "white = 0, red = most salient"
    legend = f"[{scale}" + ("; underlined = human rationale]" if rationale is not None else "]")
    return "\n".join([*lines, legend])


def render_heatmap_page(
    title: str,
    items: Sequence[tuple[str, Sequence[str], Sequence[float], Sequence[int | bool] | None]],
    intro: str = "",
) -> str:
    """A standalone HTML page of heatmaps, one ``(heading, words, scores, rationale)`` item each (for
    ``sgt-nlp explain --html``): same colours as the report, no scripts, no network."""
    sections = []
    for heading, words, scores, rationale in items:
        signed = is_signed(scores)
        sections.append(
            f'<section class="item"><h2>{html.escape(heading)} {render_heatmap_legend(signed)}</h2>'
            f"{render_html_heatmap(words, scores, rationale, signed=signed)}</section>"
        )
    style = (
        "body{font-family:-apple-system,'Segoe UI',Roboto,Arial,sans-serif;color:#1d2330;background:#f6f7f9;"
        "margin:0;padding:1.5rem}main{max-width:1100px;margin:0 auto}h1{font-size:1.5rem}"
        "h2{font-size:1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}"
        ".item{background:#fff;border:1px solid #e3e6ec;border-radius:8px;padding:0.5rem 1rem 1rem;"
        "margin-bottom:1rem}.intro{color:#5b6474}"
    )
    intro_html = f'<p class="intro">{html.escape(intro)}</p>' if intro else ""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}{HEATMAP_CSS}</style></head><body><main><h1>{html.escape(title)}</h1>{intro_html}"
        f"{''.join(sections)}</main></body></html>\n"
    )
