"""The highest and lowest AOPC over *all* orderings of an example's words: NAOPC's method-independent bounds.

NAOPC (Edin et al., ACL 2025, "Normalized AOPC") rescales an example's AOPC by the lowest and highest AOPC
that any ordering of its words reaches, so that the normaliser does not come from the methods being
compared. This module finds those extremes for ERASER's binned AOPC (:func:`~sgt_nlp.metrics.aopc`): the
AOPC of an ordering depends only on its nested top sets ``S_1 ⊂ S_2 ⊂ ...`` at the bin sizes
``k = removal_count(n, fraction)``, so the search runs over such chains of sets.

- ``exact``: dynamic programming over every set of every bin size (``Σ_j C(n, k_j)`` model passes per kind);
  equal to enumerating every ordering (the tests check this against brute force).
- ``beam``: from each set in the beam (the chain so far), every unused word is tried as the next one (its
  drop ranks the words), and the set grows to the next bin size with the best-ranked words, the next best
  in turn taking the last place (``width`` variants), and with the next words of each evaluated ordering
  (``seed_orders``); the ``width`` chains with the best partial AOPC stay. With a bin step of one word this
  is Edin et al.'s beam over orderings. The bound of width ``B`` is the best of the beams of widths
  ``1..B`` (their model passes shared through a cache), so a wider beam is never worse, and it is also never
  less extreme than an evaluated ordering (their AOPCs are passed in).

The model side is a callable ``drops(kind, sets) -> array``: for ``kind == "comp"`` the drop in p(ŷ) when
the words of each set are removed, for ``"suff"`` when only they are kept. Pure; no model here.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .faithfulness import removal_count

#: how the bounds are found: ``evaluated`` (the extremes over the evaluated orderings, no extra passes),
#: ``beam`` or ``exact`` (exact where at most ``EXACT_MAX_SETS`` sets per kind, beam search otherwise)
BOUND_SEARCHES: tuple[str, ...] = ("evaluated", "beam", "exact")
#: ``exact`` enumerates the sets of every bin size up to this many per kind (n ≤ 12 words at the default
#: bins); longer inputs fall back to the beam
EXACT_MAX_SETS = 2000
KINDS: tuple[str, ...] = ("comp", "suff")

Drops = Callable[[str, list[frozenset[int]]], np.ndarray]


@dataclass(frozen=True)
class AOPCBounds:
    """One example's bounds under one removal mode: comprehensiveness and sufficiency AOPC, lowest and
    highest over the orderings searched; ``search`` is the search that ran (``exact`` or ``beam``),
    ``model_passes`` the distinct perturbed inputs it needed."""

    comprehensiveness_low: float
    comprehensiveness_high: float
    sufficiency_low: float
    sufficiency_high: float
    search: str
    beam_width: int | None
    model_passes: int


def bin_levels(n: int, thresholds: Sequence[float]) -> list[tuple[int, float]]:
    """``(k, weight)`` per distinct bin size, smallest first: an ordering's AOPC is ``Σ weight ·
    drop(top k)``; a size shared by several bins weighs their share.

    >>> bin_levels(7, (0.01, 0.05, 0.1, 0.2, 0.5))
    [(1, 0.6), (2, 0.2), (4, 0.2)]
    """
    counts = Counter(removal_count(n, t) for t in thresholds)
    return [(k, counts[k] / len(thresholds)) for k in sorted(counts) if k > 0]


def ordering_aopc(
    order: Sequence[int], n: int, thresholds: Sequence[float], drops: Drops, kind: str
) -> float:
    """The AOPC of one ordering (top word first), from the drops of its top sets."""
    levels = bin_levels(n, thresholds)
    sets = [frozenset(int(i) for i in order[:k]) for k, _ in levels]
    values = drops(kind, sets)
    return float(sum(w * v for (_, w), v in zip(levels, values, strict=True)))


class CachedDrops:
    """``drops`` with every set run once (per kind); ``passes`` counts the sets run."""

    def __init__(self, drops: Drops):
        self._drops = drops
        self._known: dict[tuple[str, frozenset[int]], float] = {}

    @property
    def passes(self) -> int:
        return len(self._known)

    def __call__(self, kind: str, sets: list[frozenset[int]]) -> np.ndarray:
        new = list(dict.fromkeys(s for s in sets if (kind, s) not in self._known))
        if new:
            for s, value in zip(new, np.asarray(self._drops(kind, new), dtype=float), strict=True):
                self._known[(kind, s)] = float(value)
        return np.array([self._known[(kind, s)] for s in sets], dtype=float)


def exact_set_count(n: int, thresholds: Sequence[float]) -> int:
    """The sets (model passes per kind) :func:`exact_extremes` needs."""
    return sum(math.comb(n, k) for k, _ in bin_levels(n, thresholds))


def exact_extremes(n: int, thresholds: Sequence[float], drops: Drops, kind: str) -> tuple[float, float]:
    """``(lowest, highest)`` AOPC over every ordering of ``n`` words, by dynamic programming over the chains
    of top sets: the best chain ending in a set is its own weighted drop plus the best chain ending in one of
    its subsets of the previous bin size."""
    levels = bin_levels(n, thresholds)
    if not levels:
        return 0.0, 0.0
    low: dict[frozenset[int], float] = {frozenset(): 0.0}
    high: dict[frozenset[int], float] = {frozenset(): 0.0}
    previous = 0
    for k, weight in levels:
        sets = [frozenset(c) for c in itertools.combinations(range(n), k)]
        values = drops(kind, sets)
        new_low, new_high = {}, {}
        for s, value in zip(sets, values, strict=True):
            subsets = [frozenset(c) for c in itertools.combinations(sorted(s), previous)]
            new_low[s] = weight * value + min(low[t] for t in subsets)
            new_high[s] = weight * value + max(high[t] for t in subsets)
        low, high, previous = new_low, new_high, k
    return min(low.values()), max(high.values())


def _beam(
    n: int,
    levels: list[tuple[int, float]],
    drops: Drops,
    kind: str,
    sign: int,
    width: int,
    seed_orders: Sequence[Sequence[int]],
) -> float:
    """The most extreme AOPC (``sign`` +1: highest, -1: lowest) that a beam of ``width`` chains finds."""
    beam: list[tuple[float, frozenset[int]]] = [(0.0, frozenset())]
    previous = 0
    for k, weight in levels:
        step = k - previous
        candidates: dict[frozenset[int], float] = {}
        for score, chain in beam:
            rest = [i for i in range(n) if i not in chain]
            grown: list[frozenset[int]] = []
            if step >= len(rest):
                grown.append(chain | frozenset(rest))
            else:
                marginal = drops(kind, [chain | {i} for i in rest])
                ranked = [rest[j] for j in np.argsort(-sign * marginal, kind="stable")]
                head = frozenset(ranked[: step - 1])
                grown += [
                    chain | head | {ranked[step - 1 + r]} for r in range(min(width, len(rest) - step + 1))
                ]
                for order in seed_orders:
                    grown.append(chain | frozenset([int(i) for i in order if int(i) not in chain][:step]))
            for s in grown:  # a set reached from two chains keeps the better one's score
                if s not in candidates or sign * score > sign * candidates[s]:
                    candidates[s] = score
        sets = list(candidates)
        values = drops(kind, sets)
        scored = sorted(
            ((candidates[s] + weight * v, s) for s, v in zip(sets, values, strict=True)),
            key=lambda item: (-sign * item[0], sorted(item[1])),
        )
        beam, previous = scored[:width], k
    return beam[0][0]


def aopc_bounds(
    n: int,
    thresholds: Sequence[float],
    drops: Drops,
    search: str = "beam",
    beam_width: int = 2,
    seed_orders: Sequence[Sequence[int]] = (),
    evaluated: dict[str, Sequence[float]] | None = None,
    exact_max_sets: int = EXACT_MAX_SETS,
) -> AOPCBounds:
    """Lowest and highest comprehensiveness and sufficiency AOPC over the orderings of ``n`` words.

    ``search``: ``exact`` (dynamic programming, when at most ``exact_max_sets`` sets per kind; else the
    beam) or ``beam`` (width ``beam_width``, seeded with ``seed_orders``). ``evaluated`` (``{"comp": [...],
    "suff": [...]}``, the AOPCs of the evaluated orderings) widens the bounds to cover them: they are
    orderings too, so the bounds stay within the true extremes.
    """
    if search not in ("beam", "exact"):
        raise ValueError(f"search={search!r}: the bounds are searched by 'beam' or 'exact'")
    if beam_width < 1:
        raise ValueError(f"beam_width must be positive, got {beam_width}")
    cached = CachedDrops(drops)
    levels = bin_levels(n, thresholds)
    used = "exact" if search == "exact" and exact_set_count(n, thresholds) <= exact_max_sets else "beam"
    found: dict[str, tuple[float, float]] = {}
    for kind in KINDS:
        if not levels:
            low, high = 0.0, 0.0
        elif used == "exact":
            low, high = exact_extremes(n, thresholds, cached, kind)
        else:
            widths = range(1, beam_width + 1)
            high = max(_beam(n, levels, cached, kind, +1, w, seed_orders) for w in widths)
            low = min(_beam(n, levels, cached, kind, -1, w, seed_orders) for w in widths)
        values = [float(v) for v in (evaluated or {}).get(kind, ()) if not math.isnan(v)]
        found[kind] = (min([low, *values]), max([high, *values]))
    return AOPCBounds(
        comprehensiveness_low=found["comp"][0],
        comprehensiveness_high=found["comp"][1],
        sufficiency_low=found["suff"][0],
        sufficiency_high=found["suff"][1],
        search=used,
        beam_width=beam_width if used == "beam" else None,
        model_passes=cached.passes,
    )
