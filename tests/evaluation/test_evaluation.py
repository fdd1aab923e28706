"""The evaluation pipeline: files, hand-checked faithfulness, removal modes, processes, bad input, real
data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from sgt_nlp.eraser import load_split, verify_results
from sgt_nlp.evaluation import (
    EvaluationConfig,
    evaluate_folder,
    kept_positions,
    length_batches,
    main,
    perturbation_keys,
    perturbed_words,
    whole_word_vocabulary,
)
from sgt_nlp.metrics import removal_count, top_k_indices
from tests import tiny
from tests.toy_data import MOVIES


def run(model_dir, data_dir, out, **overrides):
    settings = {"split": "val", "batch_size": 3, "ig_steps": 8, "smoothgrad_samples": 4, **overrides}
    config = EvaluationConfig(model=str(model_dir), data_dir=str(data_dir), output_dir=str(out), **settings)
    return evaluate_folder(config), config


# ---- pure helpers ------------------------------------------------------------------------------------------


def test_perturbation_keys_dedupe_and_skip_the_unperturbed_input():
    # n = 10: ceil(10 * f) for f = 0.01, 0.05, 0.1 -> 1, 1, 1 ; 0.2 -> 2 ; 0.5 -> 5 ; 1.0 -> 10
    keys = perturbation_keys(10, [0.01, 0.05, 0.1, 0.2, 0.5, 1.0], [0.01, 0.05, 0.1, 0.2, 0.5, 1.0])
    assert keys == {
        ("comp", 1),
        ("comp", 2),
        ("comp", 5),
        ("comp", 10),
        ("suff", 1),
        ("suff", 2),
        ("suff", 5),
    }


def test_kept_positions_and_perturbed_words():
    words = ["a", "b", "c", "d"]
    order = top_k_indices([0.1, 0.9, 0.5, 0.2], 4)  # b, c, d, a
    comp = kept_positions(order, 4, ("comp", 2))
    suff = kept_positions(order, 4, ("suff", 2))
    assert comp.tolist() == [True, False, False, True] and suff.tolist() == [False, True, True, False]
    assert perturbed_words(words, comp, "delete") == ["a", "d"]
    assert perturbed_words(words, suff, "delete") == ["b", "c"]
    assert perturbed_words(words, comp, "mask_token", "[MASK]") == ["a", "[MASK]", "[MASK]", "d"]
    assert perturbed_words(words, comp, "random_token", ["w", "x", "y", "z"]) == ["a", "x", "y", "d"]
    with pytest.raises(ValueError, match="needs a replacement"):
        perturbed_words(words, comp, "mask_token")


def test_length_batches_are_the_same_for_any_process_count():
    lengths = [5, 30, 12, 30, 7, 1]
    assert length_batches(lengths, 2) == [[1, 3], [2, 4], [0, 5]]


def test_whole_word_vocabulary():
    wp = whole_word_vocabulary(tiny.wordpiece_tokenizer())
    assert "movie" in wp and "[MASK]" not in wp and not any(w.startswith("##") for w in wp)
    bpe = whole_word_vocabulary(tiny.bpe_tokenizer())
    assert bpe and all(w.isalpha() and not w.startswith("Ġ") for w in bpe)


# ---- end to end --------------------------------------------------------------------------------------------


def test_outputs_are_complete_and_verified(tmp_path, model_dir, data_dir):
    out = tmp_path / "out"
    rows, config = run(
        model_dir,
        data_dir,
        out,
        methods=("gradient", "integrated_gradients", "smoothgrad", "occlusion", "random"),
    )
    split = load_split(data_dir, "val")
    assert [r["method"] for r in rows] == list(config.methods)
    for method in config.methods:
        records = verify_results(
            out / method / "results.jsonl", split.annotations, split.documents, ["NEG", "POS"]
        )
        assert len(records) == len(split.annotations) == 8
        scores = json.loads((out / method / "scores.json").read_text())
        for key in (
            "iou_scores",
            "token_prf",
            "token_soft_metrics",
            "classification_scores",
            "evaluation_settings",
        ):
            assert key in scores
        assert scores["evaluation_settings"]["removal"] == "delete"
        assert scores["evaluation_settings"]["method"] == method
        curves = json.loads((out / method / "curves.json").read_text())
        assert (
            curves["masked_accuracy"]["fractions"][0] == 0.0
            and len(curves["masked_accuracy"]["accuracy"]) == 10
        )
        assert (
            curves["aopc"]["comprehensiveness"]
            == scores["classification_scores"]["comprehensiveness_aopc_points"]
        )
    run_info = json.loads((out / "run.json").read_text())
    # the threshold defaults to the mean human-rationale fraction: 2 rationale words out of each sentence
    expected = np.mean([2 / len(s.split()) for s, _ in tiny.SENTENCES])
    assert run_info["threshold"] == pytest.approx(expected, abs=1e-4)
    assert "| model | method |" in (out / "summary.md").read_text()
    shown = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert len(shown) == 6 and set(shown[0]["scores"]) == set(config.methods)
    assert len(shown[0]["scores"]["gradient"]) == len(shown[0]["words"]) == len(shown[0]["rationale"])


def test_visible_only_metrics_equal_the_whole_document_ones_without_truncation(tmp_path, model_dir, data_dir):
    run(model_dir, data_dir, tmp_path / "o", methods=("gradient",))
    scores = json.loads((tmp_path / "o" / "gradient" / "scores.json").read_text())
    assert scores["visible_only"]["token_soft_metrics"] == pytest.approx(scores["token_soft_metrics"])
    for level in ("instance_micro", "instance_macro"):
        assert scores["visible_only"]["token_prf"][level] == pytest.approx(scores["token_prf"][level])


@pytest.mark.parametrize("removal", ["delete", "mask_token", "random_token"])
def test_comprehensiveness_and_sufficiency_by_hand(tmp_path, model_dir, data_dir, removal):
    """Recompute one example's perturbed probabilities from its word scores and compare with the results
    file."""
    out = tmp_path / removal
    run(model_dir, data_dir, out, methods=("gradient",), removal=removal)
    threshold = json.loads((out / "run.json").read_text())["threshold"]
    example = json.loads((out / "examples.jsonl").read_text().splitlines()[2])
    record = next(
        json.loads(line)
        for line in (out / "gradient" / "results.jsonl").read_text().splitlines()
        if json.loads(line)["annotation_id"] == example["annotation_id"]
    )
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    words, n = example["words"], len(example["words"])
    order = np.argsort(-np.asarray(example["scores"]["gradient"]), kind="stable")
    k = removal_count(n, threshold)
    top = set(order[:k].tolist())
    query = "what is the sentiment ?".split()
    if removal == "delete":
        comp_words = [w for i, w in enumerate(words) if i not in top]
        suff_words = [w for i, w in enumerate(words) if i in top]
    elif removal == "mask_token":
        comp_words = [("[MASK]" if i in top else w) for i, w in enumerate(words)]
        suff_words = [(w if i in top else "[MASK]") for i, w in enumerate(words)]
    else:
        # random_token: same length, removed words replaced by vocabulary words (not the originals' positions)
        comp_words = suff_words = None
    with torch.no_grad():

        def probs(ws):
            enc = tok(ws, query, is_split_into_words=True, return_tensors="pt")
            return torch.softmax(model(**enc).logits, -1)[0].tolist()

        full = probs(words)
        assert [record["classification_scores"][c] for c in ("NEG", "POS")] == pytest.approx(full, abs=1e-5)
        if comp_words is not None:
            comp = [record["comprehensiveness_classification_scores"][c] for c in ("NEG", "POS")]
            suff = [record["sufficiency_classification_scores"][c] for c in ("NEG", "POS")]
            assert comp == pytest.approx(probs(comp_words), abs=1e-5)
            assert suff == pytest.approx(probs(suff_words), abs=1e-5)
    scores = json.loads((out / "gradient" / "scores.json").read_text())
    assert scores["evaluation_settings"]["removal"] == removal


def test_identical_perturbations_run_once(tmp_path, model_dir, data_dir):
    """Forward passes = distinct perturbations per example (the unperturbed prediction is not re-run)."""
    from sgt_nlp.evaluation import MASKED_ACCURACY_FRACTIONS

    rows, config = run(model_dir, data_dir, tmp_path / "o", methods=("random",))
    run_info = json.loads((tmp_path / "o" / "run.json").read_text())
    t = run_info["threshold"]
    expected = 0
    for sentence, _ in tiny.SENTENCES:
        n = len(sentence.split())
        expected += len(
            perturbation_keys(
                n,
                sorted({*config.aopc_thresholds, t, *MASKED_ACCURACY_FRACTIONS[1:]}),
                sorted({*config.aopc_thresholds, t}),
            )
        )
    assert run_info["forward_passes"] == expected
    assert expected < len(tiny.SENTENCES) * (2 + 2 * 5 + 9)  # sharing really saved passes


def test_extra_removals_share_one_explanation_pass(tmp_path, model_dir, data_dir):
    out = tmp_path / "o"
    rows, config = run(
        model_dir,
        data_dir,
        out,
        methods=("gradient", "random"),
        extra_removals=("mask_token",),
        masked_accuracy_curve=False,
    )
    assert [(r["method"], r["removal"]) for r in rows] == [
        ("gradient", "delete"),
        ("random", "delete"),
        ("gradient", "mask_token"),
        ("random", "mask_token"),
    ]
    main_dir, extra_dir = out, out / "removal_mask_token"
    assert (
        json.loads((extra_dir / "gradient" / "scores.json").read_text())["evaluation_settings"]["removal"]
        == "mask_token"
    )
    assert json.loads((extra_dir / "run.json").read_text())["removal"] == "mask_token"
    # the same explanations (soft scores), different perturbations (comprehensiveness probabilities)
    a = [json.loads(x) for x in (main_dir / "gradient" / "results.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (extra_dir / "gradient" / "results.jsonl").read_text().splitlines()]
    assert [r["rationales"] for r in a] == [r["rationales"] for r in b]
    assert [r["comprehensiveness_classification_scores"] for r in a] != [
        r["comprehensiveness_classification_scores"] for r in b
    ]
    assert json.loads((out / "gradient" / "curves.json").read_text())["masked_accuracy"]["fractions"] == []


def test_random_sample_is_seeded_and_in_file_order(tmp_path, model_dir, data_dir):
    run(model_dir, data_dir, tmp_path / "a", methods=("random",), max_examples=4, sample="random", seed=5)
    run(model_dir, data_dir, tmp_path / "b", methods=("random",), max_examples=4, sample="random", seed=5)
    ids = [
        json.loads(x)["annotation_id"]
        for x in (tmp_path / "a" / "random" / "results.jsonl").read_text().splitlines()
    ]
    again = [
        json.loads(x)["annotation_id"]
        for x in (tmp_path / "b" / "random" / "results.jsonl").read_text().splitlines()
    ]
    assert ids == again and len(ids) == 4 and ids == sorted(ids, key=lambda x: int(x.split("_")[1]))
    assert ids != [f"val_{i}" for i in range(4)]


def test_roberta_model_evaluates(tmp_path, data_dir):
    folder = tmp_path / "roberta"
    model = tiny.tiny_model("roberta", seed=2)
    model.config.id2label, model.config.label2id = {0: "NEG", 1: "POS"}, {"NEG": 0, "POS": 1}
    model.save_pretrained(folder)
    tiny.bpe_tokenizer().save_pretrained(folder)
    rows, _ = run(folder, data_dir, tmp_path / "o", methods=("gradient", "occlusion"), removal="mask_token")
    assert all(0 <= r["auprc"] <= 1 for r in rows)


# ---- bad input ---------------------------------------------------------------------------------------------


def test_bad_configuration_is_refused(tmp_path, model_dir, data_dir):
    with pytest.raises(ValueError, match="unknown method"):
        EvaluationConfig(model="m", data_dir="d", output_dir="o", methods=("gradient", "lime"))
    with pytest.raises(ValueError, match="removal='blank' is not one of"):
        EvaluationConfig(model="m", data_dir="d", output_dir="o", removal="blank")
    with pytest.raises(ValueError, match="never downloads"):
        run("not/a/folder", data_dir, tmp_path / "o")


def test_model_labels_must_match_the_split(tmp_path, data_dir):
    folder = tmp_path / "m"
    model = tiny.tiny_model("bert", num_labels=3)
    model.config.id2label = {0: "a", 1: "b", 2: "c"}
    model.save_pretrained(folder)
    tiny.wordpiece_tokenizer().save_pretrained(folder)
    with pytest.raises(ValueError, match=r"do not match the split's labels \['NEG', 'POS'\]"):
        run(folder, data_dir, tmp_path / "o", methods=("random",))


def test_cli_prints_the_summary(tmp_path, model_dir, data_dir, capsys):
    main(
        [
            "--model",
            str(model_dir),
            "--data_dir",
            str(data_dir),
            "--split",
            "val",
            "--output_dir",
            str(tmp_path / "o"),
            "--methods",
            "gradient,random",
            "--max_examples",
            "3",
            "--removal",
            "mask_token",
            "--model_name",
            "tiny",
        ]
    )
    printed = capsys.readouterr().out
    assert "| tiny | gradient |" in printed and "| tiny | random |" in printed
    assert len((tmp_path / "o" / "gradient" / "results.jsonl").read_text().splitlines()) == 3


# ---- processes and real data -------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_two_processes_give_identical_scores(tmp_path, model_dir, data_dir):
    args = [
        "--model",
        str(model_dir),
        "--data_dir",
        str(data_dir),
        "--split",
        "val",
        "--methods",
        "gradient,smoothgrad,random",
        "--batch_size",
        "2",
        "--smoothgrad_samples",
        "3",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = "import sys; from sgt_nlp.evaluation import main; main(sys.argv[1:])"
    script = tmp_path / "run_eval.py"
    script.write_text(code + "\n")
    one = subprocess.run(
        [sys.executable, str(script), *args, "--output_dir", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [
            "torchrun",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            *args,
            "--output_dir",
            str(tmp_path / "two"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "run.json").read_text())["processes"] == 2
    for method in ("gradient", "smoothgrad", "random"):
        for name in ("results.jsonl", "curves.json"):  # byte for byte: every batch is computed the same way
            assert (tmp_path / "one" / method / name).read_text() == (
                tmp_path / "two" / method / name
            ).read_text()
        # scores.json: the metrics sum over sets whose order follows Python's per-process string hashing
        one_scores = json.loads((tmp_path / "one" / method / "scores.json").read_text())
        two_scores = json.loads((tmp_path / "two" / method / "scores.json").read_text())
        one_flat, two_flat = _flatten(one_scores), _flatten(two_scores)
        assert one_flat.keys() == two_flat.keys()
        # pytest.approx compares numbers only (pytest >= 9.2 rejects strings in it): the rest must be equal
        numbers = {k for k, v in one_flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        assert {k: one_flat[k] for k in numbers} == pytest.approx(
            {k: two_flat[k] for k in numbers}, rel=1e-12, abs=1e-15
        )
        assert {k: v for k, v in one_flat.items() if k not in numbers} == {
            k: v for k, v in two_flat.items() if k not in numbers
        }


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in _flatten(sub, f"{prefix}/{i}").items()}
    return {prefix: tree}


@pytest.mark.skipif(not MOVIES.is_dir(), reason="../shared/data/eraser_movies not present")
def test_real_movies_test_split_end_to_end(tmp_path, model_dir):
    """Real data quirks (empty spans, sentence -1, long documents) flow through to verified results."""
    rows, _ = run(
        model_dir, MOVIES, tmp_path / "o", split="test", methods=("random",), max_examples=4, max_length=64
    )
    split = load_split(MOVIES, "test")
    run_info = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run_info["examples"] == 4 and run_info["truncation"]["examples_truncated"] == 4
    # the default threshold is the mean human fraction of the evaluated annotations
    assert run_info["threshold"] == pytest.approx(split.rationale_fractions()[:4].mean(), abs=1e-4)
    records = [
        json.loads(line) for line in (tmp_path / "o" / "random" / "results.jsonl").read_text().splitlines()
    ]
    assert [r["annotation_id"] for r in records] == [a.annotation_id for a in split.annotations[:4]]
    shown = [json.loads(line) for line in (tmp_path / "o" / "examples.jsonl").read_text().splitlines()]
    threshold = run_info["threshold"]
    for record, ann, example in zip(records, split.annotations[:4], shown, strict=True):
        doc = split.documents[ann.docids[0]]
        assert len(record["rationales"][0]["soft_rationale_predictions"]) == len(doc)
        # hard rationales are drawn from the words the model saw: round(threshold * seen) of them
        seen = len(example["words"])
        spans = record["rationales"][0]["hard_rationale_predictions"]
        assert all(span["end_token"] <= seen for span in spans)
        assert sum(span["end_token"] - span["start_token"] for span in spans) == int(threshold * seen + 0.5)
    scores = json.loads((tmp_path / "o" / "random" / "scores.json").read_text())
    # most human rationale lies beyond 64 pieces: the whole-document recall is far below the seen-words one
    assert (
        scores["token_prf"]["instance_macro"]["r"]
        < scores["visible_only"]["token_prf"]["instance_macro"]["r"]
    )


def test_rescore_reproduces_the_scores_from_the_results_files(tmp_path, model_dir, data_dir):
    """Rescoring with an unchanged scorer gives back every number; stale sections are replaced, the rest
    kept."""
    from sgt_nlp.cli import main as cli_main
    from sgt_nlp.evaluation import rescore_output

    out = tmp_path / "out"
    rows, config = run(
        model_dir, data_dir, out, methods=("gradient", "random"), max_examples=6, sample="random"
    )
    before = {m: json.loads((out / m / "scores.json").read_text()) for m in config.methods}
    curves_before = {m: json.loads((out / m / "curves.json").read_text()) for m in config.methods}
    for method in config.methods:  # what an older scorer might have left behind
        stale = dict(before[method], token_prf={"instance_macro": {"f1": -1.0}})
        stale["classification_scores"] = dict(stale["classification_scores"], comprehensiveness_aopc=-1.0)
        (out / method / "scores.json").write_text(json.dumps(stale))
    stale_rows = [dict(r, token_f1=-1.0, comprehensiveness_aopc=-1.0) for r in rows]
    (out / "summary.json").write_text(json.dumps(stale_rows))
    new_rows = rescore_output(out)
    assert new_rows == json.loads(json.dumps(rows))
    for method in config.methods:
        assert json.loads((out / method / "scores.json").read_text()) == before[method]
        assert json.loads((out / method / "curves.json").read_text()) == curves_before[method]
    assert json.loads((out / "summary.json").read_text()) == new_rows
    cli_main(["rescore", str(out)])  # the command line does the same and leaves the files as they are
    assert json.loads((out / "gradient" / "scores.json").read_text()) == before["gradient"]
    with pytest.raises(FileNotFoundError, match="run.json"):
        rescore_output(tmp_path)


def test_exact_tokens_to_flip_equals_a_brute_force_scan(tmp_path, data_dir):
    """'exact' is the fewest top words whose deletion changes the prediction, found by trying every count."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = tmp_path / "model"  # fitted to the 8 sentences, so that deleting sentiment words flips it
    model, tokenizer = tiny.tiny_model("bert", seed=0), tiny.wordpiece_tokenizer()
    model.config.id2label, model.config.label2id = {0: "NEG", 1: "POS"}, {"NEG": 0, "POS": 1}
    batch = tokenizer(
        [s.split() for s, _ in tiny.SENTENCES],
        [["what", "is", "the", "sentiment", "?"]] * 8,
        is_split_into_words=True,
        padding=True,
        return_tensors="pt",
    )
    labels = torch.tensor([y for _, y in tiny.SENTENCES])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(40):
        optimizer.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    exact_out, grid_out = tmp_path / "exact", tmp_path / "grid"
    coarse = {
        "methods": ("gradient",),
        "masked_accuracy_curve": False,
        "aopc_thresholds": (0.5,),
        "threshold": 0.5,
    }
    run(model_dir, data_dir, exact_out, tokens_to_flip="exact", **coarse)
    run(model_dir, data_dir, grid_out, **coarse)  # the grid is only "half the words"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    split = load_split(data_dir, "val")
    exact = {
        r["annotation_id"]: r
        for r in verify_results(
            exact_out / "gradient" / "results.jsonl", split.annotations, split.documents, ["NEG", "POS"]
        )
    }
    grid = {
        r["annotation_id"]: r
        for r in verify_results(
            grid_out / "gradient" / "results.jsonl", split.annotations, split.documents, ["NEG", "POS"]
        )
    }

    def predict(words, query):
        enc = tokenizer(
            words,
            query,
            is_split_into_words=True,
            truncation="only_first",
            max_length=256,
            return_tensors="pt",
        )
        with torch.no_grad():
            return int(model(**enc).logits.argmax())

    strictly_finer = 0
    for ann in split.annotations:
        words = list(split.documents[ann.docids[0]].tokens)
        query = ann.query.split()
        record = exact[ann.annotation_id]
        order = top_k_indices(record["rationales"][0]["soft_rationale_predictions"], len(words))
        predicted = predict(words, query)
        expected = next(
            (
                k
                for k in range(1, len(words) + 1)
                if predict([w for i, w in enumerate(words) if i not in set(order[:k])], query) != predicted
            ),
            len(words),
        )
        assert record["tokens_to_flip"] == expected, ann.annotation_id
        assert grid[ann.annotation_id]["tokens_to_flip"] >= expected
        strictly_finer += grid[ann.annotation_id]["tokens_to_flip"] > expected
    assert strictly_finer > 0  # the grid misses some flips on this data, so the test tells the two apart
