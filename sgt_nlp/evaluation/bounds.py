"""NAOPC's per-example bounds in an evaluation: over the evaluated orderings, or over all orderings.

``--naopc_bounds evaluated`` (the default) takes, per example, the lowest and highest AOPC among the orderings
evaluated for this model (every method): no extra model pass, but the normaliser is then one of the methods
compared. ``beam`` and ``exact`` search all orderings of the seen words
(:mod:`sgt_nlp.metrics.aopc_bounds`, Edin et al. 2025) with the model, under each removal mode, and
``bounds.jsonl`` keeps them (one line per annotation and removal mode). NAOPC with either bounds goes into
each method's ``scores.json`` (``naopc``) and summary row, side by side.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from ..metrics import top_k_indices
from ..metrics.aopc_bounds import aopc_bounds
from .perturbation import perturbed_words
from .records import Example, ExampleOutput, MethodResult

#: the four bounds of a ``bounds.jsonl`` line, as ``(key, AOPCBounds field)``
BOUND_KEYS = (
    ("comprehensiveness_aopc_low", "comprehensiveness_low"),
    ("comprehensiveness_aopc_high", "comprehensiveness_high"),
    ("sufficiency_aopc_low", "sufficiency_low"),
    ("sufficiency_aopc_high", "sufficiency_high"),
)


def method_aopcs(result: MethodResult) -> tuple[float, float]:
    """``(comprehensiveness AOPC, sufficiency AOPC)`` of one method on one example (drops of p(ŷ), ŷ the
    prediction on the full input, averaged over the bins)."""
    y = int(np.argmax(result.probs))
    p = float(result.probs[y])
    bins = sorted(result.thresholded)
    comp = float(np.mean([p - result.thresholded[t][0][y] for t in bins]))
    suff = float(np.mean([p - result.thresholded[t][1][y] for t in bins]))
    return comp, suff


def example_bounds(evaluator, ex: Example, output: ExampleOutput, removal: str) -> dict[str, Any]:
    """The bounds of one example under one removal mode, searched with ``evaluator``'s model; the evaluated
    methods' orderings seed the beam and their AOPCs are within the bounds by construction."""
    config = evaluator.config
    started = time.perf_counter()
    passes_before = evaluator.forward_passes
    results = output.methods[removal]
    first = next(iter(results.values()))
    y = int(np.argmax(first.probs))
    p = float(first.probs[y])
    seen = [ex.words[i] for i in output.kept_words]
    n = len(seen)
    replacement = evaluator.replacements(ex, n, removal)

    def drops(kind: str, sets: list[frozenset[int]]) -> np.ndarray:
        out = np.zeros(len(sets))
        inputs, slots = [], []
        for j, chosen in enumerate(sets):
            if kind == "suff" and len(chosen) == n:  # the full input: no drop (as the evaluated orderings)
                continue
            top = np.zeros(n, dtype=bool)
            top[list(chosen)] = True
            inputs.append(perturbed_words(seen, ~top if kind == "comp" else top, removal, replacement))
            slots.append(j)
        if inputs:
            probs = evaluator.probabilities(inputs, [ex.query_words] * len(inputs))
            out[slots] = p - probs[:, y]
        return out

    aopcs = [method_aopcs(r) for r in results.values()]
    found = aopc_bounds(
        n,
        config.aopc_thresholds,
        drops,
        search=config.naopc_bounds,
        beam_width=config.bounds_beam_width,
        seed_orders=[top_k_indices(r.word_scores, n).tolist() for r in results.values()],
        evaluated={"comp": [a[0] for a in aopcs], "suff": [a[1] for a in aopcs]},
    )
    line: dict[str, Any] = {
        "search": found.search,
        "beam_width": found.beam_width,
        **{key: getattr(found, name) for key, name in BOUND_KEYS},
        "model_passes": evaluator.forward_passes - passes_before,
        "seconds": time.perf_counter() - started,
    }
    return line


def add_bounds(evaluator, batch: list[Example], outputs: list[ExampleOutput]) -> None:
    """Searched bounds for every example of a batch under every removal mode (``--naopc_bounds`` beam or
    exact), into ``output.bounds[removal]``."""
    config = evaluator.config
    if config.naopc_bounds == "evaluated":
        return
    for removal in config.removals:
        for ex, output in zip(batch, outputs, strict=True):
            if config.bounds_max_examples is None or ex.index < config.bounds_max_examples:
                output.bounds[removal] = example_bounds(evaluator, ex, output, removal)


def bounds_lines(result) -> list[str]:
    """``bounds.jsonl``: one line per annotation and removal mode (empty without searched bounds)."""
    lines = []
    for removal in result.config.removals:
        for output in result.outputs:
            found = output.bounds.get(removal)
            if found is not None:
                line = {"annotation_id": output.annotation_id, "removal": removal, **found}
                lines.append(json.dumps(line) + "\n")
    return lines


def _naopc(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> float | None:
    span = high - low
    ok = np.nan_to_num(span, nan=0.0) > 1e-9
    if not ok.any():
        return None
    return float(np.mean((values[ok] - low[ok]) / span[ok]))


def naopc_scores(result, removal: str, method: str) -> dict[str, Any]:
    """Mean NAOPC of one method: with the evaluated bounds (the extremes over this run's methods) and, when
    searched, with the bounds over all orderings; examples whose bounds coincide are left out."""
    config = result.config
    per_method = {
        m: np.array([method_aopcs(o.result(removal, m)) for o in result.outputs]) for m in config.methods
    }
    if not result.outputs:
        return {}
    mine = per_method[method]
    stacked = np.stack(list(per_method.values()))  # [methods, examples, 2]
    scores: dict[str, Any] = {
        "evaluated_bounds": {
            "comprehensiveness": _naopc(mine[:, 0], stacked[:, :, 0].min(0), stacked[:, :, 0].max(0)),
            "sufficiency": _naopc(mine[:, 1], stacked[:, :, 1].min(0), stacked[:, :, 1].max(0)),
        }
    }
    found = [o.bounds.get(removal) for o in result.outputs]
    if any(f is not None for f in found):  # examples without bounds (bounds_max_examples) are left out
        bound = {key: np.array([np.nan if f is None else f[key] for f in found]) for key, _ in BOUND_KEYS}
        scores[f"{config.naopc_bounds}_bounds"] = {
            "comprehensiveness": _naopc(
                mine[:, 0], bound["comprehensiveness_aopc_low"], bound["comprehensiveness_aopc_high"]
            ),
            "sufficiency": _naopc(mine[:, 1], bound["sufficiency_aopc_low"], bound["sufficiency_aopc_high"]),
            "beam_width": config.bounds_beam_width,
            "searches": sorted({f["search"] for f in found if f is not None}),
            "examples": sum(f is not None for f in found),
        }
    return scores


def bounds_summary(result, removal: str) -> dict[str, Any] | None:
    """Mean model passes and seconds of the bound search per example (None without searched bounds)."""
    found = [o.bounds[removal] for o in result.outputs if removal in o.bounds]
    if not found:
        return None
    return {
        "examples": len(found),
        "model_passes_per_example": float(np.mean([f["model_passes"] for f in found])),
        "seconds_per_example": float(np.mean([f["seconds"] for f in found])),
        **search_counts(found),
    }


def search_counts(found: list[dict[str, Any]]) -> dict[str, int]:
    """How many examples each search served (``exact`` falls back to the beam for long inputs)."""
    counts: dict[str, int] = {}
    for f in found:
        counts[f"{f['search']}_examples"] = counts.get(f"{f['search']}_examples", 0) + 1
    return counts
