"""The call rule by simulation: how often :func:`~sgt_nlp.experiments.verdicts.verdict_words` calls a
difference that is not there (false positives) and one that is (power).
``scripts/seed_inference_simulation.py`` prints the table that ``docs/results.md`` quotes; the tests check
the false-positive rate."""

from __future__ import annotations

import numpy as np

from .statistics import paired_bootstrap
from .verdicts import verdict_words


def simulate_call_rates(
    effect: float,
    seeds: int,
    simulations: int = 2000,
    examples: int = 199,
    example_sd: float = 0.20,
    seed_sd: float = 0.10,
    resamples: int = 1000,
    random_state: int = 0,
) -> dict[str, float]:
    """How often the call rule calls a difference ``better`` (and ``worse``) when the true mean difference is
    ``effect``: each simulated comparison draws ``difference[s, i] = effect + u_s + e_si`` with a seed
    effect ``u_s ~ N(0, seed_sd)`` (two training runs differ) and an example term ``e_si ~ N(0,
    example_sd)``, and is called by :func:`verdict_words` on its multi-bootstrap. With ``effect = 0`` the
    rates are false positives; otherwise ``better`` is the power. ``bootstrap_only`` is the rate of the
    bootstrap interval alone, ``seed_sign`` that of the former rule (bootstrap plus every seed's sign)."""
    rng = np.random.default_rng(random_state)
    counts = {"better": 0, "worse": 0, "bootstrap_only": 0, "seed_sign": 0}
    for _ in range(simulations):
        d = (
            effect
            + rng.normal(0, seed_sd, size=(seeds, 1))
            + rng.normal(0, example_sd, size=(seeds, examples))
        )
        interval = paired_bootstrap(d, resamples, seed=int(rng.integers(2**31)))
        words = verdict_words(interval, +1)
        if words in counts:
            counts[words] += 1
        excluded = interval["low"] > 0 or interval["high"] < 0
        counts["bootstrap_only"] += int(excluded)
        side = 1 if interval["low"] > 0 else -1
        counts["seed_sign"] += int(excluded and all(side * v > 0 for v in interval["per_seed"]))
    return {key: value / simulations for key, value in counts.items()}
