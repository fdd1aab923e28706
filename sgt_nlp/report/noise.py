"""Is a difference between two evaluations more than noise? Paired bootstrap over shared examples, and the
verdict from three measures of a faithfulness metric (raw AOPC, minus Random, NAOPC with all-order bounds).

Comprehensiveness, sufficiency and their AOPCs are means over examples of a per-example drop in the
predicted class's probability (``sgt_nlp.metrics.faithfulness``), and every ``results.jsonl`` holds the
probabilities they come from. Two evaluations of the same examples can therefore be compared example by
example: the difference of the means is the mean of the per-example differences, and resampling the examples
(a paired bootstrap) gives an interval for it. A difference whose interval contains 0 is within the noise of
the example sample.

The other columns (accuracy, AUPRC, token and IOU F1, masked accuracy) are not stored per example, so they get
a stated noise threshold instead: :data:`NOISE_THRESHOLD`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

#: the summary columns whose per-example values can be rebuilt from results.jsonl
PER_EXAMPLE_METRICS = ("comprehensiveness", "sufficiency", "comprehensiveness_aopc", "sufficiency_aopc")
#: differences below this (absolute, in the metric's units) are reported as noise for the other columns
NOISE_THRESHOLD = 0.02
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


def _drop(full: Mapping[str, float], perturbed: Mapping[str, float], predicted: str) -> float:
    return float(full[predicted]) - float(perturbed[predicted])


def _check_probabilities(record: Mapping[str, object], where: str) -> None:
    """Every probability a per-example drop is taken from is a number in [0, 1] (a results file edited or
    written elsewhere would otherwise give differences and intervals of nonsense)."""
    names = (
        "classification_scores",
        *(f"{m}_classification_scores" for m in ("comprehensiveness", "sufficiency")),
    )
    bins = record.get("thresholded_scores")
    entries = [(f"thresholded_scores[{i}].", b) for i, b in enumerate(bins if isinstance(bins, list) else [])]
    for prefix, entry in [("", record), *entries]:
        for name in names:
            scores = entry.get(name) if isinstance(entry, Mapping) else None
            for label, p in scores.items() if isinstance(scores, Mapping) else ():
                if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                    raise ValueError(
                        f"{where}, field '{prefix}{name}.{label}': not a probability in [0, 1]: {p!r}"
                    )


def per_example_faithfulness(results_path: str | Path) -> dict[str, dict[str, float]]:
    """``{metric: {annotation_id: value}}`` for :data:`PER_EXAMPLE_METRICS`, from one results file.

    The per-example value is the drop ``p(ŷ|x) - p(ŷ|x')``, averaged over the AOPC bins for the AOPC columns;
    its mean over the file is the summary's number.
    """
    values: dict[str, dict[str, float]] = {name: {} for name in PER_EXAMPLE_METRICS}
    for line_no, line in enumerate(Path(results_path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        _check_probabilities(record, f"{results_path}, line {line_no}")
        full = record.get("classification_scores")
        if not full:
            continue
        predicted = max(full, key=full.__getitem__)
        ann = record["annotation_id"]
        for name in ("comprehensiveness", "sufficiency"):
            perturbed = record.get(f"{name}_classification_scores")
            if perturbed:
                values[name][ann] = _drop(full, perturbed, predicted)
            bins = record.get("thresholded_scores") or []
            if bins:
                drops = [_drop(full, b[f"{name}_classification_scores"], predicted) for b in bins]
                values[f"{name}_aopc"][ann] = float(np.mean(drops))
    return values


def paired_bootstrap_interval(
    differences: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile interval for the mean of paired ``differences`` (examples resampled with replacement)."""
    differences = np.asarray(differences, dtype=float)
    if differences.size == 0:
        raise ValueError("no paired examples to resample")
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, differences.size, size=(resamples, differences.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def compare(
    base: Mapping[str, float], other: Mapping[str, float], sign: int
) -> tuple[str, tuple[float, float] | None, int]:
    """``(verdict, interval, examples)`` for ``other - base`` over their shared examples.

    ``verdict`` is "better"/"worse" (by ``sign``: +1 when higher is better) when the interval excludes 0, else
    "noise"; ``interval`` is None when the two share no example.
    """
    shared = sorted(base.keys() & other.keys())
    if not shared:
        return "unknown", None, 0
    differences = np.array([other[k] - base[k] for k in shared])
    low, high = paired_bootstrap_interval(differences)
    if low > 0 or high < 0:
        return ("better" if (low > 0) == (sign > 0) else "worse"), (low, high), len(shared)
    return "noise", (low, high), len(shared)


# ---- the verdict from three measures (sgt_nlp.metrics.verdict_rule) ----------------------------------------

#: the two faithfulness metrics whose differences get a verdict from three measures, with their direction
VERDICT_FAMILIES = (("comprehensiveness", +1), ("sufficiency", -1))


def read_bounds(path: str | Path) -> dict[str, dict[str, dict[str, float]]]:
    """``{removal: {annotation_id: bounds line}}`` from an evaluation's ``bounds.jsonl`` (empty without one:
    the run did not search NAOPC's all-order bounds)."""
    path = Path(path)
    found: dict[str, dict[str, dict[str, float]]] = {}
    if not path.is_file():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            found.setdefault(record["removal"], {})[record["annotation_id"]] = record
    return found


def measures(
    aopc: Mapping[str, float], random_aopc: Mapping[str, float] | None, bounds: Mapping[str, dict], name: str
) -> dict[str, dict[str, float] | None]:
    """Per annotation, the three measures of one metric (``name``: comprehensiveness or sufficiency) of one
    model and method: raw AOPC, AOPC minus the model's Random AOPC (None without Random), NAOPC with the
    all-order bounds of ``bounds.jsonl`` (None without them; examples whose bounds coincide are left out)."""
    minus = (
        None if random_aopc is None else {k: v - random_aopc[k] for k, v in aopc.items() if k in random_aopc}
    )
    naopc = None
    if bounds:
        naopc = {}
        for k, v in aopc.items():
            line = bounds.get(k)
            if line is None:
                continue
            low, high = line[f"{name}_aopc_low"], line[f"{name}_aopc_high"]
            if high - low > 1e-9:
                naopc[k] = (v - low) / (high - low)
    return {"aopc": dict(aopc), "aopc_minus_random": minus, "naopc_bounds": naopc}


def three_measure_verdict(
    base: Mapping[str, Mapping[str, float] | None], other: Mapping[str, Mapping[str, float] | None], sign: int
) -> tuple[str, dict[str, tuple[str, tuple[float, float] | None, float | None]]]:
    """The verdict on ``other - base`` from :func:`measures` of both models, and per measure its outcome,
    interval and mean difference (None where either model lacks the measure)."""
    from ..metrics.verdict_rule import normalisation_verdict

    outcomes: dict[str, str | None] = {}
    shown: dict[str, tuple[str, tuple[float, float] | None, float | None]] = {}
    for key in ("aopc", "aopc_minus_random", "naopc_bounds"):
        a, b = base.get(key), other.get(key)
        if a is None or b is None:
            outcomes[f"x_{key}"] = None
            shown[key] = ("not measured", None, None)
            continue
        verdict, interval, _ = compare(a, b, sign)
        shared = sorted(a.keys() & b.keys())
        mean = float(np.mean([b[k] - a[k] for k in shared])) if shared else None
        outcomes[f"x_{key}"] = {"noise": "within noise", "unknown": None}.get(verdict, verdict)
        shown[key] = (outcomes[f"x_{key}"] or "not measured", interval, mean)
    return normalisation_verdict(outcomes), shown
