"""What an experiment's records say: per-example metrics, their normalisations, paired bootstrap intervals,
outcomes and verdicts, aggregated over arms and seeds. Pure functions of the records (no files, no models).

Per-example metrics of one model, ordering and removal mode, with ŷ the prediction on the full input and
p = p(ŷ | x): comprehensiveness and sufficiency at the threshold, their AOPC over the bins, AOPC minus the
same model's Random AOPC, AOPC divided by the empty input's drop (Carton et al. 2020), and NAOPC (Edin et
al. 2025) with two kinds of bounds: searched over all orderings (the record's ``bounds``, from
``--naopc_bounds beam|exact``) and taken over the evaluated orderings. A treatment and a control are
compared by the mean of per-example differences, pairing the two models of a seed on the same test example,
resampling test examples and seeds (:func:`paired_bootstrap`); when a difference is called, and the verdict
from three measures, are in :mod:`.verdicts`.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from ..metrics.registry import oriented
from .spec import ExperimentSpec
from .verdicts import (
    LABELLED,
    MEASURES,
    SINGLE_MEASURE,
    minimum_detectable_effect,
    seed_interval,
    verdict_words,
    verdicts,
)

#: per-example metrics, as ``(key, title, direction)`` from the metric registry (+1: higher is better)
FAITHFULNESS_METRICS = oriented(
    (
        "comprehensiveness",
        "sufficiency",
        "comprehensiveness_aopc",
        "sufficiency_aopc",
        "comprehensiveness_aopc_minus_random",
        "sufficiency_aopc_minus_random",
        "comprehensiveness_aopc_vs_empty",
        "sufficiency_aopc_vs_empty",
        "comprehensiveness_naopc_bounds",
        "sufficiency_naopc_bounds",
        "comprehensiveness_naopc",
        "sufficiency_naopc",
    )
)
#: agreement with human rationales over the words the model saw (datasets with rationales only)
AGREEMENT_METRICS = oriented(("auprc_visible", "token_f1_visible"))
ALL_METRICS = FAITHFULNESS_METRICS + AGREEMENT_METRICS
#: metrics the verdicts read (three measures per faithfulness metric, :data:`.verdicts.MEASURES`) and the
#: evaluated-bounds NAOPC shown beside them: the panels of ``results.png``
VERDICT_METRICS = (
    *(m for measures in MEASURES.values() for m in measures),
    *LABELLED.values(),
    *SINGLE_MEASURE,
)
#: an empty-input drop below this makes the "/ empty drop" normalisation undefined for that example
MIN_EMPTY_DROP = 0.05

#: how the intervals, outcomes and normalisations are defined: the note at the top of ``results.md``
SCHEME = (
    "Intervals: paired bootstrap 95 % percentile intervals of treatment − control, pairing the two models"
    " of a seed on the same test example. Each resample draws test examples with replacement and seeds "
    "with replacement (the multi-bootstrap of Sellam et al. 2022), so the interval covers both the test "
    "sample and the training runs; with one seed it is the example bootstrap, and results.json also keeps"
    " the examples-only interval (models held fixed). 'seed t': the Student t 95 % interval over the "
    "per-seed mean differences (seeds − 1 degrees of freedom). Outcome 'better'/'worse': the bootstrap "
    "interval on one side of 0 in the metric's good direction (↑ higher is better, ↓ lower is better) "
    "and, with two or more seeds, the seed t interval on that side too ('within seed noise' otherwise); "
    "with one seed, an outcome may be that seed's training, not the arm. 'MDE': the smallest true "
    "difference the rule detects with 80 % power (the larger of the bootstrap's and the seed t test's at "
    "the observed seed sd). Verdicts: a faithfulness metric is 'better'/'worse' only when raw AOPC, AOPC "
    "− Random (the same model's Random AOPC on the same example) and NAOPC with all-order bounds (the "
    "lowest and highest AOPC over all orderings of the seen words, searched by `--naopc_bounds "
    "beam|exact`, Edin et al. 2025) are all called that way; 'depends on normalisation' when they differ."
    " 'NAOPC (evaluated bounds)': the bounds taken over the orderings evaluated for that model (all "
    "methods and random draws); the normaliser is then one of the methods compared, so it is shown and "
    "never decides. 'comp/suff AOPC / empty drop': AOPC divided by the example's drop when every seen "
    f"word is removed (Carton et al. 2020), examples with a drop below {MIN_EMPTY_DROP} left out."
)

# ---- per-example metrics -----------------------------------------------------------------------------------


def _column(ordering: dict[str, list], key: str) -> np.ndarray:
    """One per-example field of a record as floats; the record writes a missing value as None (NaN here)."""
    return np.array([np.nan if v is None else v for v in ordering[key]], dtype=float)


def empty_input_drop(ordering: dict[str, list]) -> np.ndarray:
    """Per example d0 = p - p(ŷ | every seen word removed), NaN where the record has no empty-input value; the
    denominator of the ``*_vs_empty`` metrics (the same in every ordering of one model and removal mode)."""
    return np.asarray(ordering["p_full"], dtype=float) - _column(ordering, "p_empty")


def per_example_metrics(ordering: dict[str, list], labels: Sequence[int]) -> dict[str, np.ndarray]:
    """Raw per-example metrics of one ordering (one method's ranking), from its compact record.

    With ŷ the prediction on the full input and p = p(ŷ|x): comprehensiveness = p - p(ŷ | top words
    removed), sufficiency = p - p(ŷ | only the top words kept) at the threshold; the AOPC versions average the
    drops over the bins (ERASER). ``*_vs_empty`` divide the AOPC by the drop of the empty input,
    d0 = p - p(ŷ | every seen word removed) (Carton et al. 2020's null-input normalisation), NaN where
    d0 < ``MIN_EMPTY_DROP``.
    """
    p = np.asarray(ordering["p_full"], dtype=float)
    empty_drop = empty_input_drop(ordering)
    usable = empty_drop >= MIN_EMPTY_DROP
    safe = np.where(usable, empty_drop, 1.0)
    comp_aopc = (p[:, None] - np.asarray(ordering["p_comp_aopc"], dtype=float)).mean(axis=1)
    suff_aopc = (p[:, None] - np.asarray(ordering["p_suff_aopc"], dtype=float)).mean(axis=1)
    return {
        "correct": (np.asarray(ordering["predicted"]) == np.asarray(labels)).astype(float),
        "comprehensiveness": p - _column(ordering, "p_comp"),
        "sufficiency": p - _column(ordering, "p_suff"),
        "comprehensiveness_aopc": comp_aopc,
        "sufficiency_aopc": suff_aopc,
        "comprehensiveness_aopc_vs_empty": np.where(usable, comp_aopc / safe, np.nan),
        "sufficiency_aopc_vs_empty": np.where(usable, suff_aopc / safe, np.nan),
        "auprc_visible": _column(ordering, "auprc_visible"),
        "token_f1_visible": _column(ordering, "token_f1_visible"),
    }


def min_max_normalise(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``(values - low) / (high - low)`` per example; NaN where the range is (numerically) empty.

    >>> min_max_normalise(np.array([0.2, 0.5]), np.array([0.0, 0.5]), np.array([0.4, 0.5])).tolist()
    [0.5, nan]
    """
    span = high - low
    ok = span > 1e-9
    return np.where(ok, (values - low) / np.where(ok, span, 1.0), np.nan)


def method_metrics(
    orderings: dict[str, dict[str, list]],
    labels: Sequence[int],
    bounds: dict[str, list[float]] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-example metrics per reported method, for one run and one removal mode.

    ``random`` is the per-example mean over its draws (``random``, ``random_draw1``, ...); ``*_minus_random``
    is a method's AOPC minus that mean (NaN for Random itself). NAOPC (Edin et al. 2025) normalises each
    example's AOPC between a lowest and a highest AOPC, ``(AOPC - low) / (high - low)`` (0 = the worst
    ordering for comprehensiveness, the best for sufficiency): ``*_naopc`` with the extremes *among the
    orderings evaluated for this model* (every method and draw: the normaliser depends on the methods
    compared), ``*_naopc_bounds`` with ``bounds`` (the record's searched extremes over all orderings,
    widened to cover every evaluated ordering; NaN without them).
    """
    raw = {name: per_example_metrics(columns, labels) for name, columns in orderings.items()}
    for key in ("comprehensiveness_aopc", "sufficiency_aopc"):
        stacked = np.stack([m[key] for m in raw.values()])
        low, high = stacked.min(axis=0), stacked.max(axis=0)
        name = key.removesuffix("_aopc")
        if bounds is not None and f"{key}_low" in bounds:
            searched_low, searched_high = _column(bounds, f"{key}_low"), _column(bounds, f"{key}_high")
            searched_low, searched_high = np.fmin(searched_low, low), np.fmax(searched_high, high)
            missing = np.isnan(_column(bounds, f"{key}_low"))
            searched_low[missing] = searched_high[missing] = np.nan
        else:
            searched_low = searched_high = np.full_like(low, np.nan)
        for metrics in raw.values():
            metrics[f"{name}_naopc"] = min_max_normalise(metrics[key], low, high)
            metrics[f"{name}_naopc_bounds"] = min_max_normalise(metrics[key], searched_low, searched_high)
    draws = [name for name in raw if name == "random" or name.startswith("random_draw")]
    methods = {name: metrics for name, metrics in raw.items() if name not in draws}
    if draws:
        with warnings.catch_warnings():  # an example without a value in every draw stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            methods["random"] = {
                key: np.nanmean(np.stack([raw[d][key] for d in draws]), axis=0) for key in raw[draws[0]]
            }
    for name, metrics in methods.items():
        for key in ("comprehensiveness_aopc", "sufficiency_aopc"):
            if draws and name != "random":
                metrics[f"{key}_minus_random"] = metrics[key] - methods["random"][key]
            else:
                metrics[f"{key}_minus_random"] = np.full_like(metrics[key], np.nan)
    return methods


# ---- paired bootstrap --------------------------------------------------------------------------------------


def _draw_counts(draws: np.ndarray, n: int) -> np.ndarray:
    """``[resamples, n]`` float: how often each of ``n`` items is drawn in each row of ``draws``."""
    resamples = draws.shape[0]
    rows = np.repeat(np.arange(resamples), draws.shape[1])
    counts = np.bincount(rows * n + draws.ravel(), minlength=resamples * n)
    return counts.reshape(resamples, n).astype(float)


@functools.lru_cache(maxsize=4)
def _example_multiplicity(resamples: int, n_examples: int, seed: int) -> np.ndarray:
    """``[resamples, n_examples]``: how often each test example is drawn (with replacement) in each resample.
    The same for every row of a table (same seed and test set), so it is made once per table."""
    draws = np.random.default_rng(seed).integers(0, n_examples, size=(resamples, n_examples))
    multiplicity = _draw_counts(draws, n_examples)
    multiplicity.flags.writeable = False  # shared by every call
    return multiplicity


def paired_bootstrap(
    differences: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Mean of paired differences and its percentile bootstrap intervals, resampling test examples and seeds.

    ``differences[s, i]`` = treatment - control on test example ``i`` in seed ``s`` (the two models of a seed
    scored on the same example); NaN marks a pair without a value (left out). The statistic is the mean over
    all (seed, example) pairs.

    - ``low``/``high``: the multi-bootstrap of Sellam et al. (2022, MultiBERTs): each resample draws test
      examples with replacement *and* seeds with replacement (each seed keeps its pair of models), so the
      interval covers both the test sample and the training runs. With one seed it is the example bootstrap.
    - ``examples_low``/``examples_high``: the same resamples' example draws with every seed kept once: the
      uncertainty from the test sample alone, with the trained models held fixed.

    >>> paired_bootstrap(np.array([[0.1, 0.1, 0.1]]), resamples=50)["low"]
    0.1
    """
    d = np.atleast_2d(np.asarray(differences, dtype=float))
    valid = ~np.isnan(d)
    n_seeds, n_examples = d.shape
    if not valid.any():
        nan = math.nan
        return {
            "mean": nan,
            "low": nan,
            "high": nan,
            "examples_low": nan,
            "examples_high": nan,
            "pairs": 0,
            "examples": n_examples,
            "seeds": 0,
            "per_seed": [nan] * n_seeds,
        }
    values = np.where(valid, d, 0.0)
    multiplicity = _example_multiplicity(resamples, n_examples, seed)
    # each seed's sum and count of differences over a resample's drawn examples: [resamples, seeds]
    seed_sums = multiplicity @ values.T
    seed_counts = multiplicity @ valid.T.astype(float)
    present = np.flatnonzero(valid.any(axis=1))  # seeds with at least one pair
    seed_rng = np.random.default_rng([seed, 1])  # apart from the example draws, which stay those of one seed
    seed_draws = present[seed_rng.integers(0, len(present), size=(resamples, len(present)))]
    weights = _draw_counts(seed_draws, n_seeds)
    alpha = (1.0 - level) / 2.0

    def interval(weight: np.ndarray) -> tuple[float, float]:
        counts = (weight * seed_counts).sum(axis=1)
        boot = (weight * seed_sums).sum(axis=1)[counts > 0] / counts[counts > 0]
        return float(np.quantile(boot, alpha)), float(np.quantile(boot, 1.0 - alpha))

    low, high = interval(weights)
    examples_low, examples_high = interval(np.ones_like(weights))
    counts = valid.sum(axis=0)
    seed_counts_all = valid.sum(axis=1)
    return {
        "mean": float(values.sum() / valid.sum()),
        "low": low,
        "high": high,
        "examples_low": examples_low,
        "examples_high": examples_high,
        "pairs": int(valid.sum()),
        "examples": int((counts > 0).sum()),
        "seeds": len(present),
        # each seed's mean difference: how far training runs disagree, beside the intervals
        "per_seed": [
            float(total / count) if count else math.nan
            for total, count in zip(values.sum(axis=1), seed_counts_all, strict=True)
        ],
    }


# ---- aggregation -------------------------------------------------------------------------------------------


def _run_metrics(record: dict[str, Any]) -> dict[str, dict[str, dict[str, np.ndarray]]] | None:
    """Per removal mode and method, the per-example metrics of one run (None when it was not evaluated)."""
    evaluation = record.get("evaluation")
    if not evaluation:
        return None
    labels = evaluation["examples"]["label"]
    bounds = evaluation.get("bounds") or {}
    return {
        removal: method_metrics(orderings, labels, bounds.get(removal))
        for removal, orderings in evaluation["orderings"].items()
    }


def _correct(run_metrics: dict[str, dict[str, dict[str, np.ndarray]]]) -> np.ndarray:
    """Per test example, 1 when the model's prediction is right (the same in every removal mode and
    method)."""
    first_removal = next(iter(run_metrics.values()))
    return next(iter(first_removal.values()))["correct"]


def _mean_sd(values: list[float]) -> list[float] | None:
    """``[mean, sd]`` of the values that exist (sd 0 for one value), None when there are none."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    return [float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0]


def aggregate(spec: ExperimentSpec, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Arm summaries, paired comparisons with bootstrap intervals, and verdicts, from the run records."""
    result: dict[str, Any] = {"spec": spec.name, "datasets": {}}
    for dataset in spec.datasets:
        records = runs.get(dataset.name, [])
        metric_keys = FAITHFULNESS_METRICS + (AGREEMENT_METRICS if dataset.agreement else ())
        by_run = {(r["arm"], r["seed"]): r for r in records}
        computed = {key: _run_metrics(r) for key, r in by_run.items()}
        seeds_evaluated = sorted({s for (a, s), m in computed.items() if m is not None})
        # the runs that the computed.get(...) checks below let through
        evaluated = {key: m for key, m in computed.items() if m}
        failed = sorted({r["seed"] for r in records if r.get("training") and not r["gate_passed"]})
        arms = {}
        for arm in spec.arms:
            trained = {
                s: by_run[(arm, s)]["training"]
                for s in spec.seeds
                if (arm, s) in by_run and by_run[(arm, s)].get("training")
            }
            arm_evaluated = [s for s in seeds_evaluated if computed.get((arm, s))]
            # every summary column describes the same runs, the evaluated ones; a run trained but not (yet)
            # evaluated is listed on its own so that it cannot shift the row's validation accuracy or cost
            in_row = [trained[s] for s in arm_evaluated if s in trained]
            arms[arm] = {
                "settings": spec.arms[arm],
                "val_accuracy": _mean_sd([t["val_accuracy"] for t in in_row]),
                "test_accuracy": _mean_sd(
                    [float(np.mean(_correct(evaluated[(arm, s)]))) for s in arm_evaluated]
                ),
                "seconds_per_epoch": _mean_sd([t.get("seconds_per_epoch") for t in in_row]),
                "seeds_trained": list(trained),
                "seeds_evaluated": arm_evaluated,
                "trained_not_evaluated": {
                    str(s): {
                        "val_accuracy": t["val_accuracy"],
                        "seconds_per_epoch": t.get("seconds_per_epoch"),
                    }
                    for s, t in trained.items()
                    if s not in arm_evaluated
                },
            }
        comparisons = []
        for treatment, control in spec.compared_pairs():
            seeds = [
                s for s in seeds_evaluated if computed.get((treatment, s)) and computed.get((control, s))
            ]
            if not seeds:
                continue
            first = evaluated[(treatment, seeds[0])]
            accuracy_diff = np.stack(
                [_correct(evaluated[(treatment, s)]) - _correct(evaluated[(control, s)]) for s in seeds]
            )
            entry: dict[str, Any] = {
                "treatment": treatment,
                "control": control,
                "seeds": seeds,
                "accuracy": paired_bootstrap(accuracy_diff, spec.bootstrap_resamples),
                "rows": [],
            }
            for removal, methods in first.items():
                for method in methods:
                    for key, title, direction in metric_keys:
                        t = np.stack([evaluated[(treatment, s)][removal][method][key] for s in seeds])
                        c = np.stack([evaluated[(control, s)][removal][method][key] for s in seeds])
                        if not np.isfinite(t - c).any():  # not measured (bounds) or not defined (Random)
                            continue
                        interval = paired_bootstrap(t - c, spec.bootstrap_resamples)
                        entry["rows"].append(
                            {
                                "removal": removal,
                                "method": method,
                                "metric": key,
                                "title": title,
                                "direction": direction,
                                "treatment_mean": float(np.nanmean(t)) if np.isfinite(t).any() else None,
                                "control_mean": float(np.nanmean(c)) if np.isfinite(c).any() else None,
                                "difference": interval,
                                "seed_interval": seed_interval(interval["per_seed"]),
                                "mde": minimum_detectable_effect(interval),
                                "outcome": verdict_words(interval, direction),
                            }
                        )
            comparisons.append(entry)
        result["datasets"][dataset.name] = {
            "settings": asdict(dataset),
            "learning_rate": next((r["learning_rate"] for r in records), None),
            "seeds": list(spec.seeds),
            "seeds_failed_gate": failed,
            "seeds_evaluated": seeds_evaluated,
            "arms": arms,
            "comparisons": comparisons,
            "verdicts": verdicts(spec.baseline, comparisons),
            "missing": [
                f"{arm}_seed{seed}"
                for seed in spec.seeds
                if seed not in failed
                for arm in spec.arms
                if not computed.get((arm, seed))
            ],
        }
    return result
