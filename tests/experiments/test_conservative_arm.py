"""The ablation's arm ranked by conservative propagation, and conservative as a method a spec may name: the
spec and preset exist and validate, and the runner trains and evaluates such an arm end to end (smoke)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sgt_nlp.config import SaliencyGuidedTrainingArguments
from sgt_nlp.experiments import ALL_METHODS, METHODS, PRESETS, Experiment, SpecError, spec_from_dict
from sgt_nlp.experiments.records import read_json


def test_the_ablation_has_a_conservative_arm_compared_with_every_control():
    ablation = PRESETS["ablation"]
    arm = ablation.arms["sgt_conservative"]
    assert arm["sgt_saliency_method"] == "conservative" and arm["sgt_mask_fraction"] == 0.5
    SaliencyGuidedTrainingArguments(output_dir="unused", use_cpu=True, **arm)  # valid trainer settings
    pairs = ablation.compared_pairs()
    assert {c for t, c in pairs if t == "sgt_conservative"} == {"plain", "random_mask", "sgt"}
    # no preset evaluates conservative unless asked: the default method list is what it was
    assert "conservative" not in METHODS and "conservative" in ALL_METHODS
    assert all("conservative" not in preset.methods for preset in PRESETS.values())


def test_a_spec_may_name_conservative_but_not_an_unknown_method():
    spec = spec_from_dict({"preset": "smoke", "methods": ["gradient", "conservative", "random"]})
    assert spec.methods == ("gradient", "conservative", "random")
    with pytest.raises((SpecError, ValueError), match="lrp"):
        spec_from_dict({"preset": "smoke", "methods": ["gradient", "lrp"]})


def test_runner_trains_and_evaluates_a_conservative_arm(tmp_path):
    spec = replace(
        PRESETS["smoke"],
        seeds=(0,),
        methods=("gradient", "conservative", "random"),
        random_draws=1,
        arms={
            "plain": {"sgt_mask_fraction": 0.0},
            "sgt_conservative": PRESETS["ablation"].arms["sgt_conservative"],
        },
    )
    experiment = Experiment(spec, tmp_path / "out", tmp_path / "work")
    result = experiment.run()
    run = "synthetic/sgt_conservative_seed0_lr0.001"
    assert run in experiment.evaluated_runs
    train = read_json(tmp_path / "out" / run / "train.json")
    assert train["sgt_settings"]["sgt_saliency_method"] == "conservative"
    comparison = result["datasets"]["synthetic"]["comparisons"][0]
    assert (comparison["treatment"], comparison["control"]) == ("sgt_conservative", "plain")
    assert any("Conservative propagation" in line for line in (tmp_path / "out" / "results.md").open())
