"""Why do NAOPC and AOPC / empty drop disagree? Split a method's "/ empty drop" into the model's scale and the
method's place among the evaluated orderings.

    python scripts/normalisation_scale.py --records docs/results/experiment_cpu/sst2 \
        [--arms sgt,random_mask] [--seeds 0,1,2] [--method integrated_gradients] \
        [--removals delete,random_token]

For one model and removal mode, per test example, with d0 = p - p(ŷ | every seen word removed) (the
"/ empty drop" denominator, Carton et al. 2020) and best = the highest comprehensiveness AOPC among the
orderings evaluated for that model (NAOPC's upper bound):

    method AOPC / d0  =  (best / d0)  ×  (method AOPC / best)

The first factor is a property of the model (how far a partial removal can move it compared with removing
everything), the second the method's standing against the best ordering found for that model. A lead on
"/ empty drop" that comes with a lower ``method / best`` is scale, not a better ranking. The means are taken
over the examples where every compared model's d0 reaches ``MIN_EMPTY_DROP`` (the pairing the tables use),
so the difference of two arms' ``method / d0`` in a seed is that seed's "/ empty drop" difference in
``results.md``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sgt_nlp.experiments.records import read_json  # noqa: E402
from sgt_nlp.experiments.statistics import MIN_EMPTY_DROP, empty_input_drop, per_example_metrics  # noqa: E402


def empty_drop(orderings: dict[str, dict[str, list]]) -> np.ndarray:
    """Per example d0 of a model under one removal mode (the same in each of its orderings)."""
    return empty_input_drop(next(iter(orderings.values())))


def scale_terms(
    orderings: dict[str, dict[str, list]], labels: Sequence[int], method: str, keep: np.ndarray
) -> dict[str, float]:
    """Means over the ``keep`` examples of best / d0, method / d0 and method / best, on comprehensiveness
    AOPC."""
    if method not in orderings:
        raise KeyError(f"method {method!r} not in the record's orderings ({', '.join(orderings)})")
    aopc = {name: per_example_metrics(o, labels)["comprehensiveness_aopc"] for name, o in orderings.items()}
    best = np.stack(list(aopc.values())).max(axis=0)[keep]
    d0 = empty_drop(orderings)[keep]
    value = aopc[method][keep]
    over_best = value / np.where(best > 1e-9, best, np.nan)  # NaN where no ordering moved the model
    return {
        "examples": int(keep.sum()),
        "best_over_empty": float(np.mean(best / d0)),
        "method_over_empty": float(np.mean(value / d0)),
        "method_over_best": float(np.nanmean(over_best)),
    }


def load_record(records: Path, arm: str, seed: int) -> dict:
    """The eval record of ``arm`` and ``seed`` under ``records`` (one ``<arm>_seed<seed>_lr*`` folder)."""
    found = sorted(records.glob(f"{arm}_seed{seed}_lr*/eval.json.gz"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"{records}: expected one {arm}_seed{seed}_lr*/eval.json.gz, found {len(found)}"
            + (f": {', '.join(str(f) for f in found)}" if found else "")
        )
    record = read_json(found[0])
    assert record is not None  # found by the glob above
    return record


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, required=True, help="a dataset folder of experiment records")
    parser.add_argument("--arms", default="sgt,random_mask")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--method", default="integrated_gradients")
    parser.add_argument("--removals", default="delete,random_token")
    args = parser.parse_args(argv)
    arms = args.arms.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    print(
        f"{args.method}, comprehensiveness AOPC; means over the examples where every arm's "
        f"d0 ≥ {MIN_EMPTY_DROP}"
    )
    print()
    print("| removal | seed | arm | examples | best / d0 | method / d0 | method / best |")
    print("|---|---|---|---|---|---|---|")
    loaded = {seed: {arm: load_record(args.records, arm, seed) for arm in arms} for seed in seeds}
    for removal in args.removals.split(","):
        for seed in seeds:
            records = loaded[seed]
            keep = np.logical_and.reduce(
                [empty_drop(r["orderings"][removal]) >= MIN_EMPTY_DROP for r in records.values()]
            )
            for arm, record in records.items():
                labels = record["examples"]["label"]
                terms = scale_terms(record["orderings"][removal], labels, args.method, keep)
                print(
                    f"| {removal} | {seed} | {arm} | {terms['examples']} | {terms['best_over_empty']:.3f} "
                    f"| {terms['method_over_empty']:.3f} | {terms['method_over_best']:.3f} |"
                )


if __name__ == "__main__":
    main()
