"""The experiment runner: paired bootstrap (known answers), per-example metrics, specs, SST-2 loading, and the
smoke preset end to end (gate, resume, only_finished)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from sgt_nlp.experiments import (
    PRESETS,
    Experiment,
    SpecError,
    load_spec,
    method_metrics,
    method_verdict,
    min_max_normalise,
    paired_bootstrap,
    per_example_metrics,
    read_json,
    read_sst2_tsv,
    seed_interval,
    spec_from_dict,
    verdict_words,
    write_sst2_as_eraser,
)
from sgt_nlp.experiments.stages import epochs_timed
from tests.toy_data import ROOT

# ---- paired bootstrap --------------------------------------------------------------------------------------


def test_bootstrap_of_constant_differences_is_a_point():
    result = paired_bootstrap(np.full((2, 5), 0.25), resamples=100)
    assert result["mean"] == result["low"] == result["high"] == pytest.approx(0.25)
    assert result["pairs"] == 10 and result["examples"] == 5


def test_bootstrap_of_two_examples_spans_their_values():
    """Resampling 2 examples: the mean is 0 (p 1/4), 0.5 (p 1/2) or 1 (p 1/4): the 95 % interval is [0, 1]."""
    result = paired_bootstrap(np.array([[0.0, 1.0]]), resamples=4000)
    assert result["mean"] == 0.5 and result["low"] == 0.0 and result["high"] == 1.0


def test_bootstrap_keeps_the_seeds_of_an_example_together():
    """Two seeds with the same per-example differences give the interval of one seed (examples are the
    unit)."""
    one = paired_bootstrap(np.array([[1.0, 3.0, 2.0]]), resamples=3000, seed=1)
    two = paired_bootstrap(np.array([[1.0, 3.0, 2.0], [1.0, 3.0, 2.0]]), resamples=3000, seed=1)
    assert (two["low"], two["mean"], two["high"]) == (one["low"], one["mean"], one["high"])
    assert two["pairs"] == 6


def test_bootstrap_matches_the_normal_interval_for_many_examples():
    differences = np.random.default_rng(3).normal(0.3, 1.0, size=(1, 900))
    result = paired_bootstrap(differences, resamples=4000)
    half_width = 1.96 * differences.std(ddof=1) / np.sqrt(900)
    assert result["mean"] == pytest.approx(differences.mean())
    assert result["low"] == pytest.approx(differences.mean() - half_width, abs=0.01)
    assert result["high"] == pytest.approx(differences.mean() + half_width, abs=0.01)


def test_bootstrap_resamples_seeds_so_training_variance_widens_the_interval():
    """Two seeds whose models differ by 0 and by 1 on every example: the examples-only interval is the point
    0.5 (the models held fixed), while drawing 2 of the 2 seeds with replacement gives a mean of 0 (p 1/4),
    0.5 (p 1/2) or 1 (p 1/4): the multi-bootstrap interval is [0, 1]."""
    result = paired_bootstrap(np.array([[0.0] * 6, [1.0] * 6]), resamples=4000)
    assert result["mean"] == 0.5 and result["seeds"] == 2
    assert result["examples_low"] == result["examples_high"] == pytest.approx(0.5)
    assert result["low"] == 0.0 and result["high"] == 1.0


def test_bootstrap_of_one_seed_is_the_example_bootstrap_and_a_missing_seed_is_never_drawn():
    rng = np.random.default_rng(5)
    one = paired_bootstrap(rng.normal(0.2, 1.0, size=(1, 300)), resamples=1000)
    assert (one["low"], one["high"]) == (one["examples_low"], one["examples_high"])
    with_gap = np.vstack([rng.normal(0.2, 1.0, size=(1, 300)), np.full((1, 300), np.nan)])
    result = paired_bootstrap(with_gap, resamples=1000)
    assert result["seeds"] == 1 and (result["low"], result["high"]) == (
        result["examples_low"],
        result["examples_high"],
    )


def test_bootstrap_reports_each_seeds_mean_difference():
    result = paired_bootstrap(np.array([[1.0, 3.0], [-1.0, np.nan], [np.nan, np.nan]]), resamples=200)
    assert result["per_seed"][:2] == [2.0, -1.0] and np.isnan(result["per_seed"][2])


def test_verdict_needs_the_seed_t_interval_on_the_side_of_the_bootstrap_interval():
    """With 2+ seeds a call needs the Student t interval over the seed means to exclude 0 too; one seed alone
    (or a missing seed) leaves the bootstrap to decide. The examples-only interval (models held fixed) misses
    a seed that disagrees; the seed interval catches it."""
    interval = {"mean": 0.02, "low": 0.01, "high": 0.03}
    assert verdict_words({**interval, "per_seed": [0.05, -0.01]}, +1) == "within seed noise"
    assert verdict_words({**interval, "per_seed": [0.05, -0.01]}, -1) == "within seed noise"
    # two seeds of the same sign: t with 1 degree of freedom (12.7) still covers 0
    assert verdict_words({**interval, "per_seed": [0.05, 0.01, np.nan]}, +1) == "within seed noise"
    assert verdict_words({**interval, "per_seed": [0.021, 0.02, 0.019]}, +1) == "better"
    assert verdict_words({**interval, "per_seed": [0.021, 0.02, 0.019]}, -1) == "worse"
    assert verdict_words({**interval, "per_seed": [0.02]}, +1) == "better"
    assert seed_interval([0.02]) is None
    t = seed_interval([0.1, 0.2, 0.3])
    assert t["low"] == pytest.approx(0.2 - 4.302653 * 0.1 / np.sqrt(3), abs=1e-5)
    bootstrap = paired_bootstrap(np.array([[0.5, 0.6, 0.4], [-0.01, -0.02, 0.0]]), resamples=500)
    examples_only = {**bootstrap, "low": bootstrap["examples_low"], "high": bootstrap["examples_high"]}
    assert examples_only["low"] > 0 and verdict_words(examples_only, +1) == "within seed noise"
    assert bootstrap["low"] < 0 < bootstrap["high"] and verdict_words(bootstrap, +1) == "within noise"


def test_bootstrap_leaves_out_missing_pairs():
    result = paired_bootstrap(np.array([[1.0, np.nan], [1.0, 3.0]]), resamples=500)
    assert result["mean"] == pytest.approx(5.0 / 3.0) and result["pairs"] == 3
    assert np.isnan(paired_bootstrap(np.full((1, 3), np.nan))["mean"])


def test_verdict_words_read_the_interval_in_the_metric_direction():
    better_high = {"mean": 0.02, "low": 0.01, "high": 0.03}
    assert verdict_words(better_high, +1) == "better" and verdict_words(better_high, -1) == "worse"
    assert verdict_words({"mean": 0.01, "low": -0.01, "high": 0.03}, +1) == "within noise"
    assert verdict_words({"mean": 0.0002, "low": 0.0001, "high": 0.0003}, +1) == "negligible"
    assert method_verdict("better", "better", "sgt", "plain") == (
        "sgt beats plain and random-mask beyond the intervals"
    )
    assert "masking in general" in method_verdict("better", "within noise", "sgt", "plain")
    assert method_verdict("within noise", "worse", "sgt", "plain") == "sgt is worse than random-mask"
    assert method_verdict("within noise", None, "sgt", "plain") == "within noise"
    # one control (e.g. random-mask against plain): its outcome, seeds that disagree included
    assert (
        method_verdict("better", None, "random_mask", "plain")
        == "random_mask beats plain beyond the intervals"
    )
    assert method_verdict("within seed noise", None, "random_mask", "plain") == "within seed noise"


# ---- per-example metrics -----------------------------------------------------------------------------------


def ordering(p_full, p_comp_bins, p_suff_bins, p_empty, predicted=(0, 0)):
    n = len(p_full)
    return {
        "predicted": list(predicted),
        "p_full": list(p_full),
        "p_empty": list(p_empty),
        "p_comp": [b[0] for b in p_comp_bins],
        "p_suff": [b[0] for b in p_suff_bins],
        "p_comp_aopc": [list(b) for b in p_comp_bins],
        "p_suff_aopc": [list(b) for b in p_suff_bins],
        "tokens_to_flip": [1] * n,
        "auprc_visible": [0.5, None][:n],
        "token_f1_visible": [None, 0.25][:n],
    }


def test_per_example_metrics_by_hand():
    columns = ordering(
        p_full=[0.9, 0.8],
        p_comp_bins=[(0.6, 0.4), (0.8, 0.7)],
        p_suff_bins=[(0.9, 0.7), (0.5, 0.6)],
        p_empty=[0.5, 0.78],
        predicted=(1, 0),
    )
    m = per_example_metrics(columns, labels=[1, 1])
    assert m["correct"].tolist() == [1.0, 0.0]
    assert m["comprehensiveness"] == pytest.approx([0.3, 0.0])
    assert m["sufficiency"] == pytest.approx([0.0, 0.3])
    assert m["comprehensiveness_aopc"] == pytest.approx([0.4, 0.05])  # mean of (0.3, 0.5) and (0.0, 0.1)
    assert m["sufficiency_aopc"] == pytest.approx([0.1, 0.25])
    # empty-input drop 0.4 for the first example; 0.02 < MIN_EMPTY_DROP for the second: undefined
    assert m["comprehensiveness_aopc_vs_empty"][0] == pytest.approx(1.0)
    assert np.isnan(m["comprehensiveness_aopc_vs_empty"][1])
    assert m["sufficiency_aopc_vs_empty"][0] == pytest.approx(0.25)
    assert m["auprc_visible"][0] == 0.5 and np.isnan(m["auprc_visible"][1])


def test_naopc_uses_the_extremes_of_the_evaluated_orderings_and_random_is_averaged_over_draws():
    full = [0.9, 0.9]
    orderings = {
        # comp AOPC .4, .8
        "gradient": ordering(full, [(0.5, 0.5), (0.1, 0.1)], [(0.9, 0.9), (0.9, 0.9)], [0.1, 0.1]),
        "random": ordering(full, [(0.8, 0.8), (0.5, 0.5)], [(0.5, 0.5), (0.9, 0.9)], [0.1, 0.1]),  # .1, .4
        # .2, .6
        "random_draw1": ordering(full, [(0.7, 0.7), (0.3, 0.3)], [(0.7, 0.7), (0.9, 0.9)], [0.1, 0.1]),
    }
    methods = method_metrics(orderings, labels=[0, 0])
    assert set(methods) == {"gradient", "random"}
    assert methods["gradient"]["comprehensiveness_naopc"] == pytest.approx([1.0, 1.0])
    # random: mean of the draws' NAOPC, (0 + 1/3) / 2 and (0 + 0.5) / 2
    assert methods["random"]["comprehensiveness_naopc"] == pytest.approx([1 / 6, 0.25])
    assert methods["random"]["comprehensiveness_aopc"] == pytest.approx([0.15, 0.5])
    # sufficiency: the second example has the same AOPC for every ordering: no range, NaN
    assert np.isnan(methods["gradient"]["sufficiency_naopc"][1])
    assert min_max_normalise(np.array([0.3]), np.array([0.1]), np.array([0.5]))[0] == pytest.approx(0.5)


# ---- specs -------------------------------------------------------------------------------------------------


def test_spec_from_json_and_yaml_with_preset_overrides(tmp_path):
    raw = {"preset": "cpu", "name": "mine", "seeds": [4], "datasets": [{"name": "sst2", "epochs": 1}]}
    (tmp_path / "spec.json").write_text(json.dumps(raw))
    (tmp_path / "spec.yaml").write_text(
        "preset: cpu\nname: mine\nseeds: [4]\ndatasets:\n  - name: sst2\n    epochs: 1\n"
    )
    for name in ("spec.json", "spec.yaml"):
        spec = load_spec(tmp_path / name)
        sst2 = next(d for d in spec.datasets if d.name == "sst2")
        assert spec.name == "mine" and spec.seeds == (4,) and sst2.epochs == 1
        assert sst2.max_length == PRESETS["cpu"].datasets[0].max_length  # the rest comes from the preset
        assert [d.name for d in spec.datasets] == ["sst2", "movies"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"preset": "smoke", "datasets": [{"name": "synthetic", "trucation": "head"}]},
            "datasets[0].trucation",
        ),
        ({"preset": "smoke", "arms": {"plain": {"sgt_mask_fraction": 0.0}, "x": {"mask": 1}}}, "arms.x.mask"),
        ({"preset": "smoke", "methods": ["gradient", "lime"]}, "methods: 'lime'"),
        ({"preset": "nope"}, "preset: 'nope'"),
        ({"preset": "smoke", "datasets": [{"name": "synthetic", "gate": 2}]}, "gate"),
        ({"name": "x", "datasets": [{"name": "a", "source": "sst2"}]}, "datasets[0] (a).path"),
        ({"preset": "smoke", "colour": "red"}, "colour: unknown field"),
    ],
)
def test_bad_spec_names_the_field(tmp_path, raw, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="bad.yaml: invalid YAML"):
        load_spec(path)


def test_default_comparisons_pit_every_treatment_against_plain_and_random_mask():
    # then the control's own effect: random-mask against plain
    assert PRESETS["cpu"].compared_pairs() == [
        ("sgt", "plain"),
        ("sgt", "random_mask"),
        ("random_mask", "plain"),
    ]
    without_control = spec_from_dict(
        {"preset": "smoke", "arms": {"plain": {}, "sgt": {"sgt_mask_fraction": 0.5}}}
    )
    assert without_control.compared_pairs() == [("sgt", "plain")]
    ablation = PRESETS["ablation"].compared_pairs()
    assert ("sgt_signed_mean", "plain") in ablation and ("sgt_signed_mean", "sgt") in ablation
    assert {t for t, _ in ablation} == set(PRESETS["ablation"].arms) - {"plain", "random_mask"}
    assert all(control in ("plain", "random_mask", "sgt") for _, control in ablation)
    spec = spec_from_dict({"preset": "smoke", "comparisons": [["sgt", "plain"]]})
    assert spec.compared_pairs() == [("sgt", "plain")]


# ---- SST-2 -------------------------------------------------------------------------------------------------


def test_sst2_tsv_with_crlf_and_any_header_becomes_an_eraser_folder(tmp_path):
    from sgt_nlp.eraser import load_split

    src = tmp_path / "sst2"
    src.mkdir()
    train = "label\tsentence\r\n" + "".join(
        f"{i % 2}\tword{i} is {'good' if i % 2 else 'bad'}\r\n" for i in range(10)
    )
    (src / "train.tsv").write_bytes(train.encode())
    (src / "dev.tsv").write_text("label\tcontent\n0\tdull .\n1\tfine film .\n")
    (src / "test.tsv").write_text("label\tcontent\n1\tgreat .\n")
    assert read_sst2_tsv(src / "train.tsv")[3] == (1, ["word3", "is", "good"])
    out = write_sst2_as_eraser(src, tmp_path / "eraser", train_examples=4, seed=0)
    train_split = load_split(out, "train")
    assert len(train_split.annotations) == 4 and set(train_split.labels) <= {"NEG", "POS"}
    val = load_split(out, "val")
    assert [a.classification for a in val.annotations] == ["NEG", "POS"]
    assert val.documents[val.annotations[1].docids[0]].tokens == ("fine", "film", ".")
    (src / "test.tsv").write_text("label\tcontent\n2\tbad label\n")
    with pytest.raises(ValueError, match=r"test.tsv, line 2"):
        read_sst2_tsv(src / "test.tsv")


# ---- the runner on the smoke preset ------------------------------------------------------------------------


def smoke(**changes):
    spec = replace(PRESETS["smoke"], seeds=(0,), methods=("gradient_l2", "gradient", "random"), **changes)
    return spec


def test_a_resumed_training_is_timed_over_the_epochs_it_ran():
    """SST-2 SGT seed 1 resumed at step 250 of 750: its 2138 s of train_runtime are two epochs, not three."""
    assert epochs_timed(3, 250, 750) == pytest.approx(2.0)
    assert epochs_timed(3, 0, 750) == 3 and epochs_timed(3, 750, 750) == 0 and epochs_timed(3, 0, 0) == 0


def test_gate_marks_failed_runs_and_excludes_them(tmp_path):
    spec = smoke()
    spec = replace(spec, datasets=(replace(spec.datasets[0], gate=1.01),))
    experiment = Experiment(spec, tmp_path / "out", tmp_path / "work")
    result = experiment.run()
    data = result["datasets"]["synthetic"]
    assert data["seeds_failed_gate"] == [0] and data["comparisons"] == [] and data["seeds_evaluated"] == []
    assert experiment.trained_runs == ["synthetic/plain_seed0_lr0.001"]  # the other arms are not trained
    assert experiment.evaluated_runs == []
    plain = read_json(tmp_path / "out" / "synthetic" / "plain_seed0_lr0.001" / "train.json")
    assert plain["gate_passed"] is False
    assert "failed the convergence gate" in (tmp_path / "out" / "results.md").read_text()
    again = Experiment(spec, tmp_path / "out", tmp_path / "work")
    again.run()
    assert again.trained_runs == [] and again.evaluated_runs == []


def test_runner_end_to_end_resumes_and_aggregates_only_finished_runs(tmp_path):
    spec = smoke()
    out, work = tmp_path / "out", tmp_path / "work"
    experiment = Experiment(spec, out, work)
    result = experiment.run()
    assert sorted(experiment.evaluated_runs) == [
        f"synthetic/{a}_seed0_lr0.001" for a in ("plain", "random_mask", "sgt")
    ]
    data = result["datasets"]["synthetic"]
    assert data["seeds_evaluated"] == [0] and data["missing"] == []
    pairs = [(c["treatment"], c["control"]) for c in data["comparisons"]]
    assert pairs == [("sgt", "plain"), ("sgt", "random_mask"), ("random_mask", "plain")]
    # the control's own effect gets verdicts against plain alone (no "random-mask" in its phrases)
    control_verdicts = [v["verdict"] for v in data["verdicts"] if v["treatment"] == "random_mask"]
    assert control_verdicts and not any("random-mask" in v for v in control_verdicts)
    rows = data["comparisons"][0]["rows"]
    assert {r["method"] for r in rows} == {"gradient_l2", "gradient", "random"}
    assert {r["removal"] for r in rows} == {"delete", "random_token"}
    for row in rows:
        d = row["difference"]
        assert np.isnan(d["mean"]) or d["low"] <= d["mean"] <= d["high"]
    record = read_json(out / "synthetic" / "sgt_seed0_lr0.001" / "eval.json.gz")
    n_test = spec.datasets[0].synthetic["n_test"]
    assert len(record["examples"]["annotation_id"]) == n_test  # the full test split
    assert set(record["orderings"]["delete"]) == {"gradient", "random", "random_draw1", "gradient_l2"}
    train = read_json(out / "synthetic" / "sgt_seed0_lr0.001" / "train.json")
    assert train["sgt_settings"] == {"sgt_mask_fraction": 0.5} and train["seconds_per_epoch"] > 0
    assert train["epochs_timed"] == spec.datasets[0].epochs and train["resumed_from"] is None
    # one point per epoch; the final accuracy is the best epoch's (load_best_model_at_end)
    assert [p["epoch"] for p in train["val_curve"]] == [
        float(e + 1) for e in range(int(spec.datasets[0].epochs))
    ]
    assert train["val_accuracy"] == max(p["accuracy"] for p in train["val_curve"])
    assert not (work / "synthetic" / "sgt_seed0_lr0.001").exists()  # models deleted after evaluation
    assert (out / "results.png").is_file() and "### sgt − plain" in (out / "results.md").read_text()
    assert "### random_mask − plain" in (out / "results.md").read_text()
    # a second invocation trains and evaluates nothing and rebuilds the same table
    before = json.loads((out / "results.json").read_text())
    again = Experiment(spec, out, work)
    again.run()
    assert again.trained_runs == [] and again.evaluated_runs == []
    assert json.loads((out / "results.json").read_text()) == before
    # only_finished with a seed that never ran: nothing trained, the seed listed as missing
    more = Experiment(replace(spec, seeds=(0, 5)), out, work, only_finished=True)
    data = more.run()["datasets"]["synthetic"]
    assert more.trained_runs == [] and not (out / "synthetic" / "plain_seed5_lr0.001").exists()
    assert "plain_seed5" in data["missing"] and data["seeds_evaluated"] == [0]
    # a seed trained but not yet evaluated stays out of the row's columns and is listed on its own
    trained_only = read_json(out / "synthetic" / "plain_seed0_lr0.001" / "train.json")
    trained_only.update(seed=5, val_accuracy=0.25, seconds_per_epoch=999.0)
    (out / "synthetic" / "plain_seed5_lr0.001").mkdir()
    (out / "synthetic" / "plain_seed5_lr0.001" / "train.json").write_text(json.dumps(trained_only))
    pending = Experiment(replace(spec, seeds=(0, 5)), out, work, only_finished=True)
    plain = pending.run()["datasets"]["synthetic"]["arms"]["plain"]
    row = before["datasets"]["synthetic"]["arms"]["plain"]
    assert (
        plain["val_accuracy"] == row["val_accuracy"]
        and plain["seconds_per_epoch"] == row["seconds_per_epoch"]
    )
    assert plain["seeds_trained"] == [0, 5] and plain["seeds_evaluated"] == [0]
    assert plain["trained_not_evaluated"] == {"5": {"val_accuracy": 0.25, "seconds_per_epoch": 999.0}}
    assert (
        "Trained but not evaluated, so not in the rows above: plain seed 5 (val accuracy 0.250, 999 s/epoch)."
        in (out / "results.md").read_text()
    )


def test_arms_split_the_work_between_processes_and_the_table_keeps_every_arm(tmp_path):
    """``--arms``: a process trains and evaluates only its arms and reads the others' records; a seed waits
    for its baseline run (which decides the gate), and the results always cover every arm."""
    spec = smoke()
    out, work = tmp_path / "out", tmp_path / "work"
    with pytest.raises(SpecError, match=r"--arms: \['sgtt'\]"):
        Experiment(spec, out, work, arms=("sgtt",))
    waiting = Experiment(spec, out, work, arms=("sgt",))
    waiting.run()  # no plain run yet: nothing to do, and no learning rate is chosen by a non-baseline arm
    assert waiting.trained_runs == [] and not (out / "synthetic" / "lr_selection.json").exists()
    plain = Experiment(spec, out, work, arms=("plain",))
    plain.run()
    assert plain.trained_runs == plain.evaluated_runs == ["synthetic/plain_seed0_lr0.001"]
    others = Experiment(spec, out, work, arms=("sgt", "random_mask"))
    data = others.run()["datasets"]["synthetic"]
    assert (
        sorted(others.trained_runs)
        == sorted(others.evaluated_runs)
        == [
            "synthetic/random_mask_seed0_lr0.001",
            "synthetic/sgt_seed0_lr0.001",
        ]
    )
    assert data["missing"] == [] and [c["control"] for c in data["comparisons"]] == [
        "plain",
        "random_mask",
        "plain",
    ]
    assert read_json(out / "spec.json")["arms"] == {k: dict(v) for k, v in spec.arms.items()}


def test_later_seeds_keep_the_learning_rate_the_first_seed_chose(tmp_path):
    """``--seeds 1`` after seed 0 trains seed 1 at the recorded rate: it does not choose again on seed 1."""
    spec = smoke()
    spec = replace(spec, datasets=(replace(spec.datasets[0], learning_rates=(1e-3, 3e-3)),))
    out, work = tmp_path / "out", tmp_path / "work"
    first = Experiment(spec, out, work, arms=("plain",))
    first.run()
    assert sorted(first.trained_runs) == ["synthetic/plain_seed0_lr0.001", "synthetic/plain_seed0_lr0.003"]
    selection = (out / "synthetic" / "lr_selection.json").read_text()
    chosen = json.loads(selection)["chosen"]
    later = Experiment(replace(spec, seeds=(1,)), out, work, arms=("plain",))
    later.run()
    assert later.trained_runs == [f"synthetic/plain_seed1_lr{chosen:g}"]
    assert (out / "synthetic" / "lr_selection.json").read_text() == selection


# ---- spec files, the fp16 export, the gpu preset -----------------------------------------------------------


def test_spec_files_match_the_presets():

    specs = ROOT / "specs"
    for name, preset in PRESETS.items():
        assert load_spec(specs / f"{name}.json") == preset, (
            f"specs/{name}.json is stale: rewrite it with spec_to_dict"
        )
    assert load_spec(specs / "cpu_sst2_quick.yaml").datasets[0].learning_rates == (5e-5,)


def test_half_precision_export_halves_the_file_and_loads_in_fp32(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    from sgt_nlp.experiments import export_half_precision_model
    from tests import tiny

    tiny.tiny_model("bert", seed=0).save_pretrained(tmp_path / "src")
    tiny.wordpiece_tokenizer().save_pretrained(tmp_path / "src")
    half = export_half_precision_model(str(tmp_path / "src"), tmp_path / "half")
    full_size = (tmp_path / "src" / "model.safetensors").stat().st_size
    assert (half / "model.safetensors").stat().st_size < 0.6 * full_size
    model = AutoModelForSequenceClassification.from_pretrained(half, num_labels=2)
    assert next(model.parameters()).dtype == torch.float32


def test_gpu_preset_runs_with_a_smoke_sized_override(tmp_path):
    """The gpu preset's settings (methods, bf16 request, batch sizes) on a tiny synthetic task; on a CPU the
    bf16 request is ignored, the rest is the code path the H200 runs."""
    gpu = PRESETS["gpu"]
    assert gpu.mixed_precision == "bf16" and gpu.datasets[0].max_length == 512
    assert gpu.datasets[0].test_examples is None
    tiny_task = replace(PRESETS["smoke"].datasets[0], max_length=48)
    spec = replace(
        gpu,
        datasets=(tiny_task,),
        model="tiny",
        seeds=(0,),
        random_draws=2,
        ig_steps=2,
        smoothgrad_samples=2,
        bootstrap_resamples=100,
        tiny_model={"hidden_size": 32, "layers": 1},
    )
    experiment = Experiment(spec, tmp_path / "out", tmp_path / "work")
    data = experiment.run()["datasets"]["synthetic"]
    assert data["seeds_evaluated"] == [0] and len(experiment.evaluated_runs) == 3
    assert {r["method"] for r in data["comparisons"][0]["rows"]} == set(gpu.methods)
    train = read_json(tmp_path / "out" / "synthetic" / "sgt_seed0_lr0.001" / "train.json")
    assert train["device"] in ("cpu", "cuda")


def test_head_tail_truncation_reaches_training_and_evaluation(tmp_path):
    """The movies presets cut head+tail: the setting goes to DataArguments and EvaluationConfig alike."""
    task = replace(PRESETS["smoke"].datasets[0], max_length=24, truncation="head_tail")
    spec = smoke(
        datasets=(task,), arms={"plain": {"sgt_mask_fraction": 0.0}, "sgt": {"sgt_mask_fraction": 0.5}}
    )
    experiment = Experiment(spec, tmp_path / "out", tmp_path / "work", keep_models=True)
    experiment.run()
    run_dir = tmp_path / "work" / "synthetic" / "sgt_seed0_lr0.001" / "eval" / "main"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["config"]["truncation"] == "head_tail" and run["config"]["max_length"] == 24
    record = read_json(tmp_path / "out" / "synthetic" / "sgt_seed0_lr0.001" / "eval.json.gz")
    assert min(record["examples"]["words_kept"]) < 12  # documents of 12-24 words were cut to the seen words


def test_tiny_model_and_vocabulary_are_the_same_in_every_session(tmp_path):
    """The WordPiece trainer orders tied tokens differently per run; the runner sorts them, so a later session
    (whose work_dir is gone) rebuilds the identical starting model."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from sgt_nlp.experiments import prepare_data, tiny_initial_model

    spec = PRESETS["smoke"]
    data = prepare_data(spec.datasets[0], tmp_path, tmp_path / "work")
    first = tiny_initial_model(spec, data, ["NEG", "POS"], 0, tmp_path / "a")
    second = tiny_initial_model(spec, data, ["NEG", "POS"], 0, tmp_path / "b")
    assert (first / "vocab.txt").read_text() == (second / "vocab.txt").read_text()
    a, b = (AutoModelForSequenceClassification.from_pretrained(f) for f in (first, second))
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    assert all(torch.equal(x, y) for x, y in pairs)


