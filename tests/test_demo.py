"""The demo's pieces: the comparison over seeds, its verdict, and the real-data path (--data_dir, --model)."""

from __future__ import annotations

import json

import pytest

from sgt_nlp.demo import COMPARED, DEMO_METHODS, comparison_rows, comparison_table, main, verdict
from tests import tiny
from tests.test_training import write_eraser


def fake_seed(plain: dict, sgt: dict) -> dict:
    def rows(values):
        return [{"method": m, **values} for m in DEMO_METHODS]

    return {"plain": {"rows": rows(plain)}, "sgt": {"rows": rows(sgt)}}


def metrics(**changes):
    base = {key: 0.5 for key, _, _ in COMPARED}
    base.update(changes)
    return base


def test_comparison_is_mean_and_std_over_seeds():
    seeds = [fake_seed(metrics(auprc=0.6), metrics(auprc=0.7)), fake_seed(metrics(auprc=0.8), metrics(auprc=0.7))]
    rows = comparison_rows(seeds)
    plain = next(r for r in rows if r["method"] == "gradient" and r["model"] == "plain")
    assert plain["auprc"] == pytest.approx((0.7, 0.1))  # mean of 0.6, 0.8; population std 0.1
    assert "0.700 ± 0.100" in comparison_table(rows, 2)


def test_verdict_names_what_improved_and_flags_unequal_accuracy():
    rows = comparison_rows([fake_seed(metrics(accuracy=0.80, sufficiency=0.2, auprc=0.5),
                                      metrics(accuracy=0.85, sufficiency=0.1, auprc=0.4))])
    text = verdict(rows)
    assert "accuracy +0.050" in text and "suff" in text.split("worse")[0] and "AUPRC" in text.split("worse")[1]
    assert "differ by more than one point" in text


def test_demo_on_given_data_and_model(tmp_path, capsys):
    """The --data_dir/--model path (used with eraser_movies and MiniLM) on a tiny folder and model."""
    data = write_eraser(tmp_path / "eraser")
    (data / "test.jsonl").write_text((data / "val.jsonl").read_text())
    model_dir = tmp_path / "model"
    tiny.tiny_model("bert", seed=0).save_pretrained(model_dir)
    tiny.wordpiece_tokenizer().save_pretrained(model_dir)
    out = tmp_path / "demo"
    main(["--quick", "--data_dir", str(data), "--model", str(model_dir), "--output_dir", str(out)])
    printed = capsys.readouterr().out
    assert "| gradient | plain |" in printed and "report:" in printed
    assert (out / "report.html").is_file() and (out / "aopc_comprehensiveness.png").is_file()
    summary = json.loads((out / "comparison.json").read_text())
    assert {r["model"] for r in summary["rows"]} == {"plain", "sgt"}
    card = (out / "seed0" / "model_sgt" / "README.md").read_text()
    assert "## Rationale evaluation" in card and "| `sgt_mask_fraction` | `0.5` |" in card
    assert "| `sgt_mask_fraction` | `0.0` |" in (out / "seed0" / "model_plain" / "README.md").read_text()
