"""The sanity checks' tables: one verdict row per method, extracted once (:func:`verdict_rows`) and written
as a terminal table, an HTML table or a Markdown table; the per-stage accuracy tables.

Every function takes the result as a dict (``SanityResult.to_dict()`` or ``sanity.json`` read back) or any
object with a ``to_dict()``; undefined values (NaN or None) are shown as a dash.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VERDICT_COLOURS: dict[str, str] = {
    "sensitive": "#1b7837",
    "weak": "#b8860b",
    "insensitive": "#b2182b",
    "degenerate": "#6a3d9a",
}


def as_dict(result: Any) -> Mapping[str, Any]:
    """The result as a mapping: a ``SanityResult`` through its ``to_dict()``, a mapping as it is."""
    to_dict = getattr(result, "to_dict", None)
    return to_dict() if callable(to_dict) else result


def number(value: Any, signed: bool = True, missing: str = "–") -> str:
    """``+0.123`` (``0.123`` unsigned); ``missing`` for None and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def all_randomised_similarity(method: Mapping[str, Any], stages: Sequence[Any]) -> float | None:
    """Mean ρ on magnitudes after every stage is re-drawn, or None when the cascade stopped early."""
    cascading = method.get("cascading") or []
    return cascading[-1]["spearman_abs"]["mean"] if cascading and len(cascading) == len(stages) else None


@dataclass(frozen=True)
class VerdictRow:
    """One method's figures and verdicts, as every verdict table shows them."""

    label: str
    signed: bool
    precision_rho: float | None
    precision_noise: bool
    class_rho: float | None
    class_rho_abs: float | None
    class_tau: float | None
    class_top10: float | None
    excluded: int
    class_verdict: str
    randomization_rho: float | None
    all_randomised_rho: float | None
    randomization_verdict: str | None


def verdict_rows(result: Any) -> list[VerdictRow]:
    """The verdict row of every method of a result, in the order checked."""
    data = as_dict(result)
    rows = []
    for m in data["methods"]:
        cls = m["class_sensitivity"]
        rows.append(
            VerdictRow(
                label=m["label"],
                signed=bool(m["signed"]),
                precision_rho=m["precision"]["spearman"],
                precision_noise=m["precision"]["verdict"] == "noise",
                class_rho=cls["spearman"]["mean"],
                class_rho_abs=cls["spearman_abs"]["mean"],
                class_tau=cls["kendall"]["mean"],
                class_top10=cls["top10_overlap"]["mean"],
                excluded=cls["spearman"]["excluded"],
                class_verdict=m["class_verdict"],
                randomization_rho=m.get("randomization_similarity"),
                all_randomised_rho=all_randomised_similarity(m, data["stages"]),
                randomization_verdict=m.get("randomization_verdict"),
            )
        )
    return rows


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


# ---- terminal ----------------------------------------------------------------------------------------------


#: what the verdict tables' columns measure, one line (below the terminal and HTML tables)
LEGEND = (
    "ρ: Spearman rank correlation between two saliency maps of the same text (1 = same word ranking), mean "
    "over examples; |·|: of the absolute scores. fp32~fp64: the map against itself computed in float64 "
    "(low = rounding noise). vs other class: the predicted class's map against another class's "
    "(low = the map tells classes apart: good). after top rand.: against the map after the head and top "
    "layer are re-drawn; all rand.: after every layer is (low = the map depends on what the model "
    "learned: good)."
)


def summary_table(result: Any) -> str:
    """The verdict table printed in the terminal, with its legend."""
    header = (
        f"{'method':<32} {'signed':<6} {'fp32~fp64 ρ':>11} {'ρ vs other class':>16} "
        f"{'ρ|·| vs other class':>19} {'top-10% shared':>14} {'class verdict':<13} "
        f"{'ρ|·| after top rand.':>20} {'ρ|·| all rand.':>14} {'rand. verdict':<13}"
    )
    lines = [header, "-" * len(header)]
    for r in verdict_rows(result):
        lines.append(
            f"{r.label:<32} {_yes(r.signed):<6} {number(r.precision_rho, missing='-'):>11} "
            f"{number(r.class_rho, missing='-'):>16} {number(r.class_rho_abs, missing='-'):>19} "
            f"{number(r.class_top10, missing='-'):>14} {r.class_verdict:<13} "
            f"{number(r.randomization_rho, missing='-'):>20} {number(r.all_randomised_rho, missing='-'):>14} "
            f"{r.randomization_verdict or '-':<13}"
        )
    return "\n".join([*lines, "", LEGEND])


