"""When a difference is called: the minimum detectable effect, the rule's false-positive rate and power by
simulation, and the verdict that needs raw AOPC, AOPC − Random and NAOPC with all-order bounds to agree."""

from __future__ import annotations

import numpy as np
import pytest

from sgt_nlp.experiments import (
    method_metrics,
    method_verdict,
    minimum_detectable_effect,
    normalisation_verdict,
    simulate_call_rates,
)
from sgt_nlp.experiments.verdicts import verdicts


def ordering(p_full, p_comp_bins, p_suff_bins):
    n = len(p_full)
    return {
        "predicted": [0] * n,
        "p_full": list(p_full),
        "p_empty": [0.1] * n,
        "p_comp": [b[0] for b in p_comp_bins],
        "p_suff": [b[0] for b in p_suff_bins],
        "p_comp_aopc": [list(b) for b in p_comp_bins],
        "p_suff_aopc": [list(b) for b in p_suff_bins],
        "tokens_to_flip": [1] * n,
        "auprc_visible": [None] * n,
        "token_f1_visible": [None] * n,
    }


def test_minimum_detectable_effect_is_the_t_power_at_the_seed_sd_and_the_bootstrap_width():
    from scipy import stats

    # one seed: the bootstrap's, (1.96 + 0.84) standard errors of a normal interval of half-width 1.96
    assert minimum_detectable_effect({"mean": 0.0, "low": -1.959964, "high": 1.959964}) == pytest.approx(
        stats.norm.ppf(0.975) + stats.norm.ppf(0.8), rel=1e-5
    )
    # three seeds of sd 0.1: the noncentral t solution (about 3.3 sd / sqrt(3) ... 0.33), above the narrow
    # bootstrap's
    narrow = {"mean": 0.0, "low": -0.01, "high": 0.01, "per_seed": [-0.1, 0.0, 0.1]}
    assert minimum_detectable_effect(narrow) == pytest.approx(0.3264, abs=1e-3)
    # two seeds (the ablation): finite, where scipy's noncentral t has NaN tails; more seeds need less
    from sgt_nlp.experiments.verdicts import t_detectable

    two, three, five = (t_detectable(1.0, n) for n in (2, 3, 5))
    assert np.isfinite(two) and two > three > five


def test_the_call_rule_keeps_false_positives_near_5_percent_and_the_former_rule_did_not():
    """Null simulation (199 examples, per-example sd 0.20, seed sd 0.10, three seeds): the rule calls a
    difference at most 6 % of the time; the bootstrap alone or with every seed's sign called about a fifth.
    A planted effect at the minimum detectable effect is found about 80 % of the time."""
    null = simulate_call_rates(0.0, seeds=3, simulations=600, seed_sd=0.10, resamples=500)
    assert null["better"] + null["worse"] <= 0.06
    assert null["seed_sign"] > 0.15
    effect = minimum_detectable_effect({"mean": 0.0, "low": 0.0, "high": 0.0, "per_seed": [-0.1, 0.0, 0.1]})
    planted = simulate_call_rates(effect, seeds=3, simulations=300, seed_sd=0.10, resamples=500)
    assert 0.65 <= planted["better"] <= 0.92 and planted["worse"] == 0


def test_verdict_from_three_measures_needs_all_of_them():
    measures = (
        "comprehensiveness_aopc",
        "comprehensiveness_aopc_minus_random",
        "comprehensiveness_naopc_bounds",
    )
    assert normalisation_verdict(dict(zip(measures, ["better"] * 3, strict=True))) == "better"
    assert normalisation_verdict(dict(zip(measures, ["better", "better", "worse"], strict=True))) == (
        "depends on normalisation"
    )
    assert normalisation_verdict(dict(zip(measures, ["worse", "within noise", "worse"], strict=True))) == (
        "depends on normalisation"
    )
    assert normalisation_verdict(dict(zip(measures, ["within noise"] * 3, strict=True))) == "within noise"
    not_measured = normalisation_verdict(dict(zip(measures, ["better", "better", None], strict=True)))
    assert not_measured == "better (NAOPC with all-order bounds not measured)"
    assert method_verdict(not_measured, None, "sgt", "plain") == (
        "sgt beats plain beyond the intervals (NAOPC with all-order bounds not measured)"
    )
    assert method_verdict("depends on normalisation", "better", "sgt", "plain") == "depends on normalisation"
    assert method_verdict("within seed noise", "better", "sgt", "plain") == (
        "sgt beats random-mask but not plain (within seed noise)"
    )
    assert method_verdict("within noise", not_measured, "sgt", "plain") == (
        "sgt beats random-mask (NAOPC with all-order bounds not measured) but not plain (within noise)"
    )


