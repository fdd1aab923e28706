"""The demo: the experiment runner on its 'demo' preset, with one verdict sentence per method."""

from __future__ import annotations

import json

from sgt_nlp.demo import demo_spec, main, method_sentences, parse_settings
from tests import tiny
from tests.toy_data import write_eraser


def interval(mean, low, high):
    return {"mean": mean, "low": low, "high": high, "pairs": 10, "examples": 10}


def row(method, metric, mean, low, high, outcome):
    return {
        "removal": "delete",
        "method": method,
        "metric": metric,
        "difference": interval(mean, low, high),
        "outcome": outcome,
    }


def test_one_word_per_method_from_three_measures_and_the_numbers_beside_it():
    measures = (
        "comprehensiveness_aopc",
        "comprehensiveness_aopc_minus_random",
        "comprehensiveness_naopc_bounds",
    )

    def three(method, outcomes, mean=0.05):
        return [
            row(method, m, mean, mean - 0.03, mean + 0.03, o) for m, o in zip(measures, outcomes, strict=True)
        ]

    vs_plain = {
        "treatment": "sgt",
        "control": "plain",
        "seeds": [0, 1],
        "accuracy": interval(-0.01, -0.03, 0.01),
        "rows": [
            *three("gradient", ["better"] * 3),
            row(
                "gradient", "comprehensiveness_naopc", -0.394, -0.5, -0.3, "worse"
            ),  # labelled, never decides
            row("gradient", "auprc_visible", 0.01, -0.01, 0.03, "within noise"),
            *three("integrated_gradients", ["worse", "worse", "better"], mean=-0.04),
            *three("smoothgrad", ["worse", "worse", "worse"], mean=-0.04),
            row("random", "comprehensiveness_aopc", 0.010, -0.002, 0.020, "within noise"),
            row("random", "comprehensiveness_naopc_bounds", 0.010, -0.002, 0.020, "within noise"),
            row("occlusion", "comprehensiveness_aopc", 0.05, 0.02, 0.08, "better"),  # bounds not searched
        ],
    }
    vs_random = {**vs_plain, "control": "random_mask", "rows": three("gradient", ["within noise"] * 3)}
    result = {"datasets": {"synthetic": {"comparisons": [vs_plain, vs_random]}}}
    spec = demo_spec(parse_settings([]))
    sentences = method_sentences(result, spec)
    assert sentences[0].startswith("Accuracy: SGT -0.010 [-0.030, +0.010] vs plain (test, 2 seed(s))")
    gradient, ig, smoothgrad, random, occlusion = sentences[1:]
    assert gradient == (
        "Gradient × input: SGT helped (vs plain: AOPC +0.050 [+0.020, +0.080], AOPC − Random +0.050 "
        "[+0.020, +0.080], NAOPC (all-order bounds) +0.050 [+0.020, +0.080], NAOPC (evaluated bounds, not "
        "deciding) -0.394 [-0.500, -0.300], AUPRC vs the rationale +0.010 [-0.010, +0.030]; vs random-mask: "
        "within noise)."
    )
    assert ig.startswith("Integrated Gradients: SGT depends on normalisation (vs plain: AOPC -0.040")
    assert smoothgrad.startswith("SmoothGrad: SGT hurt (")
    assert random.startswith("Random: SGT within noise (vs plain: AOPC +0.010 [-0.002, +0.020]")
    assert occlusion.startswith("Occlusion: SGT helped (NAOPC with all-order bounds not measured) (")
    for sentence in sentences[1:]:  # one word per method: never both
        assert not ("helped" in sentence and "hurt" in sentence)


def test_command_line_changes_the_demo_preset():
    spec = demo_spec(parse_settings(["--seeds", "0,1", "--no_random_mask", "--removal", "random_token"]))
    assert spec.seeds == (0, 1) and list(spec.arms) == ["plain", "sgt"] and spec.removals == ("random_token",)
    default = demo_spec(parse_settings([]))
    assert default.arms["random_mask"]["sgt_mask_selection"] == "random" and default.model == "tiny"
    assert default.datasets[0].test_examples is None  # the full test split
    assert default.naopc_bounds == "evaluated"  # the bound search is opt-in: 4-5x the quick demo's time
    searched = demo_spec(parse_settings(["--naopc_bounds", "beam"]))
    assert (searched.naopc_bounds, searched.bounds_beam_width) == ("beam", 1)
    quick = demo_spec(parse_settings(["--quick"]))
    assert quick.datasets[0].synthetic["n_train"] < default.datasets[0].synthetic["n_train"]


def test_demo_on_given_data_and_model(tmp_path, capsys):
    """The --data_dir/--model path (used with eraser_movies and MiniLM) on a tiny folder and model."""
    data = write_eraser(tmp_path / "eraser")
    (data / "test.jsonl").write_text((data / "val.jsonl").read_text())
    model_dir = tmp_path / "model"
    model = tiny.tiny_model("bert", seed=0)
    model.config.id2label, model.config.label2id = {0: "NEG", 1: "POS"}, {"NEG": 0, "POS": 1}
    model.save_pretrained(model_dir)
    tiny.wordpiece_tokenizer().save_pretrained(model_dir)
    out = tmp_path / "demo"
    main(["--quick", "--data_dir", str(data), "--model", str(model_dir), "--output_dir", str(out)])
    printed = capsys.readouterr().out
    assert "| random_mask |" in printed and "Verdict:" in printed and "report:" in printed
    html = (out / "report.html").read_text()
    assert 'id="verdict"' in html and html.index('id="verdict"') < html.index('id="metrics"')
    verdict = (out / "verdict.md").read_text()
    assert "Integrated Gradients: SGT " in verdict and "vs random-mask" in verdict
    assert (out / "seed0" / "model_sgt" / "config.json").is_file()  # the links the README's commands use
    assert (out / "seed0" / "eval_random_mask" / "summary.json").is_file()
    result = json.loads((out / "results.json").read_text())
    assert set(result["datasets"]["eraser"]["arms"]) == {"plain", "sgt", "random_mask"}


