"""scripts/mask_selection_overlap.py: the overlap of masked sets under dropout, without dropout, at random."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import tiny
from tests.scripts import load_script
from tests.toy_data import write_eraser


def overlaps(tmp_path: Path, capsys, dropout: float) -> dict[tuple[str, str], float]:
    """{(fraction, pair): overlap} printed by the script for a tiny BERT with ``dropout``."""
    folder = tmp_path / f"model_{dropout}"
    model = tiny.tiny_model("bert", seed=1, dropout=dropout)
    model.config.id2label, model.config.label2id = {0: "NEG", 1: "POS"}, {"NEG": 0, "POS": 1}
    model.save_pretrained(folder)
    tiny.wordpiece_tokenizer().save_pretrained(folder)
    data = tmp_path / "data"
    if not data.exists():
        write_eraser(data)
    load_script("mask_selection_overlap").main(
        ["--model", str(folder), "--data_dir", str(data), "--batches", "2", "--batch_size", "4"]
    )
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| 0.")]
    return {(r[0].strip(), r[2].strip()): float(r[3].split("±")[0]) for r in rows}


def test_without_dropout_the_training_and_eval_passes_mask_the_same_tokens(tmp_path, capsys):
    got = overlaps(tmp_path, capsys, dropout=0.0)
    assert len(got) == 8  # 2 fractions x 4 pairs
    for fraction in ("0.5", "0.2"):
        assert got[(fraction, "train (dropout) vs train (dropout)")] == pytest.approx(1.0)
        assert got[(fraction, "train (dropout) vs eval (no dropout)")] == pytest.approx(1.0)
    # a random draw is not the saliency set
    assert got[("0.5", "eval vs random")] < 0.9


def test_dropout_changes_the_training_pass_set(tmp_path, capsys):
    got = overlaps(tmp_path, capsys, dropout=0.5)
    assert got[("0.5", "train (dropout) vs train (dropout)")] < 1.0
    assert got[("0.5", "train (dropout) vs eval (no dropout)")] < 1.0