def test_minus_random_and_naopc_with_searched_bounds_per_example():
    full = [0.9, 0.9]
    orderings = {
        "gradient": ordering(full, [(0.5, 0.5), (0.1, 0.1)], [(0.9, 0.9), (0.9, 0.9)]),  # comp AOPC .4, .8
        "random": ordering(full, [(0.8, 0.8), (0.5, 0.5)], [(0.5, 0.5), (0.9, 0.9)]),  # .1, .4
        "random_draw1": ordering(full, [(0.7, 0.7), (0.3, 0.3)], [(0.7, 0.7), (0.9, 0.9)]),  # .2, .6
    }
    bounds = {
        "comprehensiveness_aopc_low": [0.0, 0.5],  # the second is above an evaluated AOPC (.4): widened
        "comprehensiveness_aopc_high": [0.8, 0.9],
        "sufficiency_aopc_low": [None, None],  # not searched for this example: NaN
        "sufficiency_aopc_high": [None, None],
    }
    methods = method_metrics(orderings, labels=[0, 0], bounds=bounds)
    assert methods["gradient"]["comprehensiveness_aopc_minus_random"] == pytest.approx([0.25, 0.3])
    assert np.isnan(methods["random"]["comprehensiveness_aopc_minus_random"]).all()
    assert methods["gradient"]["comprehensiveness_naopc_bounds"] == pytest.approx([0.5, 0.8])
    assert methods["gradient"]["comprehensiveness_naopc"] == pytest.approx([1.0, 1.0])  # evaluated bounds
    assert np.isnan(methods["gradient"]["sufficiency_naopc_bounds"]).all()
    without = method_metrics(orderings, labels=[0, 0])
    assert np.isnan(without["gradient"]["comprehensiveness_naopc_bounds"]).all()


def test_verdicts_combine_the_measures_per_control_and_leave_random_minus_random_out():
    def row(method, metric, outcome):
        return {"removal": "delete", "method": method, "metric": metric, "outcome": outcome}

    comparisons = [
        {
            "treatment": "sgt",
            "control": "plain",
            "rows": [
                row("gradient", "comprehensiveness_aopc", "worse"),
                row("gradient", "comprehensiveness_aopc_minus_random", "worse"),
                row("gradient", "comprehensiveness_naopc_bounds", "better"),
                row("random", "comprehensiveness_aopc", "within noise"),
                row("random", "comprehensiveness_naopc_bounds", "within noise"),
            ],
        }
    ]
    found = {(v["method"], v["metric"]): v for v in verdicts("plain", comparisons)}
    assert found[("gradient", "comprehensiveness")]["verdict"] == "depends on normalisation"
    assert found[("random", "comprehensiveness")]["verdict"] == "within noise"
    assert (
        "comprehensiveness_aopc_minus_random"
        not in found[("random", "comprehensiveness")]["measures"]["plain"]
    )
    assert ("gradient", "sufficiency") not in found


def test_the_first_evaluation_call_searches_the_bounds_and_the_record_keeps_them(tmp_path):
    from dataclasses import replace

    from sgt_nlp.experiments import PRESETS
    from sgt_nlp.experiments.records import bound_columns
    from sgt_nlp.experiments.stages import evaluation_calls

    smoke = PRESETS["smoke"]
    spec = replace(smoke, naopc_bounds="beam", bounds_beam_width=3)
    dataset = replace(smoke.datasets[0], bounds_examples=5)
    calls = evaluation_calls(spec, dataset, tmp_path / "m", tmp_path / "d", tmp_path / "o", "x")
    configs = [config for _, config in calls]
    assert (configs[0].naopc_bounds, configs[0].bounds_beam_width, configs[0].bounds_max_examples) == (
        "beam",
        3,
        5,
    )
    assert all(c.naopc_bounds == "evaluated" for c in configs[1:])  # gradient_l2 and the random draws
    line = {
        "search": "beam",
        "beam_width": 3,
        "comprehensiveness_aopc_low": 0.1,
        "comprehensiveness_aopc_high": 0.9,
        "sufficiency_aopc_low": 0.0,
        "sufficiency_aopc_high": 0.5,
        "model_passes": 40,
        "seconds": 0.1,
    }
    columns = bound_columns([{"aopc_bounds": line}, {"aopc_bounds": None}])
    assert columns["comprehensiveness_aopc_high"] == [0.9, None] and columns["search"] == ["beam", None]
    assert bound_columns([{"aopc_bounds": None}]) is None


def test_the_bounds_spec_file_asks_for_five_seeds_and_a_movies_subsample():
    from sgt_nlp.experiments import load_spec
    from tests.toy_data import ROOT

    spec = load_spec(ROOT / "specs" / "cpu_bounds.yaml")
    assert spec.seeds == (0, 1, 2, 3, 4) and spec.naopc_bounds == "beam"
    sizes = {d.name: d.bounds_examples for d in spec.datasets}
    assert sizes == {"sst2": None, "movies": 40}
