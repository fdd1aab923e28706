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


def summary_table(result: Any) -> str:
    """The verdict table printed in the terminal."""
    header = (
        f"{'method':<32} {'signed':<6} {'fp64 ρ':>7} {'class ρ':>7} {'class ρ|·|':>10} {'class top10':>11} "
        f"{'class verdict':<13} {'rand ρ|·|':>9} {'all ρ|·|':>8} {'rand verdict':<12}"
    )
    lines = [header, "-" * len(header)]
    for r in verdict_rows(result):
        lines.append(
            f"{r.label:<32} {_yes(r.signed):<6} {number(r.precision_rho, missing='-'):>7} "
            f"{number(r.class_rho, missing='-'):>7} {number(r.class_rho_abs, missing='-'):>10} "
            f"{number(r.class_top10, missing='-'):>11} {r.class_verdict:<13} "
            f"{number(r.randomization_rho, missing='-'):>9} {number(r.all_randomised_rho, missing='-'):>8} "
            f"{r.randomization_verdict or '-':<12}"
        )
    return "\n".join(lines)


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
    layer."""
    head = (
        "<tr><th class='name'>method</th><th>signed</th><th>fp32 vs fp64 ρ</th><th>class ρ</th>"
        "<th>class ρ |·|</th><th>class τ</th><th>class top-10%</th><th>excluded</th><th>class verdict</th>"
        "<th>ρ |·| after head + top layer</th><th>ρ |·| all randomised</th>"
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
    return f"<table>{head}{''.join(rows)}</table>"


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