# ---- the command line and the rendered tables --------------------------------------------------------------


def test_command_line_cuts_the_spec_to_seeds_and_names_unknown_datasets(tmp_path, capsys):
    from sgt_nlp.experiments import ExperimentArguments, make_parser
    from sgt_nlp.experiments.cli import main, selected_spec

    spec = selected_spec(ExperimentArguments(preset="cpu", datasets="movies", seeds="2,0"))
    # --datasets does not cut the spec: the runner runs those and reads the others into the table
    assert [d.name for d in spec.datasets] == ["sst2", "movies"] and spec.seeds == (2, 0)
    assert spec.arms == PRESETS["cpu"].arms
    with pytest.raises(SystemExit):
        main(["--preset", "cpu", "--datasets", "sst2,sst3", "--output_dir", str(tmp_path)])
    assert "--datasets: ['sst3'] not in the spec's datasets" in capsys.readouterr().err
    assert not (tmp_path / "spec.json").exists()
    (args,) = make_parser().parse_args_into_dataclasses(
        args=["--preset", "smoke", "--only_finished", "--export_model", "minilm", "out"]
    )
    assert args.only_finished is True and args.export_model == ["minilm", "out"] and args.keep_models is False


def test_result_tables_read_titles_and_directions_from_the_rows():
    from sgt_nlp.report.experiment import markdown, metric_titles

    interval = {"mean": -0.02, "low": -0.03, "high": -0.01, "pairs": 4, "examples": 2}
    row = {
        "removal": "delete",
        "method": "gradient_l2",
        "metric": "sufficiency_aopc",
        "title": "suff AOPC",
        "direction": -1,
        "treatment_mean": 0.1,
        "control_mean": 0.12,
        "difference": interval,
        "outcome": "better",
    }
    comparison = {"treatment": "sgt", "control": "plain", "seeds": [0], "accuracy": interval, "rows": [row]}
    data = {
        "settings": {"gate": 0.5},
        "learning_rate": 1e-3,
        "seeds": [3],
        "seeds_failed_gate": [],
        "seeds_evaluated": [3],
        "missing": [],
        "comparisons": [comparison],
        "arms": {
            "plain": {
                "val_accuracy": [0.9, 0.0],
                "test_accuracy": None,
                "seconds_per_epoch": None,
                "seeds_evaluated": [3],
            }
        },
        "verdicts": [
            {
                "treatment": "sgt",
                "removal": "delete",
                "method": "gradient_l2",
                "metric": "sufficiency_aopc",
                "verdict": "within noise",
            }
        ],
    }
    assert metric_titles(data) == {"sufficiency_aopc": ("suff AOPC", -1)}
    text = markdown({"spec": "mine", "datasets": {"d": data}}, "the scheme")
    assert text.startswith("# Experiment `mine`\n\nthe scheme\n")
    assert "Learning rate 0.001 (chosen on plain validation, seed 3)" in text
    assert "| method | suff AOPC ↓ (delete) |" in text
    assert "| Gradient (l2, the trained score) | within noise |" in text
    row["mde"] = 0.014
    text = markdown({"spec": "mine", "datasets": {"d": data}}, "the scheme")
    # seed t and per seed: - with one seed; the minimum detectable effect
    assert "| suff AOPC ↓ | 0.120 | 0.100 | -0.020 [-0.030, -0.010] | - | - | 0.014 | better |" in text
    interval["per_seed"] = [-0.03, float("nan")]
    row["seed_interval"] = {"low": -0.05, "high": 0.01}
    two_seeds = markdown({"spec": "mine", "datasets": {"d": data}})
    assert "| -0.020 [-0.030, -0.010] | [-0.050, +0.010] | -0.030, - | 0.014 | better |" in two_seeds
    assert "| plain | 0.900 ± 0.000 | - | - | [3] |" in text
    assert "different seeds" not in text
    # a second comparison of the same treatment over other seeds is flagged above the verdicts
    data["comparisons"].append({**comparison, "control": "random_mask", "seeds": [3, 4]})
    flagged = markdown({"spec": "mine", "datasets": {"d": data}})
    assert (
        "**The verdicts below join comparisons over different seeds: sgt − plain on seeds [0], "
        "sgt − random_mask on seeds [3, 4].**\n\n### Verdicts: sgt" in flagged
    )


