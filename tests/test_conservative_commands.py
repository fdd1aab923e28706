"""Conservative propagation everywhere a method is used: evaluate, explain, sanity and report."""

from __future__ import annotations

import json

import pytest

from sgt_nlp import sanity
from sgt_nlp.cli import main
from sgt_nlp.evaluation import EvaluationConfig, evaluate_folder
from sgt_nlp.explain import explain_texts
from sgt_nlp.loading import load_classifier
from tests import tiny


def test_evaluate_and_report_take_conservative(tmp_path, model_dir, data_dir):
    out = tmp_path / "eval"
    config = EvaluationConfig(
        model=str(model_dir),
        data_dir=str(data_dir),
        output_dir=str(out),
        split="val",
        methods=("gradient", "conservative"),
        masked_accuracy_curve=False,
    )
    evaluate_folder(config)
    lines = [json.loads(x) for x in (out / "conservative" / "results.jsonl").read_text().splitlines()]
    assert lines and all(r["rationales"][0]["soft_rationale_predictions"] for r in lines)
    gradient = (out / "gradient" / "results.jsonl").read_text()
    assert gradient != (out / "conservative" / "results.jsonl").read_text()
    assert main(["report", str(out), "--output", str(tmp_path / "report.html")]) == 0
    assert "conservative" in (tmp_path / "report.html").read_text()


def test_explain_takes_conservative(model_dir):
    (result,) = explain_texts(str(model_dir), ["the movie was good and i loved it"], method="conservative")
    assert len(result["scores"]) == len(result["words"]) == 8


def test_sanity_class_sensitivity_of_conservative(model_dir):
    model, tokenizer, _ = load_classifier(str(model_dir), "cpu")
    batch = {k: v for k, v in tiny.encode("bert").items() if k != "labels"}
    specs = sanity.parse_methods("conservative")
    assert [s.label for s in specs] == ["conservative/grad_x_input", "conservative/abs_grad_x_input"]
    config = sanity.SanityConfig(specs, independent=False, max_stages=2, precision_examples=2)
    result = sanity.run_sanity_checks(model, tokenizer, [batch], config, progress=False).to_dict()
    by_label = {m["label"]: m for m in result["methods"]}
    # binary log-prob targets: the rule backward is linear in the output gradient, so the two classes' maps
    # are exact negatives for the signed relevance and identical for its magnitude
    signed = by_label["conservative/grad_x_input"]
    assert signed["class_sensitivity"]["spearman"]["mean"] == pytest.approx(-1.0)
    assert signed["class_verdict"] == "sensitive"
    assert by_label["conservative/abs_grad_x_input"]["class_verdict"] == "insensitive"
