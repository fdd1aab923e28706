"""``--naopc_bounds``: searched NAOPC bounds with a real (tiny) model under every removal mode, written to
bounds.jsonl, equal to brute force over every ordering for short inputs, and beyond every evaluated
method's AOPC."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from sgt_nlp.eraser import load_split
from sgt_nlp.evaluation import EvaluationConfig, evaluate_folder, evaluate_rationales
from sgt_nlp.evaluation.bounds import method_aopcs
from sgt_nlp.evaluation.evaluator import BatchEvaluator
from sgt_nlp.evaluation.perturbation import perturbed_words
from sgt_nlp.loading import load_classifier, load_tokenizer
from sgt_nlp.metrics import DEFAULT_AOPC_THRESHOLDS
from sgt_nlp.metrics.aopc_bounds import CachedDrops, ordering_aopc

REMOVALS = ("delete", "mask_token", "random_token")


def _config(model_dir, data_dir, out, search, **extra):
    return EvaluationConfig(
        model=str(model_dir),
        data_dir=str(data_dir),
        output_dir=str(out),
        split="val",
        methods=("gradient", "random"),
        removal=REMOVALS[0],
        extra_removals=REMOVALS[1:],
        masked_accuracy_curve=False,
        naopc_bounds=search,
        per_example=True,
        **extra,
    )


def test_exact_bounds_equal_brute_force_for_every_removal(tmp_path, model_dir, data_dir):
    config = _config(model_dir, data_dir, tmp_path / "out", "exact")
    model, tokenizer = load_classifier(str(model_dir))[0], load_tokenizer(str(model_dir))
    split = load_split(data_dir, "val")
    result = evaluate_rationales(model, tokenizer, split, config)
    evaluator = BatchEvaluator(config, model, tokenizer, result.labels, result.threshold, "cpu")
    checked = 0
    for ex, output in zip(result.examples, result.outputs, strict=True):
        seen = [ex.words[i] for i in output.kept_words]
        n = len(seen)
        assert n <= 8
        for removal in REMOVALS:
            found = output.bounds[removal]
            assert found["search"] == "exact" and found["beam_width"] is None
            first = next(iter(output.methods[removal].values()))
            y = int(np.argmax(first.probs))
            replacement = evaluator.replacements(ex, n, removal)

            def drops(
                kind,
                sets,
                seen=seen,
                y=y,
                p=float(first.probs[y]),
                replacement=replacement,
                ex=ex,
                removal=removal,
            ):
                rows = []
                for chosen in sets:
                    top = np.isin(np.arange(len(seen)), list(chosen))
                    if kind == "suff" and top.all():
                        rows.append(p)
                        continue
                    words = perturbed_words(seen, ~top if kind == "comp" else top, removal, replacement)
                    rows.append(evaluator.probabilities([words], [ex.query_words])[0, y])
                return p - np.array(rows)

            cached = CachedDrops(drops)
            for kind, name in (("comp", "comprehensiveness"), ("suff", "sufficiency")):
                every = [
                    ordering_aopc(order, n, DEFAULT_AOPC_THRESHOLDS, cached, kind)
                    for order in itertools.permutations(range(n))
                ]
                assert found[f"{name}_aopc_low"] == pytest.approx(min(every), abs=1e-6)
                assert found[f"{name}_aopc_high"] == pytest.approx(max(every), abs=1e-6)
            checked += 1
    assert checked == len(result.outputs) * len(REMOVALS)


def test_beam_bounds_file_and_naopc_beside_the_evaluated_one(tmp_path, model_dir, data_dir):
    out = tmp_path / "out"
    evaluate_folder(_config(model_dir, data_dir, out, "beam", bounds_beam_width=2))
    lines = [json.loads(line) for line in (out / "bounds.jsonl").read_text().splitlines()]
    assert {line["removal"] for line in lines} == set(REMOVALS)
    keys = {"annotation_id", "removal", "search", "beam_width", "model_passes", "seconds"}
    for line in lines:
        assert keys | {
            f"{m}_aopc_{s}" for m in ("comprehensiveness", "sufficiency") for s in ("low", "high")
        } == set(line)
        assert line["search"] == "beam" and line["beam_width"] == 2
    for removal in REMOVALS:
        folder = out if removal == "delete" else out / f"removal_{removal}"
        mine = {(line["annotation_id"]): line for line in lines if line["removal"] == removal}
        for method in ("gradient", "random"):
            per_example = [
                json.loads(x) for x in (folder / method / "per_example.jsonl").read_text().splitlines()
            ]
            for e in per_example:
                bounds = mine[e["annotation_id"]]
                assert (
                    e["aopc_bounds"]["comprehensiveness_aopc_high"] == bounds["comprehensiveness_aopc_high"]
                )
                y = int(np.argmax(e["probs"]))
                comp = np.mean([e["probs"][y] - p[y] for p in e["comp_aopc_probs"]])
                suff = np.mean([e["probs"][y] - p[y] for p in e["suff_aopc_probs"]])
                assert (
                    bounds["comprehensiveness_aopc_low"] - 1e-9
                    <= comp
                    <= bounds["comprehensiveness_aopc_high"] + 1e-9
                )
                assert bounds["sufficiency_aopc_low"] - 1e-9 <= suff <= bounds["sufficiency_aopc_high"] + 1e-9
            naopc = json.loads((folder / method / "scores.json").read_text())["naopc"]
            assert set(naopc) == {"evaluated_bounds", "beam_bounds"}
            row = next(r for r in json.loads((folder / "summary.json").read_text()) if r["method"] == method)
            assert row["comprehensiveness_naopc_beam_bounds"] == naopc["beam_bounds"]["comprehensiveness"]
    run = json.loads((out / "run.json").read_text())
    assert run["naopc_bounds"]["cost"]["model_passes_per_example"] > 0


def test_method_aopcs_matches_the_bins():
    from sgt_nlp.evaluation.records import MethodResult

    probs = np.array([0.2, 0.8])
    result = MethodResult(
        word_scores=np.zeros(2),
        probs=probs,
        comp=probs,
        suff=probs,
        thresholded={0.1: (np.array([0.5, 0.5]), np.array([0.3, 0.7])), 0.5: (np.array([0.9, 0.1]), probs)},
        masked_correct=[],
        tokens_to_flip=1,
    )
    assert method_aopcs(result) == pytest.approx(((0.3 + 0.7) / 2, (0.1 + 0.0) / 2))
