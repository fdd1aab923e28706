"""NAOPC's method-independent bounds: exact search equals brute force over every ordering, the beam stays
within it and beyond every evaluated ordering, and a wider beam is never worse."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sgt_nlp.metrics import DEFAULT_AOPC_THRESHOLDS
from sgt_nlp.metrics.aopc_bounds import (
    CachedDrops,
    aopc_bounds,
    bin_levels,
    exact_extremes,
    ordering_aopc,
)


def synthetic_drops(n: int, seed: int):
    """A drop function with word interactions (pairs), so no greedy rule is exact: comp and suff differ."""
    rng = np.random.default_rng(seed)
    single = rng.normal(size=(2, n))
    pair = rng.normal(scale=0.7, size=(2, n, n))

    def drops(kind: str, sets: list[frozenset[int]]) -> np.ndarray:
        k = 0 if kind == "comp" else 1
        out = []
        for s in sets:
            idx = sorted(s)
            value = single[k, idx].sum() + sum(pair[k, i, j] for i, j in itertools.combinations(idx, 2))
            out.append(np.tanh(value / 3))
        return np.array(out)

    return drops


def brute_force(n: int, drops, kind: str) -> tuple[float, float]:
    cached = CachedDrops(drops)
    values = [
        ordering_aopc(order, n, DEFAULT_AOPC_THRESHOLDS, cached, kind)
        for order in itertools.permutations(range(n))
    ]
    return min(values), max(values)


def test_bin_levels_weights_sum_to_one():
    for n in (1, 3, 7, 25, 256):
        assert sum(w for _, w in bin_levels(n, DEFAULT_AOPC_THRESHOLDS)) == pytest.approx(1.0)


@pytest.mark.parametrize("n", [1, 2, 4, 6, 7])
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_equals_brute_force(n, seed):
    drops = synthetic_drops(n, seed)
    for kind in ("comp", "suff"):
        assert exact_extremes(n, DEFAULT_AOPC_THRESHOLDS, drops, kind) == pytest.approx(
            brute_force(n, drops, kind)
        )
    bounds = aopc_bounds(n, DEFAULT_AOPC_THRESHOLDS, drops, search="exact")
    assert bounds.search == "exact"
    assert (bounds.comprehensiveness_low, bounds.comprehensiveness_high) == pytest.approx(
        brute_force(n, drops, "comp")
    )


@pytest.mark.parametrize("n", [5, 7, 9])
def test_beam_within_exact_and_beyond_evaluated(n):
    drops = synthetic_drops(n, 3)
    rng = np.random.default_rng(n)
    orders = [rng.permutation(n) for _ in range(4)]
    evaluated = {
        kind: [ordering_aopc(o, n, DEFAULT_AOPC_THRESHOLDS, drops, kind) for o in orders]
        for kind in ("comp", "suff")
    }
    exact = aopc_bounds(n, DEFAULT_AOPC_THRESHOLDS, drops, search="exact")
    previous = None
    for width in (1, 2, 3, 5):
        beam = aopc_bounds(
            n, DEFAULT_AOPC_THRESHOLDS, drops, "beam", width, seed_orders=orders, evaluated=evaluated
        )
        assert beam.search == "beam" and beam.beam_width == width
        for name, kind in (("comprehensiveness", "comp"), ("sufficiency", "suff")):
            low, high = getattr(beam, f"{name}_low"), getattr(beam, f"{name}_high")
            # never beyond the true extremes, never inside an evaluated ordering's AOPC
            assert getattr(exact, f"{name}_low") - 1e-12 <= low <= min(evaluated[kind])
            assert max(evaluated[kind]) <= high <= getattr(exact, f"{name}_high") + 1e-12
        if previous is not None:  # a wider beam is never worse
            assert beam.comprehensiveness_high >= previous.comprehensiveness_high
            assert beam.comprehensiveness_low <= previous.comprehensiveness_low
            assert beam.sufficiency_high >= previous.sufficiency_high
            assert beam.sufficiency_low <= previous.sufficiency_low
        previous = beam


def test_exact_falls_back_to_beam_for_long_inputs():
    drops = synthetic_drops(30, 0)
    bounds = aopc_bounds(30, DEFAULT_AOPC_THRESHOLDS, drops, search="exact", beam_width=1)
    assert bounds.search == "beam" and bounds.model_passes > 0


def test_cached_drops_runs_each_set_once():
    calls = []

    def drops(kind, sets):
        calls.extend(sets)
        return np.zeros(len(sets))

    cached = CachedDrops(drops)
    cached("comp", [frozenset({1}), frozenset({1}), frozenset({2})])
    cached("comp", [frozenset({2})])
    assert len(calls) == 2 and cached.passes == 2
