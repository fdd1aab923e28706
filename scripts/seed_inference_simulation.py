"""How often the experiment tables' call rule calls a difference that is not there, and how often it finds one
that is: the simulation behind ``sgt_nlp.experiments.verdicts``.

    python scripts/seed_inference_simulation.py [--simulations 2000]

Each simulated comparison draws per-example differences ``effect + u_s + e_si`` for ``seeds`` training runs
(seed effect ``u_s ~ N(0, seed sd)``) and 199 test examples (``e_si ~ N(0, 0.20)``), as SST-2's recorded
per-example sd, and is called by the rule (multi-bootstrap interval and the Student t interval over the seed
means on the same side of 0). Printed per setting: the rate of 'better' and of 'worse' calls, beside the
bootstrap interval alone and the former rule (bootstrap plus every seed's mean difference on its side), and
the minimum detectable effect at 80 % power of the seed-level t test at that seed sd.
"""

from __future__ import annotations

import argparse

from sgt_nlp.experiments.simulation import simulate_call_rates
from sgt_nlp.experiments.verdicts import t_detectable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    print(
        f"{args.simulations} simulated comparisons per row, 199 examples, per-example sd 0.20, "
        f"{args.resamples} bootstrap resamples"
    )
    print(
        "| seeds | seed sd | true effect | rule: better | rule: worse | bootstrap alone | former rule "
        "(every seed agrees) | MDE of the t test (80 %) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for seeds in (3, 5):
        for seed_sd in (0.05, 0.10):
            mde = t_detectable(seed_sd, seeds)
            for effect in (0.0, 0.1, mde):
                rates = simulate_call_rates(
                    effect, seeds, args.simulations, seed_sd=seed_sd, resamples=args.resamples
                )
                print(
                    f"| {seeds} | {seed_sd:.2f} | {effect:.3f} | {rates['better']:.3f} | "
                    f"{rates['worse']:.3f} | "
                    f"{rates['bootstrap_only']:.3f} | {rates['seed_sign']:.3f} | {mde:.3f} |"
                )


if __name__ == "__main__":
    main()