def test_headline_table_shows_the_three_measures_and_the_labelled_naopc_per_comparison():
    from sgt_nlp.report.experiment import headline_table

    titles = {
        "comprehensiveness_aopc": "comp AOPC",
        "comprehensiveness_aopc_minus_random": "comp AOPC − Random",
        "comprehensiveness_naopc": "comp NAOPC (evaluated bounds)",
        "sufficiency_aopc": "suff AOPC",
    }

    def row(removal, metric, mean, outcome, method="gradient"):
        interval = {"mean": mean, "low": mean - 0.01, "high": mean + 0.01}
        return {
            "removal": removal,
            "method": method,
            "metric": metric,
            "title": titles[metric],
            "direction": -1 if metric.startswith("suff") else 1,
            "difference": interval,
            "outcome": outcome,
        }

    comparisons = [
        {
            "treatment": "sgt",
            "control": "plain",
            "rows": [
                row("delete", "comprehensiveness_aopc", 0.2, "better"),
                row("delete", "comprehensiveness_aopc_minus_random", 0.1, "better"),
                row("delete", "comprehensiveness_naopc", -0.05, "worse"),
                row("delete", "sufficiency_aopc", -0.1, "better"),
                row("delete", "comprehensiveness_aopc", 0.0, "within noise", method="random"),
            ],
        },
        {
            "treatment": "sgt",
            "control": "random_mask",
            "rows": [row("delete", "comprehensiveness_aopc", -0.03, "worse")],
        },
    ]
    lines = headline_table(comparisons)
    assert (
        lines[0]
        == "### Headline: sgt − plain, comprehensiveness, removal `delete` (difference [95 % CI], outcome)"
    )
    # NAOPC with all-order bounds not in the records: its column is named by its key and shows -
    assert lines[2] == (
        "| method | comp AOPC ↑ | comp AOPC − Random ↑ | comprehensiveness_naopc_bounds | "
        "comp NAOPC (evaluated bounds) ↑ |"
    )
    assert lines[4] == (
        "| Gradient × input | +0.200 [+0.190, +0.210] better | +0.100 [+0.090, +0.110] better | - | "
        "-0.050 [-0.060, -0.040] worse |"
    )
    assert lines[5] == "| Random | +0.000 [-0.010, +0.010] within noise | - | - | - |"
    assert "### Headline: sgt − plain, sufficiency, removal `delete` (difference [95 % CI], outcome)" in lines
    assert any(line.startswith("### Headline: sgt − random_mask, comprehensiveness") for line in lines)
