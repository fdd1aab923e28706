"""When a difference between two arms is called: the call rule, its seed-level interval and power, and the
verdict that no single normaliser decides. Pure functions (no files, no models).

- A row's outcome (:func:`verdict_words`) needs two intervals on the same side of 0: the multi-bootstrap
  (test examples and seeds resampled, :func:`~sgt_nlp.experiments.statistics.paired_bootstrap`) and, with two
  or more seeds, a Student t interval over the per-seed mean differences (``seeds - 1`` degrees of freedom,
  :func:`seed_interval`). With three seeds the bootstrap draws from 10 distinct seed multisets, and a rule
  such as "every seed agrees" calls effects that are not there (``scripts/seed_inference_simulation.py``);
  the t interval keeps the false-positive rate near its 5 % (:mod:`.simulation`).
- Every row carries its minimum detectable effect at 80 % power (:func:`minimum_detectable_effect`).
- A faithfulness verdict across models (:func:`normalisation_verdict`) reads three measures of one metric:
  raw AOPC, AOPC minus the same model's Random AOPC, and NAOPC with method-independent bounds. It is
  "better"/"worse" only when all three are called that way; when they differ it is "depends on
  normalisation". NAOPC with bounds taken over the evaluated orderings is shown, never decides.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from ..metrics.verdict_rule import DEPENDS, NOT_MEASURED, normalisation_verdict

#: a difference whose interval excludes 0 but whose size is below this is called negligible (not
#: better/worse)
NEGLIGIBLE = 0.0005
#: power of the minimum detectable effect
POWER = 0.8
LEVEL = 0.95
#: the three measures of a faithfulness verdict, per metric: raw, minus the model's Random, NAOPC with
#: method-independent bounds
MEASURES: dict[str, tuple[str, str, str]] = {
    "comprehensiveness": (
        "comprehensiveness_aopc",
        "comprehensiveness_aopc_minus_random",
        "comprehensiveness_naopc_bounds",
    ),
    "sufficiency": ("sufficiency_aopc", "sufficiency_aopc_minus_random", "sufficiency_naopc_bounds"),
}
#: shown beside the verdict of each metric, never deciding it
LABELLED = {"comprehensiveness": "comprehensiveness_naopc", "sufficiency": "sufficiency_naopc"}
#: verdicts read from one measure (agreement with human rationales has no normaliser)
SINGLE_MEASURE = ("auprc_visible",)


def seed_interval(per_seed: Sequence[float], level: float = LEVEL) -> dict[str, float] | None:
    """Student t interval of the mean of the per-seed mean differences (``seeds - 1`` degrees of freedom);
    None with fewer than two seeds.

    >>> {k: round(v, 3) for k, v in seed_interval([0.1, 0.2, 0.3]).items()}
    {'mean': 0.2, 'low': -0.048, 'high': 0.448, 'sd': 0.1, 'seeds': 3.0}
    """
    values = np.array([v for v in per_seed if not math.isnan(v)], dtype=float)
    if len(values) < 2:
        return None
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1)) * sd / math.sqrt(len(values))
    return {"mean": mean, "low": mean - half, "high": mean + half, "sd": sd, "seeds": float(len(values))}


@functools.lru_cache(maxsize=64)
def _noncentrality(seeds: int, level: float, power: float) -> float:
    """The noncentrality at which a two-sided one-sample t test over ``seeds`` values rejects with
    probability ``power``."""
    from scipy.optimize import brentq

    df = seeds - 1
    critical = stats.t.ppf(0.5 + level / 2, df)

    def shortfall(shift: float) -> float:
        # the lower tail is negligible at these shifts, and scipy returns NaN for it at some of them
        lower = float(np.nan_to_num(stats.nct.cdf(-critical, df, shift), nan=0.0))
        return float(stats.nct.sf(critical, df, shift)) + lower - power

    high = 1.0
    while shortfall(high) < 0:
        high *= 2
    return float(brentq(shortfall, 0.0, high, xtol=1e-9))


def t_detectable(sd: float, seeds: int, level: float = LEVEL, power: float = POWER) -> float:
    """The true mean difference a two-sided one-sample t test over ``seeds`` seed means (sd ``sd``) detects
    with probability ``power`` (noncentral t); NaN with fewer than two seeds."""
    if seeds < 2:
        return math.nan
    return _noncentrality(seeds, level, power) * sd / math.sqrt(seeds)


def minimum_detectable_effect(
    interval: Mapping[str, Any], level: float = LEVEL, power: float = POWER
) -> float:
    """The smallest true difference the call rule detects with probability ``power``: the larger of the
    bootstrap's (``(z_{1-α/2} + z_power) ×`` its standard error, read from the interval's width) and the
    seed-level t test's at the observed seed sd."""
    if any(math.isnan(interval[k]) for k in ("low", "high")):
        return math.nan
    z = stats.norm.ppf(0.5 + level / 2)
    bootstrap = (z + stats.norm.ppf(power)) * (interval["high"] - interval["low"]) / (2 * z)
    seeds = seed_interval(interval.get("per_seed", []), level)
    if seeds is None:
        return float(bootstrap)
    return float(max(bootstrap, t_detectable(seeds["sd"], int(seeds["seeds"]), level, power)))


