"""The tables and the plot of an experiment's aggregate (``results.md``, ``results.png``).

Everything is read from the aggregate itself (``sgt_nlp.experiments.statistics.aggregate``): each comparison
row carries its metric's title and direction, so this module needs nothing from the runner.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: how the tables name each explanation method (``gradient_l2`` is the score the trainer masks by)
METHOD_TITLES = {
    "gradient_l2": "Gradient (l2, the trained score)",
    "gradient": "Gradient × input",
    "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad",
    "occlusion": "Occlusion",
    "random": "Random",
    "conservative": "Conservative propagation",
}
#: the headline tables, one per faithfulness metric: the three measures a verdict reads (raw AOPC, AOPC −
#: the model's Random AOPC, NAOPC with all-order bounds) and, labelled, NAOPC with evaluated bounds, which
#: never decides; agreement with human rationales where a dataset has them
HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    "comprehensiveness": (
        "comprehensiveness_aopc",
        "comprehensiveness_aopc_minus_random",
        "comprehensiveness_naopc_bounds",
        "comprehensiveness_naopc",
    ),
    "sufficiency": (
        "sufficiency_aopc",
        "sufficiency_aopc_minus_random",
        "sufficiency_naopc_bounds",
        "sufficiency_naopc",
    ),
    "agreement": ("auprc_visible",),
}
#: how the verdict tables name a verdict metric
VERDICT_TITLES = {
    "comprehensiveness": "comp (3 measures) ↑",
    "sufficiency": "suff (3 measures) ↓",
    "auprc_visible": "AUPRC seen ↑",
}


def _fmt(value: list[float] | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"


def _interval(d: dict[str, float]) -> str:
    if math.isnan(d["mean"]):
        return "-"
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def _arrow(direction: int) -> str:
    """The metric's good direction: ↑ higher is better, ↓ lower is better."""
    return "↑" if direction > 0 else "↓"


def _seed_t(row: dict[str, Any]) -> str:
    """The t interval over the seed means, or - with one seed."""
    t = row.get("seed_interval")
    return "-" if not t else f"[{t['low']:+.3f}, {t['high']:+.3f}]"


def _mde(row: dict[str, Any]) -> str:
    value = row.get("mde")
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def _per_seed(d: dict[str, Any]) -> str:
    """Each seed's mean difference (how far the training runs disagree)."""
    values = d.get("per_seed", [])
    return ", ".join("-" if math.isnan(v) else f"{v:+.3f}" for v in values) if len(values) > 1 else "-"