def test_demo_never_wipes_another_experiments_records(tmp_path):
    import pytest

    from sgt_nlp.demo import run_demo
    from sgt_nlp.experiments import SpecError

    out = tmp_path / "records"
    out.mkdir()
    (out / "spec.json").write_text(json.dumps({"name": "cpu", "model": "minilm", "arms": {}, "datasets": []}))
    (out / "precious.txt").write_text("keep")
    with pytest.raises(SpecError, match="other settings"):
        run_demo(demo_spec(parse_settings(["--quick"])), out)
    assert (out / "precious.txt").read_text() == "keep"


def test_demo_options_default_to_the_demo_preset_and_the_training_arguments():
    from dataclasses import fields

    from sgt_nlp.config import SaliencyGuidedTrainingArguments
    from sgt_nlp.demo import DemoSettings

    owner = {f.name: f for f in fields(SaliencyGuidedTrainingArguments)}
    for option in (f for f in fields(DemoSettings) if f.name.startswith("sgt_")):
        assert option.default == owner[option.name].default
        assert option.metadata["help"] == owner[option.name].metadata["help"]
    settings = parse_settings([])
    assert (settings.n_train, settings.n_test, settings.templates) == (1600, 200, "lexical")
    training = (settings.epochs, settings.learning_rate, settings.batch_size, settings.max_length)
    assert training == (4, 1e-3, 32, 128)
    assert (settings.sgt_mask_fraction, settings.sgt_kl_weight, settings.removal) == (0.5, 1.0, "delete")
    assert demo_spec(DemoSettings()) == demo_spec(settings)
    assert parse_settings(["--sgt_mask_strategy", "zero", "--quick"]).sgt_mask_strategy == "zero"


def test_demo_verdict_metrics_are_registered_verdict_metrics_of_the_runner():
    from sgt_nlp.demo import VERDICT_METRICS
    from sgt_nlp.experiments import VERDICT_METRICS as RUNNER_VERDICT_METRICS
    from sgt_nlp.metrics.registry import direction

    keys = [key for key, _ in VERDICT_METRICS]
    assert keys == [
        "comprehensiveness_aopc",
        "comprehensiveness_aopc_minus_random",
        "comprehensiveness_naopc_bounds",
        "comprehensiveness_naopc",
        "auprc_visible",
    ]
    assert set(keys) <= set(RUNNER_VERDICT_METRICS) and all(direction(key) == +1 for key in keys)


def test_bottom_line_reads_the_verdict_sentences():
    """The bottom line says, per method, the one word method_sentences gives it against plain (Random, the
    floor, left out; the word against random-mask never leaks in), and quotes the accuracy difference in
    points with its interval."""
    from sgt_nlp.demo_text import bottom_line, method_outcome

    def measures(method, outcomes):
        names = (
            "comprehensiveness_aopc",
            "comprehensiveness_aopc_minus_random",
            "comprehensiveness_naopc_bounds",
        )
        return [row(method, m, 0.05, 0.02, 0.08, o) for m, o in zip(names, outcomes, strict=True)]

    better, worse, noise = ("better",) * 3, ("worse",) * 3, ("within noise",) * 3
    vs_plain = {
        "treatment": "sgt",
        "control": "plain",
        "seeds": [0],
        "accuracy": interval(-0.005, -0.02, 0.01),
        "rows": [
            *measures("gradient_l2", better),
            *measures("gradient", ("better", "within noise", "better")),
            *measures("integrated_gradients", noise),
            *measures("smoothgrad", worse),
            *measures("random", better),
        ],
    }
    vs_random = {**vs_plain, "control": "random_mask", "rows": measures("integrated_gradients", better)}
    result = {"datasets": {"synthetic": {"comparisons": [vs_plain, vs_random]}}}
    sentences = method_sentences(result, demo_spec(parse_settings([])))
    line = bottom_line(result, sentences)
    assert "for Gradient (l2, the trained score), more faithful on every measure, beyond noise" in line
    assert "Gradient × input, the measures disagree: the answer depends on how AOPC is normalised" in line
    assert "for Integrated Gradients, no difference beyond noise" in line
    assert "SmoothGrad, less faithful on every measure, beyond noise" in line
    assert "for Random" not in line and "Random," not in line
    assert "Test accuracy: SGT minus plain -0.5 points (95 % interval -2.0 to +1.0)" in line
    assert method_outcome("SGT depends on normalisation (vs plain: ...)") == "depends on normalisation"
    assert method_outcome("SGT helped (NAOPC with all-order bounds not measured) (vs plain: ...)") == "helped"
    assert method_outcome("SGT within noise (vs plain: ...; vs random-mask: helped)") == "noise"