def verdict_words(interval: Mapping[str, Any], direction: int) -> str:
    """``better`` / ``worse`` when the bootstrap interval lies on one side of 0 (in the metric's good
    direction) and, with two or more seeds, so does the t interval over the seed means (``within seed
    noise`` otherwise); ``negligible`` when the bootstrap interval excludes 0 but the mean difference is
    below ``NEGLIGIBLE``; else ``within noise``. With one seed the bootstrap alone decides (an outcome may
    then be that seed's training)."""
    if any(math.isnan(interval[k]) for k in ("low", "high")):
        return "no data"
    if abs(interval["mean"]) < NEGLIGIBLE and (interval["low"] > 0 or interval["high"] < 0):
        return "negligible"
    if direction * interval["low"] > 0 and direction * interval["high"] > 0:
        outcome = "better"
    elif direction * interval["low"] < 0 and direction * interval["high"] < 0:
        outcome = "worse"
    else:
        return "within noise"
    seeds = seed_interval(interval.get("per_seed", []))
    if seeds is not None and not (seeds["low"] > 0 or seeds["high"] < 0):
        return "within seed noise"
    if seeds is not None and (seeds["low"] > 0) != (interval["low"] > 0):
        return "within seed noise"
    return outcome


def _base(outcome: str | None) -> str | None:
    """The outcome without a note in brackets (``better (… not measured)`` → ``better``)."""
    return None if outcome is None else outcome.split(" (")[0]


def method_verdict(vs_baseline: str, vs_random_mask: str | None, treatment: str, baseline: str) -> str:
    """One phrase from the two comparisons of a treatment (e.g. SGT vs plain and vs random-mask)."""
    note = f" ({NOT_MEASURED})" if NOT_MEASURED in vs_baseline else ""
    base, random_mask = _base(vs_baseline), _base(vs_random_mask)
    if random_mask is None:
        return {
            "better": f"{treatment} beats {baseline} beyond the intervals{note}",
            "worse": f"{treatment} is worse than {baseline}{note}",
        }.get(base or "", vs_baseline)
    if base == "better" and random_mask == "better":
        return f"{treatment} beats {baseline} and random-mask beyond the intervals{note}"
    if base == "better":
        return (
            f"{treatment} beats {baseline}{note} but not random-mask ({vs_random_mask}): masking in general "
            "explains the gain"
        )
    if random_mask == "better" and base not in ("worse", DEPENDS):
        note = f" ({NOT_MEASURED})" if NOT_MEASURED in (vs_random_mask or "") else ""
        return f"{treatment} beats random-mask{note} but not {baseline} ({vs_baseline})"
    if "worse" in (base, random_mask):
        pairs = ((baseline, base), ("random-mask", random_mask))
        which = [name for name, v in pairs if v == "worse"]
        return f"{treatment} is worse than {' and '.join(which)}{note}"
    return DEPENDS if DEPENDS in (base, random_mask) else (vs_baseline if base != "no data" else "no data")


def verdicts(baseline: str, comparisons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per treatment, removal, method and verdict metric (comprehensiveness and sufficiency from their three
    measures; agreement from its own row): the phrase from its comparisons against ``baseline`` and
    random-mask, with each comparison's per-measure outcomes."""
    outcome = {
        (c["treatment"], c["control"], r["removal"], r["method"], r["metric"]): r["outcome"]
        for c in comparisons
        for r in c["rows"]
    }
    out = []
    for comparison in comparisons:
        treatment = comparison["treatment"]
        if comparison["control"] != baseline:
            continue
        cells = dict.fromkeys((r["removal"], r["method"]) for r in comparison["rows"])
        for removal, method in cells:
            for metric, measures in (*MEASURES.items(), *((m, (m,)) for m in SINGLE_MEASURE)):
                per_control: dict[str, dict[str, str | None]] = {}
                for control in (baseline, "random_mask"):
                    found = {m: outcome.get((treatment, control, removal, method, m)) for m in measures}
                    if any(v is not None for v in found.values()):
                        if method == "random" and len(measures) > 1:  # minus its own Random: 0 by definition
                            found.pop(measures[1])
                        per_control[control] = found
                if baseline not in per_control:
                    continue
                combined = {c: normalisation_verdict(m) for c, m in per_control.items()}
                out.append(
                    {
                        "treatment": treatment,
                        "removal": removal,
                        "method": method,
                        "metric": metric,
                        "measures": per_control,
                        "verdict": method_verdict(
                            combined[baseline], combined.get("random_mask"), treatment, baseline
                        ),
                    }
                )
    return out