def metric_titles(data: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """``{metric: (title, direction)}`` of the metrics in one dataset's comparison rows."""
    return {r["metric"]: (r["title"], r["direction"]) for c in data["comparisons"] for r in c["rows"]}


def markdown(result: dict[str, Any], scheme: str = "") -> str:
    """``results.md``: per dataset the arms, the accuracy cost, the verdict tables and every comparison row;
    ``scheme`` (how the intervals and metrics are defined) goes below the title."""
    lines = [f"# Experiment `{result['spec']}`", "", scheme, ""]
    for name, data in result["datasets"].items():
        lines += [f"## {name}", ""]
        if data.get("skipped"):
            lines += [f"**Not run: {data['skipped']}.**", ""]
        lr = data["learning_rate"]
        lines.append(
            f"Learning rate {lr:g} (chosen on plain validation, seed {data['seeds'][0]}); seeds "
            f"{data['seeds']}; evaluated {data['seeds_evaluated']}."
            if lr is not None
            else "No learning rate selected yet."
        )
        if data["seeds_failed_gate"]:
            lines.append(
                f"**Seeds {data['seeds_failed_gate']} failed the convergence gate (plain "
                f"validation accuracy < {data['settings']['gate']}): not trained further, their "
                "paired comparisons dropped.**"
            )
        if data["missing"]:
            lines.append(f"Not finished yet (left out): {', '.join(data['missing'])}.")
        lines += [
            "",
            "| arm | val accuracy | test accuracy | s/epoch | seeds evaluated |",
            "|---|---|---|---|---|",
        ]
        for arm, info in data["arms"].items():
            lines.append(
                f"| {arm} | {_fmt(info['val_accuracy'])} | {_fmt(info['test_accuracy'])} | "
                f"{_fmt(info['seconds_per_epoch'], 0)} | {info['seeds_evaluated']} |"
            )
        pending = [
            f"{arm} seed {seed} (val accuracy {run['val_accuracy']:.3f}"
            + (f", {run['seconds_per_epoch']:.0f} s/epoch)" if run.get("seconds_per_epoch") else ")")
            for arm, info in data["arms"].items()
            for seed, run in info.get("trained_not_evaluated", {}).items()
        ]
        if pending:
            lines += ["", f"Trained but not evaluated, so not in the rows above: {'; '.join(pending)}."]
        lines.append("")
        for comparison in data["comparisons"]:
            lines.append(
                f"Accuracy cost, {comparison['treatment']} − {comparison['control']}: "
                f"{_interval(comparison['accuracy'])} (seeds {comparison['seeds']})."
            )
        lines.append("")
        lines += headline_table(data["comparisons"])
        if data["verdicts"]:
            lines += seed_mismatch(data["comparisons"])
            lines += verdict_table(data["verdicts"], metric_titles(data))
        for comparison in data["comparisons"]:
            t, c = comparison["treatment"], comparison["control"]
            lines += [
                f"### {t} − {c}",
                "",
                f"| removal | method | metric | {c} | {t} | {t} − {c} [95 % CI] | seed t | per seed | MDE "
                "| outcome |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for row in comparison["rows"]:
                arrow = _arrow(row["direction"])
                cells = [
                    row["removal"],
                    row["method"],
                    f"{row['title']} {arrow}",
                    "-" if row["control_mean"] is None else f"{row['control_mean']:.3f}",
                    "-" if row["treatment_mean"] is None else f"{row['treatment_mean']:.3f}",
                    _interval(row["difference"]),
                    _seed_t(row),
                    _per_seed(row["difference"]),
                    _mde(row),
                    row["outcome"],
                ]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def headline_table(comparisons: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: per comparison, removal and faithfulness metric, a row per method with the difference
    [95 % CI] and outcome of each measure the verdict reads, and NAOPC with evaluated bounds (labelled: it
    never decides); a measure not in the records shows as -."""
    lines = []
    for comparison in comparisons:
        t, c = comparison["treatment"], comparison["control"]
        rows = {(r["removal"], r["method"], r["metric"]): r for r in comparison["rows"]}
        for removal in dict.fromkeys(r["removal"] for r in comparison["rows"]):
            for family, metrics in HEADLINE_METRICS.items():
                present = [m for m in metrics if any(k[0] == removal and k[2] == m for k in rows)]
                if not present:
                    continue
                titles = {}
                for m in metrics:
                    row = next((r for k, r in rows.items() if k[2] == m), None)
                    titles[m] = f"{row['title']} {_arrow(row['direction'])}" if row else m
                lines += [
                    f"### Headline: {t} − {c}, {family}, removal `{removal}` (difference [95 % CI], outcome)",
                    "",
                    "| method | " + " | ".join(titles[m] for m in metrics) + " |",
                    "|---|" + "---|" * len(metrics),
                ]
                for method in dict.fromkeys(k[1] for k in rows if k[0] == removal):
                    cells = []
                    for m in metrics:
                        row = rows.get((removal, method, m))
                        cells.append(
                            "-" if row is None else f"{_interval(row['difference'])} {row['outcome']}"
                        )
                    lines.append(f"| {METHOD_TITLES.get(method, method)} | " + " | ".join(cells) + " |")
                lines.append("")
    return lines


def seed_mismatch(comparisons: list[dict[str, Any]]) -> list[str]:
    """A warning line per treatment whose comparisons cover different seeds (e.g. one arm of a seed still
    running): its verdicts then join intervals over different training runs."""
    lines = []
    for treatment in dict.fromkeys(c["treatment"] for c in comparisons):
        mine = [c for c in comparisons if c["treatment"] == treatment]
        if len({tuple(c["seeds"]) for c in mine}) > 1:
            seeds = ", ".join(f"{treatment} − {c['control']} on seeds {c['seeds']}" for c in mine)
            lines += [f"**The verdicts below join comparisons over different seeds: {seeds}.**", ""]
    return lines


def verdict_table(verdicts: list[dict[str, Any]], titles: dict[str, tuple[str, int]]) -> list[str]:
    """Markdown lines: per treatment, a row per method and a column per (verdict metric, removal): the
    faithfulness metrics from their three measures, agreement from its own row; ``titles`` maps a metric to
    its (title, direction), as :func:`metric_titles` gives."""
    lines = []
    for treatment in dict.fromkeys(v["treatment"] for v in verdicts):
        mine = [v for v in verdicts if v["treatment"] == treatment]
        columns = list(dict.fromkeys((v["metric"], v["removal"]) for v in mine))
        cells = {(v["method"], v["metric"], v["removal"]): v["verdict"] for v in mine}

        def heading(metric: str) -> str:
            if metric in VERDICT_TITLES:
                return VERDICT_TITLES[metric]
            title, direction = titles.get(metric, (metric, 1))
            return f"{title} {_arrow(direction)}"

        headers = [f"{heading(m)} ({r})" for m, r in columns]
        lines += [
            f"### Verdicts: {treatment}",
            "",
            "| method | " + " | ".join(headers) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for method in dict.fromkeys(v["method"] for v in mine):
            row = [cells.get((method, m, r), "-") for m, r in columns]
            lines.append(f"| {METHOD_TITLES.get(method, method)} | " + " | ".join(row) + " |")
        lines.append("")
    return lines


def plot(result: dict[str, Any], path: Path, metrics: Sequence[str]) -> Path | None:
    """A forest plot per dataset and metric of ``metrics``: treatment − control with its interval, per method
    and removal; None (and no file) when there is no comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (name, metric)
        for name, data in result["datasets"].items()
        if data["comparisons"]
        for metric in metrics
        if metric in metric_titles(data)
    ]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.5), squeeze=False)
    for ax, (name, metric) in zip(axes[0], panels, strict=True):
        data = result["datasets"][name]
        labels, y = [], 0
        for comparison in data["comparisons"]:
            for row in comparison["rows"]:
                if row["metric"] != metric:
                    continue
                d = row["difference"]
                if math.isnan(d["mean"]):
                    continue
                color = {"better": "tab:green", "worse": "tab:red"}.get(row["outcome"], "tab:gray")
                ax.errorbar(
                    d["mean"],
                    y,
                    xerr=[[d["mean"] - d["low"]], [d["high"] - d["mean"]]],
                    fmt="o",
                    color=color,
                    capsize=3,
                )
                pair = f"{comparison['treatment']}−{comparison['control']}"
                labels.append(f"{pair} {row['method']} ({row['removal']})")
                y += 1
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=6)
        title, direction = metric_titles(data)[metric]
        arrow = _arrow(direction)
        ax.set_title(f"{name}: {title} {arrow}", fontsize=9)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # long titles and labels stay whole
    plt.close(fig)
    return path
