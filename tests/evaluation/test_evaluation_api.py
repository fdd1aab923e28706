"""The model-object API (evaluate_rationales -> EvaluationResult, write_evaluation) and the generated CLI."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest

import sgt_nlp
from sgt_nlp.eraser import load_split
from sgt_nlp.eraser.align import TRUNCATIONS, WORD_AGGREGATIONS
from sgt_nlp.evaluation import (
    EvaluationConfig,
    EvaluationResult,
    ExampleOutput,
    MethodResult,
    config_from_args,
    evaluate_folder,
    evaluate_rationales,
    make_parser,
    write_evaluation,
)
from sgt_nlp.loading import load_classifier
from sgt_nlp.saliency import AGGREGATIONS


def _without_seconds(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_objects_in_typed_result_out_and_the_same_files_as_from_folders(tmp_path, model_dir, data_dir):
    settings = {
        "split": "val",
        "methods": ("gradient", "integrated_gradients"),
        "ig_steps": 4,
        "batch_size": 3,
        "model_name": "tiny",
        "extra_removals": ("mask_token",),
    }
    model, tokenizer, _ = load_classifier(str(model_dir), "cpu")
    split = load_split(data_dir, "val")
    result = evaluate_rationales(model, tokenizer, split, EvaluationConfig(**settings))
    assert isinstance(result, EvaluationResult) and sgt_nlp.EvaluationResult is EvaluationResult
    assert len(result.outputs) == len(result.examples) == len(split.annotations)
    assert [o.index for o in result.outputs] == list(range(len(split.annotations)))
    first = result.outputs[0]
    assert isinstance(first, ExampleOutput) and set(first.methods) == {"delete", "mask_token"}
    ig = first.result("delete", "integrated_gradients")
    assert isinstance(ig, MethodResult) and ig.convergence_delta is not None
    assert first.result("delete", "gradient").convergence_delta is None
    assert len(ig.word_scores) == first.words_kept and np.isclose(ig.probs.sum(), 1.0)
    assert 0 < result.threshold < 1 and result.model_name == "tiny"
    assert not any(tmp_path.iterdir())  # nothing written yet

    rows = write_evaluation(result, tmp_path / "objects")
    folder_rows = evaluate_folder(
        EvaluationConfig(
            model=str(model_dir), data_dir=str(data_dir), output_dir=str(tmp_path / "folders"), **settings
        )
    )
    assert _without_seconds(rows) == _without_seconds(folder_rows)
    assert [r["removal"] for r in rows] == ["delete", "delete", "mask_token", "mask_token"]
    names = (
        "gradient/results.jsonl",
        "integrated_gradients/scores.json",
        "removal_mask_token/examples.jsonl",
    )
    for name in names:
        assert (tmp_path / "objects" / name).read_bytes() == (tmp_path / "folders" / name).read_bytes(), name
    run = json.loads((tmp_path / "objects" / "run.json").read_text())
    assert run["model"] is None and run["examples"] == len(split.annotations)


def test_data_given_as_a_folder_and_labels_reordered_to_the_model(model_dir, data_dir):
    model, tokenizer, _ = load_classifier(str(model_dir), "cpu")
    model.config.id2label = {0: "POS", 1: "NEG"}  # the split's sorted order is NEG, POS
    model.config.label2id = {"POS": 0, "NEG": 1}
    config = EvaluationConfig(split="val", methods=("random",), max_examples=2)
    model.train()  # evaluated in eval mode, and left as it was
    result = evaluate_rationales(model, tokenizer, str(data_dir), config)
    assert model.training
    assert result.labels == ["POS", "NEG"] and result.split.labels == ("POS", "NEG")
    gold = {a.annotation_id: a.classification for a in result.annotations}
    assert all(result.labels[ex.label] == gold[ex.annotation_id] for ex in result.examples)


def test_every_config_field_is_an_option_or_hidden_and_defaults_come_from_the_dataclass():
    parser = make_parser()
    options = {a.dest: a for a in parser._actions}
    hidden = {
        "extra_removals",
        "target_output",
        "smoothgrad_noise",
        "shown_examples",
        "explainer_settings",
        "per_example",
    }
    for f in dataclasses.fields(EvaluationConfig):
        assert (f.name in options) != (f.name in hidden), f.name
    assert tuple(options["aggregation"].choices) == AGGREGATIONS
    assert tuple(options["word_aggregation"].choices) == WORD_AGGREGATIONS
    assert tuple(options["truncation"].choices) == TRUNCATIONS
    assert options["model"].required
    assert options["masked_accuracy_curve"].option_strings == ["--no_masked_accuracy_curve"]
    parsed = config_from_args(["--model", "m", "--data_dir", "d", "--output_dir", "o"])
    assert parsed == EvaluationConfig(model="m", data_dir="d", output_dir="o")
    changed = config_from_args(
        [
            "--model",
            "m",
            "--data_dir",
            "d",
            "--output_dir",
            "o",
            "--methods",
            "occlusion,random",
            "--removal",
            "mask_token,delete",
            "--aopc_thresholds",
            "0.1,0.3",
            "--no_masked_accuracy_curve",
            "--max_examples",
            "5",
            "--threshold",
            "0.25",
        ]
    )
    assert changed.methods == ("occlusion", "random") and changed.aopc_thresholds == (0.1, 0.3)
    assert (changed.removal, changed.extra_removals) == ("mask_token", ("delete",))
    assert not changed.masked_accuracy_curve and changed.max_examples == 5 and changed.threshold == 0.25
    with pytest.raises(ValueError, match="--aopc_thresholds"):
        config_from_args(["--model", "m", "--data_dir", "d", "--output_dir", "o", "--aopc_thresholds", "a,b"])


def test_explainer_settings_come_from_the_explainers_run_settings():
    config = EvaluationConfig(
        batch_size=2, ig_steps=3, seed=4, removal="random_token", explainer_settings={"random": {"seed": 9}}
    )
    assert config.explainer_kwargs("gradient") == {"target_output": "logit", "aggregation": "grad_x_input"}
    assert config.explainer_kwargs("integrated_gradients") == {
        "target_output": "logit",
        "n_steps": 3,
        "internal_batch_size": 16,
    }
    assert config.explainer_kwargs("occlusion") == {"target_output": "logit", "removal": "mask_token"}
    assert config.explainer_kwargs("random") == {"target_output": "logit", "seed": 9}
    assert config.explainer_kwargs("smoothgrad") == {
        "target_output": "logit",
        "aggregation": "grad_x_input",
        "n_samples": 10,
        "noise_std": 0.1,
        "seed": 4,
        "internal_batch_size": 16,
    }


def test_an_interrupted_evaluation_resumes_from_its_checkpoint_with_the_same_numbers(
    tmp_path, model_dir, data_dir, monkeypatch
):
    """Batches finished before an interruption are read back, not run again, and the written files are
    byte-identical to an uninterrupted run (seeded SmoothGrad and Random included)."""
    from sgt_nlp.evaluation.evaluator import BatchEvaluator
    from sgt_nlp.validation import UsageError

    settings = dict(
        model=str(model_dir),
        data_dir=str(data_dir),
        split="val",
        methods=("gradient", "smoothgrad", "random"),
        smoothgrad_samples=3,
        batch_size=2,
        per_example=True,
        extra_removals=("random_token",),
    )
    whole = EvaluationConfig(output_dir=str(tmp_path / "whole"), **settings)
    evaluate_folder(whole)
    run_batch, calls = BatchEvaluator.run_batch, []

    def interrupted_after_two(self, batch):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(len(batch))
        time.sleep(2.0)  # the two finished batches cost at least 4 s, which the resumed run must count
        return run_batch(self, batch)

    checkpoint = tmp_path / "eval.checkpoint"
    resumed = EvaluationConfig(output_dir=str(tmp_path / "resumed"), **settings)
    monkeypatch.setattr(BatchEvaluator, "run_batch", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        evaluate_folder(resumed, checkpoint=checkpoint)
    assert not (tmp_path / "resumed").exists()
    with checkpoint.open("ab") as handle:  # a record cut short by the interruption
        handle.write(b'{"index": 3, "outputs": [{"ind')

    def counted(self, batch):
        calls.append(len(batch))
        return run_batch(self, batch)

    monkeypatch.setattr(BatchEvaluator, "run_batch", counted)
    began = time.perf_counter()
    evaluate_folder(resumed, checkpoint=checkpoint)
    resumed_call = time.perf_counter() - began
    n_examples = len(load_split(data_dir, "val").annotations)
    assert sum(calls) == n_examples and len(calls) > 3  # each batch ran once, over both calls
    for name in ("gradient/results.jsonl", "smoothgrad/per_example.jsonl", "random/per_example.jsonl"):
        for folder in ("", "removal_random_token/"):
            whole_bytes = (tmp_path / "whole" / folder / name).read_bytes()
            assert (tmp_path / "resumed" / folder / name).read_bytes() == whole_bytes, folder + name
    runs = [json.loads((tmp_path / f / "run.json").read_text()) for f in ("whole", "resumed")]
    assert runs[0]["forward_passes"] == runs[1]["forward_passes"]  # the checkpoint's passes are counted
    assert runs[1]["seconds"] > resumed_call + 3.9  # and so is the time of its batches

    other = EvaluationConfig(output_dir=str(tmp_path / "other"), **{**settings, "smoothgrad_samples": 4})
    with pytest.raises(UsageError, match=r"eval.checkpoint: made by an evaluation with another settings"):
        evaluate_folder(other, checkpoint=checkpoint)
