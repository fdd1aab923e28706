"""The one rule for taking a seeded subset of a data split.

``size`` rows are drawn without replacement by ``numpy.random.default_rng(seed).choice`` and kept in their
file order. ERASER files are often sorted by class (movies test: 100 NEG reviews, then 99 POS), so a prefix of
the file can be one class; a seeded draw is not, and the same seed gives the same rows in every run and
session (the experiment runner's recorded runs rely on it). Used by ``sgt-nlp train --max_train_samples``,
``sgt-nlp evaluate --max_examples`` (``--sample random``) and the experiment runner's SST-2 training subset.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def seeded_subset(total: int, size: int | None, seed: int) -> list[int]:
    """Indices of ``size`` of ``total`` rows drawn with ``seed``, in increasing order; all rows if ``size`` is
    None or at least ``total``. A negative ``size`` is an error."""
    if size is None or size >= total:
        return list(range(total))
    if size < 0:
        raise ValueError(f"a subset size must be >= 0, got {size}")
    chosen = np.random.default_rng(seed).choice(total, size=size, replace=False)
    return sorted(int(i) for i in chosen)


def random_subset(split: Any, size: int, seed: int) -> Any:
    """``size`` rows of a ``datasets.Dataset`` by :func:`seeded_subset` (the dataset itself if it has no
    more)."""
    if size < 0:
        raise ValueError(f"--max_train_samples/--max_eval_samples must be >= 0, got {size}")
    if size >= len(split):
        return split
    return split.select(seeded_subset(len(split), size, seed))
