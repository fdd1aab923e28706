"""``--bf16``: support detection, the autocast context, numbers within tolerance of fp32, the default left
bit-identical, the precision written into every record, and the runner refusing to compare precisions."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from sgt_nlp import precision
from sgt_nlp.evaluation import EvaluationConfig, evaluate_folder, evaluate_rationales
from sgt_nlp.evaluation import evaluator as evaluator_module
from sgt_nlp.evaluation.checkpoint import fingerprint
from sgt_nlp.experiments.records import check_precisions
from sgt_nlp.explainers import get_explainer
from sgt_nlp.loading import load_classifier
from sgt_nlp.validation import UsageError
from tests import tiny

#: bf16 keeps 8 bits of mantissa (relative rounding 2^-9); through the tiny model's two layers the scores move
#: by about 1 % of their scale. Tolerances: every score within 5 % of the largest, Spearman at least 0.95.
SCORE_TOLERANCE = 0.05
MIN_SPEARMAN = 0.95
METHODS = {
    "gradient": {"aggregation": "grad_x_input"},
    "integrated_gradients": {"n_steps": 8},
    "smoothgrad": {"n_samples": 4, "aggregation": "grad_x_input"},
    "occlusion": {},
}


@pytest.fixture
def bf16_native(monkeypatch):
    """Autocast works on any CPU (emulated where not native); the checks are told this one is native, so that
    the record tests run everywhere."""
    monkeypatch.setattr(precision, "cpu_bf16_supported", lambda: True)


@pytest.fixture
def no_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_supported", lambda: False)


def test_detector_and_the_names_written_into_records(no_bf16):
    assert precision.precision_name(True) == "bf16" and precision.precision_name(False) == "fp32"
    assert not precision.bf16_supported("cpu")
    with pytest.raises(
        UsageError, match=r"--bf16: this CPU has neither AVX512-BF16 nor AMX.*leave --bf16 out"
    ):
        precision.check_bf16("cpu")


def test_the_real_detector_answers_a_bool_and_training_names_its_precision():
    from sgt_nlp.config import SaliencyGuidedTrainingArguments as Args
    from sgt_nlp.finetune import training_precision

    assert isinstance(precision.cpu_bf16_supported(), bool)
    assert training_precision(Args(output_dir="x", use_cpu=True)) == "fp32"
    assert training_precision(Args(output_dir="x", use_cpu=True, bf16=True)) == "bf16"


def test_autocast_is_nothing_when_off_and_bf16_matmuls_when_on():
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with precision.autocast(layer, False):
        assert not torch.is_autocast_enabled("cpu")
        assert layer(x).dtype == torch.float32
    with precision.autocast(layer, True):
        assert layer(x).dtype == torch.bfloat16
        with precision.full_precision(layer):
            assert layer(x).dtype == torch.float32


def _family_model_and_batch(family: str):
    if family in tiny.FAMILIES:
        model, batch = tiny.tiny_model(family, seed=1), tiny.encode(family)
    else:
        model, batch = tiny.tiny_family_model(family, seed=1), tiny.encode_family(family)
    return model.eval(), {k: v for k, v in batch.items() if k != "labels"}


@pytest.mark.parametrize("family", ["bert", "distilbert", "deberta-v2", "gpt2", "llama", "modernbert"])
def test_cpu_bf16_runs_sdpa_attention_in_float32_and_restores_the_implementation(family, monkeypatch):
    """On a CPU, ``autocast(model, True)`` swaps the sdpa attention for ``sgt_nlp_sdpa_fp32`` (float32
    query/key/value, autocast off inside); in fp32 that function is sdpa bit for bit; eager attention
    (DeBERTa-v2's own) is left alone; the configs name their implementation again after the block."""
    from transformers.integrations import sdpa_attention

    model, batch = _family_model_and_batch(family)
    before = {id(c): c._attn_implementation for c in precision.model_configs(model)}
    uses_sdpa = "sdpa" in before.values()
    reference = model(**batch).logits.detach()
    with precision.fp32_attention(model):
        assert model(**batch).logits.equal(reference)  # fp32 in, the same sdpa call: bit for bit
    seen: list[torch.dtype] = []
    real = sdpa_attention.sdpa_attention_forward

    def spy(module, query, *args, **kwargs):
        seen.append(query.dtype)
        assert not torch.is_autocast_enabled("cpu")
        return real(module, query, *args, **kwargs)

    monkeypatch.setattr(sdpa_attention, "sdpa_attention_forward", spy)
    with precision.autocast(model, True):
        logits = model(**batch).logits.float()
        if uses_sdpa:
            assert {c._attn_implementation for c in precision.model_configs(model)} >= {
                precision.FP32_ATTENTION
            }
    assert seen == ([torch.float32] * len(seen)) and (len(seen) > 0) == uses_sdpa
    assert torch.allclose(logits, reference, atol=0.02 * float(reference.abs().max()) + 1e-3)
    assert {id(c): c._attn_implementation for c in precision.model_configs(model)} == before
    with pytest.raises(RuntimeError, match="boom"), precision.autocast(model, True):
        raise RuntimeError("boom")
    assert {id(c): c._attn_implementation for c in precision.model_configs(model)} == before


def test_fp32_attention_leaves_a_model_inside_conservative_rules_to_them():
    """Conservative propagation names its own attention inside its block, within a bf16 pass too; both
    blocks restore sdpa on exit."""
    from sgt_nlp.conservative import ATTENTION_NAME, conservative_rules

    model, batch = _family_model_and_batch("bert")
    with precision.autocast(model, True):
        assert model.config._attn_implementation == precision.FP32_ATTENTION
        with conservative_rules(model):
            assert model.config._attn_implementation == ATTENTION_NAME
            model(**batch)
        assert model.config._attn_implementation == precision.FP32_ATTENTION
    assert model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("method", list(METHODS))
def test_bf16_scores_equal_fp32_within_tolerance_and_accumulate_in_float32(method):
    model = tiny.tiny_model("bert", seed=3).eval()
    batch = {k: v for k, v in tiny.encode("bert").items() if k != "labels"}
    explainer = get_explainer(method, model, tokenizer=tiny.wordpiece_tokenizer(), **METHODS[method])
    fp32 = explainer.attribute(batch)
    with precision.autocast(model, True):
        bf16 = explainer.attribute(batch, target=fp32.target)
    assert bf16.scores.dtype == torch.float32  # the accumulations (IG's path sum, SmoothGrad's mean, ...)
    for value in bf16.extras.values():
        assert value.dtype == torch.float32
    difference = (bf16.scores - fp32.scores).abs().max()
    if method == "occlusion":
        # occlusion scores are differences of two logits, each rounded in bf16 relative to the logit's size:
        # on this random tiny model the effects (about 1e-5) lie below that, so only the bound holds
        assert difference <= 0.01 * fp32.logits.abs().max()
        return
    assert difference <= SCORE_TOLERANCE * fp32.scores.abs().max()
    for a, b in zip(fp32.per_example(), bf16.per_example(), strict=True):
        if len(a) >= 3:
            assert spearmanr(a.numpy(), b.numpy()).statistic >= MIN_SPEARMAN
    assert torch.allclose(bf16.logits.float(), fp32.logits, atol=0.02 * float(fp32.logits.abs().max()))


def test_default_evaluation_is_bit_identical_with_and_without_the_precision_code_path(
    monkeypatch, model_dir, data_dir
):
    model, tokenizer, _ = load_classifier(str(model_dir), "cpu")
    config = EvaluationConfig(split="val", methods=("gradient", "integrated_gradients"), ig_steps=4)
    with_path = evaluate_rationales(model, tokenizer, data_dir, config)
    monkeypatch.setattr(evaluator_module, "autocast", lambda model, bf16: contextlib.nullcontext())
    without_path = evaluate_rationales(model, tokenizer, data_dir, config)
    assert with_path is not None and without_path is not None
    for a, b in zip(with_path.outputs, without_path.outputs, strict=True):
        for method in config.methods:
            ra, rb = a.result("delete", method), b.result("delete", method)
            assert np.array_equal(ra.word_scores, rb.word_scores) and np.array_equal(ra.probs, rb.probs)
            assert all(np.array_equal(ra.thresholded[t][0], rb.thresholded[t][0]) for t in ra.thresholded)


def test_fp32_checkpoints_keep_their_fingerprint_and_bf16_ones_differ(model_dir):
    model, _, _ = load_classifier(str(model_dir), "cpu")
    fp32 = fingerprint(EvaluationConfig(), model, ["a"], [[0]], 0.2)
    assert "bf16" not in fp32["settings"]  # a checkpoint written before --bf16 existed still resumes
    assert fingerprint(EvaluationConfig(bf16=True), model, ["a"], [[0]], 0.2) != fp32


def test_bf16_evaluation_writes_its_precision_into_run_json_and_scores_json(
    bf16_native, tmp_path, model_dir, data_dir
):
    settings = dict(model=str(model_dir), data_dir=str(data_dir), split="val", methods=("gradient",))
    rows = {}
    for bf16 in (False, True):
        out = tmp_path / str(bf16)
        rows[bf16] = evaluate_folder(EvaluationConfig(output_dir=str(out), bf16=bf16, **settings))
        run = json.loads((out / "run.json").read_text())
        scores = json.loads((out / "gradient" / "scores.json").read_text())
        name = "bf16" if bf16 else "fp32"
        assert run["precision"] == name and run["config"]["bf16"] is bf16
        assert scores["evaluation_settings"]["precision"] == name
    # the same model in both precisions: AOPC within noise of each other on these 4 sentences
    for a, b in zip(rows[False], rows[True], strict=True):
        for key, value in a.items():
            if key.endswith("aopc") and isinstance(value, float):
                assert abs(value - b[key]) < 0.02, key


def test_bf16_refused_with_a_clear_error_where_the_cpu_lacks_it(no_bf16, tmp_path, model_dir, data_dir):
    config = EvaluationConfig(
        model=str(model_dir), data_dir=str(data_dir), output_dir=str(tmp_path / "e"), split="val", bf16=True
    )
    with pytest.raises(UsageError, match="--bf16"):
        evaluate_folder(config)
    assert not (tmp_path / "e").exists()
    from sgt_nlp.cli import main as cli_main

    argv = ["evaluate", "--model", str(model_dir), "--data_dir", str(data_dir), "--output_dir"]
    assert cli_main([*argv, str(tmp_path / "c"), "--split", "val", "--bf16"]) == 2


def test_training_with_bf16_records_it_in_the_model_card_and_is_refused_without_support(
    monkeypatch, tmp_path, model_dir, data_dir
):
    from sgt_nlp.finetune import main

    argv = [
        "--model_name_or_path",
        str(model_dir),
        "--data_dir",
        str(data_dir),
        "--output_dir",
        str(tmp_path / "out"),
        "--num_train_epochs",
        "1",
        "--per_device_train_batch_size",
        "4",
        "--report_to",
        "none",
        "--use_cpu",
        "--save_strategy",
        "no",
        "--max_length",
        "32",
        "--disable_tqdm",
        "true",
        "--bf16",
    ]
    monkeypatch.setattr(precision, "cpu_bf16_supported", lambda: False)
    with pytest.raises(UsageError, match="--bf16"):
        main(argv)
    monkeypatch.setattr(precision, "cpu_bf16_supported", lambda: True)
    main(argv)
    assert "| `precision` | `bf16` |" in (tmp_path / "out" / "README.md").read_text()


def test_sanity_and_explain_take_bf16_and_record_it(bf16_native, tmp_path, model_dir):
    from sgt_nlp import sanity
    from sgt_nlp.explain import explain_texts

    model, tokenizer, _ = load_classifier(str(model_dir), "cpu")
    batch = {k: v for k, v in tiny.encode("bert").items() if k != "labels"}
    specs = sanity.parse_methods("gradient:grad_x_input")
    config = sanity.SanityConfig(specs, independent=False, cascading=False, precision_examples=4, bf16=True)
    result = sanity.run_sanity_checks(model, tokenizer, [batch], config, progress=False).to_dict()
    assert result["settings"]["precision"] == "bf16"
    # the float64 reference against the bf16 maps: close, but rounding shows
    assert result["methods"][0]["precision"]["spearman"] > 0.9
    texts = ["the movie was good and i loved it"]
    fp32 = explain_texts(str(model_dir), texts)
    bf16 = explain_texts(str(model_dir), texts, bf16=True)
    assert fp32[0]["prediction"] == bf16[0]["prediction"]
    assert np.allclose(
        fp32[0]["scores"], bf16[0]["scores"], atol=SCORE_TOLERANCE * max(map(abs, fp32[0]["scores"]))
    )


def test_the_runner_refuses_to_compare_records_of_different_precision():
    def run(arm, train, evaluation):
        return {
            "run": f"{arm}_seed0_lr5e-05",
            "training": {"precision": train} if train else {},
            "evaluation": {"precision": evaluation} if evaluation else None,
        }

    check_precisions({"sst2": [run("plain", "bf16", "bf16"), run("sgt", "bf16", "bf16")]})
    check_precisions({"sst2": [run("plain", None, None), run("sgt", "fp32", "fp32")]})  # old records: fp32
    with pytest.raises(ValueError, match=r"sst2: training records of different precision \(bf16: sgt.*fp32"):
        check_precisions({"sst2": [run("plain", None, None), run("sgt", "bf16", "fp32")]})
    with pytest.raises(ValueError, match="evaluation records of different precision"):
        check_precisions({"sst2": [run("plain", "fp32", "bf16"), run("sgt", "fp32", "fp32")]})


def test_the_spec_mixed_precision_reaches_training_and_every_evaluation_call(tmp_path):
    from dataclasses import replace

    from sgt_nlp.experiments.spec import PRESETS
    from sgt_nlp.experiments.stages import evaluation_calls

    spec = PRESETS["smoke"]
    dataset = spec.datasets[0]
    for mixed, expected in (("no", False), ("bf16", True)):
        calls = evaluation_calls(
            replace(spec, mixed_precision=mixed), dataset, tmp_path, tmp_path, tmp_path, "x"
        )
        assert calls and all(config.bf16 is expected for _, config in calls)


def test_one_option_name_in_every_command():
    from sgt_nlp.demo import DemoSettings, demo_spec
    from sgt_nlp.evaluation import config_from_args
    from sgt_nlp.explain import make_parser as explain_parser
    from sgt_nlp.finetune import parse_args
    from sgt_nlp.sanity.cli import make_parser as sanity_parser

    assert demo_spec(DemoSettings()).mixed_precision == "no"
    assert demo_spec(DemoSettings(bf16=True)).mixed_precision == "bf16"
    assert config_from_args(["--model", "m", "--data_dir", "d", "--output_dir", "o", "--bf16"]).bf16
    assert not config_from_args(["--model", "m", "--data_dir", "d", "--output_dir", "o"]).bf16
    (sanity,) = sanity_parser().parse_args_into_dataclasses(
        ["--model", "m", "--data_dir", "d", "--output_dir", "o", "--bf16"]
    )
    assert sanity.to_config().bf16
    (explain,) = explain_parser().parse_args_into_dataclasses(["--model", "m", "--text", "t", "--bf16"])
    assert explain.bf16
    training = parse_args(
        ["--model_name_or_path", "m", "--train_file", "t.csv", "--output_dir", "o", "--bf16"]
    )[2]
    assert training.bf16  # without --use_cpu too: on a machine without a bf16 GPU it trains on the CPU
    assert training.use_cpu or torch.cuda.is_available()