def stage_table(result: Any, mode: str = "cascading") -> str:
    """Accuracy and prediction agreement after each randomisation stage (terminal)."""
    data = as_dict(result)
    lines = [f"{mode:<40} {'accuracy':>8} {'agreement':>9}"]
    rows = [("original", data["original"])]
    rows += [
        (("+ " if mode == "cascading" else "") + r["stage"], r) for r in data["randomization"].get(mode, [])
    ]
    for name, record in rows:
        accuracy = number(record["accuracy"], False, "-")
        lines.append(f"{name:<40} {accuracy:>8} {number(record['agreement'], False, '-'):>9}")
    return "\n".join(lines)


# ---- Markdown ----------------------------------------------------------------------------------------------


def markdown_table(results: Mapping[str, Any]) -> str:
    """One Markdown row per (model, method): class ρ and verdict, ρ |·| after head + top layer and verdict.

    ``results`` maps a model name to its sanity result; this is the findings table of ``docs/sanity.md``.
    """
    lines = [
        "| model | method | signed | class ρ | class verdict | ρ \\|·\\| after head + top layer | "
        "randomisation verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        for r in verdict_rows(result):
            noise = f" (fp64 ρ {number(r.precision_rho)})" if r.precision_noise else ""
            lines.append(
                f"| {name} | `{r.label}` | {_yes(r.signed)} | {number(r.class_rho)} | "
                f"{r.class_verdict}{noise} | {number(r.randomization_rho)} | "
                f"{r.randomization_verdict or '–'} |"
            )
    return "\n".join(lines)


# ---- HTML --------------------------------------------------------------------------------------------------


def _cell(value: Any, signed: bool = True) -> str:
    return f"<td>{html.escape(number(value, signed))}</td>"


def _verdict(text: str) -> str:
    colour = VERDICT_COLOURS.get(text, "#444")
    return f'<td class="verdict" style="color:{colour}">{html.escape(text)}</td>'


def verdict_table_html(result: Any) -> str:
    """The verdict table: precision, class sensitivity (every measure), randomisation after head + top
    layer; the legend below it says what each column measures."""
    head = (
        "<tr><th class='name'>method</th><th>signed</th><th>ρ fp32 vs fp64 map</th>"
        "<th>ρ vs other class</th><th>ρ |·| vs other class</th><th>τ vs other class</th>"
        "<th>top-10% words shared with other class</th><th>pairs excluded</th><th>class verdict</th>"
        "<th>ρ |·| after head + top layer re-drawn</th><th>ρ |·| after all layers re-drawn</th>"
        "<th>randomisation verdict</th></tr>"
    )
    rows = []
    for r in verdict_rows(result):
        rows.append(
            f"<tr><td class='name'>{html.escape(r.label)}</td><td>{_yes(r.signed)}</td>"
            f"{_cell(r.precision_rho)}{_cell(r.class_rho)}{_cell(r.class_rho_abs)}{_cell(r.class_tau)}"
            f"{_cell(r.class_top10)}<td>{r.excluded}</td>{_verdict(r.class_verdict)}"
            f"{_cell(r.randomization_rho)}{_cell(r.all_randomised_rho)}"
            f"{_verdict(r.randomization_verdict or '–')}</tr>"
        )
    legend = (
        "<p class='legend'>ρ: Spearman rank correlation between two saliency maps of the same text (1 = the "
        "same word ranking), mean over examples; |·|: of the absolute scores; τ: Kendall's τ. fp32 vs fp64: "
        "the map against itself in double precision (low = rounding noise). vs other class: the predicted "
        "class's map against another class's (low = the map tells the classes apart: good). Re-drawn: "
        "against the map of the same model with those layers re-initialised (low = the map depends on what "
        "the model learned: good). Excluded: pairs without a ranking (constant maps), left out of the means."
        "</p>"
    )
    return f"<table>{head}{''.join(rows)}</table>{legend}"


def stage_table_html(result: Any, modes: Sequence[str] = ("cascading", "independent")) -> str:
    """Accuracy and agreement with the original predictions after each stage."""
    data = as_dict(result)
    original = data["original"]
    parts = []
    for mode in modes:
        records = data.get("randomization", {}).get(mode)
        if not records:
            continue
        rows = [
            f"<tr><td class='name'>original</td>{_cell(original['accuracy'], False)}"
            f"{_cell(original['agreement'], False)}<td></td></tr>"
        ]
        for r in records:
            modules = html.escape(", ".join(r["modules"]))
            rows.append(
                f"<tr><td class='name'>{html.escape(r['stage'])}</td>{_cell(r['accuracy'], False)}"
                f"{_cell(r['agreement'], False)}<td class='name'>{modules}</td></tr>"
            )
        parts.append(
            f"<h3>{mode}</h3><table><tr><th class='name'>stage</th><th>accuracy</th><th>agreement</th>"
            f"<th class='name'>modules re-initialised</th></tr>{''.join(rows)}</table>"
        )
    return "".join(parts)
