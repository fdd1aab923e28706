"""scripts/reproduce_movies.py: a thin wrapper over the experiment runner, end to end on a tiny model and a
hand-built ERASER folder (its 'smoke' configuration), with a mask-fraction sweep as arms."""

from __future__ import annotations

import json
from pathlib import Path

from tests import tiny
from tests.scripts import load_script
from tests.toy_data import write_eraser


def save_tiny_classifier(folder: Path) -> Path:
    """A tiny BERT with the NEG/POS labels of write_eraser, saved with its tokenizer."""
    model = tiny.tiny_model("bert", seed=0)
    model.config.id2label, model.config.label2id = {0: "NEG", 1: "POS"}, {"NEG": 0, "POS": 1}
    model.save_pretrained(folder)
    tiny.wordpiece_tokenizer().save_pretrained(folder)
    return folder


def test_sweep_becomes_arms_of_the_movies_preset():
    script = load_script("reproduce_movies")
    spec = script.movies_spec("cpu", [0.1, 0.5], None, "0")
    assert [d.name for d in spec.datasets] == ["movies"] and spec.seeds == (0,)
    assert spec.arms["sgt0.1"] == {"sgt_mask_fraction": 0.1} and "sgt" not in spec.arms
    assert {"plain", "random_mask"} <= set(spec.arms)
    assert ("sgt0.1", "random_mask") in spec.compared_pairs()


def test_reproduction_runs_the_runner_and_skips_finished_runs(tmp_path):
    script = load_script("reproduce_movies")
    data_root = tmp_path / "data"
    write_eraser(data_root / "eraser_movies")
    # write_eraser makes train and val; the experiment evaluates on test: reuse val as test
    folder = data_root / "eraser_movies"
    (folder / "test.jsonl").write_text((folder / "val.jsonl").read_text())
    model_dir = save_tiny_classifier(tmp_path / "model")
    out = tmp_path / "out"
    argv = [
        "--config",
        "smoke",
        "--model",
        str(model_dir),
        "--data_root",
        str(data_root),
        "--output_dir",
        str(out),
        "--seeds",
        "0",
    ]
    script.main(argv)
    result = json.loads((out / "results.json").read_text())
    movies = result["datasets"]["movies"]
    assert movies["seeds_evaluated"] == [0]
    pairs = [(c["treatment"], c["control"]) for c in movies["comparisons"]]
    assert pairs == [("sgt", "plain"), ("sgt", "random_mask"), ("random_mask", "plain")]
    assert {r["method"] for r in movies["comparisons"][0]["rows"]} == {"gradient_l2", "gradient", "random"}
    # movies has human rationales: agreement is reported
    assert "AUPRC seen" in (out / "results.md").read_text()
    before = {p: p.stat().st_mtime for p in out.rglob("*.json*")}
    script.main([*argv, "--only_finished"])
    after = {p: p.stat().st_mtime for p in out.rglob("*.json*") if not p.name.startswith("results")}
    assert after == {p: t for p, t in before.items() if not p.name.startswith("results")}
