"""scripts/reproduce_movies.py end to end on a tiny model and a hand-built ERASER folder (the 'smoke' preset)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from tests import tiny
from tests.test_training import write_eraser

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("reproduce_movies", ROOT / "scripts" / "reproduce_movies.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def save_tiny_classifier(folder: Path) -> Path:
    """A tiny BERT with the NEG/POS labels of write_eraser, saved with its tokenizer."""
    model = tiny.tiny_model("bert", seed=0)
    model.config.id2label, model.config.label2id = {0: "NEG", 1: "POS"}, {"NEG": 0, "POS": 1}
    model.save_pretrained(folder)
    tiny.wordpiece_tokenizer().save_pretrained(folder)
    return folder


def test_reproduction_runs_aggregates_and_skips_finished_runs(tmp_path):
    script = load_script()
    data_root = tmp_path / "data"
    write_eraser(data_root / "eraser_movies")
    # write_eraser makes train and val; the experiment evaluates on test: reuse val as test
    (data_root / "eraser_movies" / "test.jsonl").write_text((data_root / "eraser_movies" / "val.jsonl").read_text())
    model_dir = save_tiny_classifier(tmp_path / "model")
    out = tmp_path / "out"
    argv = ["--config", "smoke", "--model", str(model_dir), "--data_root", str(data_root), "--output_dir", str(out)]
    script.main(argv)
    result = json.loads((out / "results.json").read_text())
    keys = {(r["mode"], r["method"], r["removal"]) for r in result["rows"]}
    assert keys == {(m, method, removal) for m in ("plain", "sgt") for method in script.METHODS
                    for removal in ("delete", "random_token")}
    assert all(r["seeds"] == 2 for r in result["rows"])
    acc = next(r for r in result["rows"] if r["mode"] == "plain" and r["method"] == "random")["accuracy"]
    assert 0.0 <= acc[0] <= 1.0 and acc[1] >= 0.0
    table = (out / "results.md").read_text()
    assert "| gradient | sgt | 0.240 | 0.013 |" in table  # the paper's row beside ours
    for seed in (0, 1):
        for tag in ("plain", "sgt0.5"):
            run = out / "movies" / f"seed{seed}" / tag
            assert (run / "done.json").is_file() and (run / "README.md").is_file()
            assert not list(run.glob("checkpoint-*"))
    done = json.loads((out / "movies" / "seed0" / "sgt0.5" / "done.json").read_text())
    card = (out / "movies" / "seed0" / "sgt0.5" / "README.md").read_text()
    assert done["seconds_per_epoch"] > 0 and "| `sgt_mask_fraction` | `0.5` |" in card
    # a rerun finds every run finished and rebuilds the same table without training or evaluating again
    before = {p: p.stat().st_mtime for p in out.rglob("summary.json")}
    script.main(argv)
    assert {p: p.stat().st_mtime for p in out.rglob("summary.json")} == before
    assert json.loads((out / "results.json").read_text())["rows"] == result["rows"]
    # --only_finished aggregates what exists and neither trains nor evaluates a missing seed
    script.main([*argv, "--seeds", "0,1,2", "--only_finished"])
    assert not (out / "movies" / "seed2").exists()
    assert json.loads((out / "results.json").read_text())["rows"] == result["rows"]


def test_transfer_dataset_trains_on_a_random_subset_of_val(tmp_path):
    """MultiRC/FEVER have no train split: the preset's transfer epochs and val subset are what is trained on."""
    script = load_script()
    data_root = tmp_path / "data"
    folder = write_eraser(data_root / "eraser_fever")
    (folder / "test.jsonl").write_text((folder / "val.jsonl").read_text())
    (folder / "train.jsonl").unlink()
    model_dir = save_tiny_classifier(tmp_path / "model")
    out = tmp_path / "out"
    script.main(["--config", "smoke", "--model", str(model_dir), "--data_root", str(data_root), "--output_dir",
                 str(out), "--datasets", "fever", "--seeds", "0"])
    preset = script.PRESETS["smoke"]
    for tag in ("plain", "sgt0.5"):
        done = json.loads((out / "fever" / "seed0" / tag / "done.json").read_text())
        assert done["epochs"] == preset.transfer_epochs != preset.epochs
        assert done["train_examples"] == preset.transfer_train_examples < len(tiny.SENTENCES)
        assert done["val_accuracy"] is None  # no model selection without a train split
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["dataset"] for r in rows} == {"fever"} and all(r["seeds"] == 1 for r in rows)
