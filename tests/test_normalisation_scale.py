"""scripts/normalisation_scale.py: "/ empty drop" split into the model's scale and the method's standing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from tests.scripts import load_script


def ordering(p_full: list[float], p_empty: list[float], p_comp_aopc: list[list[float]]) -> dict[str, list]:
    """A compact ordering record with the fields ``per_example_metrics`` reads."""
    n = len(p_full)
    return {
        "p_full": p_full,
        "p_empty": p_empty,
        "p_comp_aopc": p_comp_aopc,
        "p_suff_aopc": [[p, p] for p in p_full],
        "predicted": [1] * n,
        "p_comp": [None] * n,
        "p_suff": [None] * n,
        "auprc_visible": [None] * n,
        "token_f1_visible": [None] * n,
    }


P_FULL, P_EMPTY = [0.9, 0.8, 0.7], [0.5, 0.78, 0.3]  # d0 = 0.4, 0.02 (below 0.05), 0.4
ORDERINGS = {
    # comprehensiveness AOPC = mean(p - bins): 0.5, 0.1, 0.2
    "occlusion": ordering(P_FULL, P_EMPTY, [[0.5, 0.3], [0.7, 0.7], [0.5, 0.5]]),
    # 0.2, 0.0, 0.4
    "integrated_gradients": ordering(P_FULL, P_EMPTY, [[0.7, 0.7], [0.8, 0.8], [0.3, 0.3]]),
}


def test_scale_terms_by_hand():
    script = load_script("normalisation_scale")
    np.testing.assert_allclose(script.empty_drop(ORDERINGS), [0.4, 0.02, 0.4])
    keep = script.empty_drop(ORDERINGS) >= 0.05
    terms = script.scale_terms(ORDERINGS, [1, 1, 1], "integrated_gradients", keep)
    # best = 0.5, 0.4 on the kept examples 0 and 2
    assert terms["examples"] == 2
    assert terms["best_over_empty"] == pytest.approx((0.5 / 0.4 + 0.4 / 0.4) / 2)
    assert terms["method_over_empty"] == pytest.approx((0.2 / 0.4 + 0.4 / 0.4) / 2)
    assert terms["method_over_best"] == pytest.approx((0.2 / 0.5 + 0.4 / 0.4) / 2)
    with pytest.raises(KeyError, match="smoothgrad"):
        script.scale_terms(ORDERINGS, [1, 1, 1], "smoothgrad", keep)


def write_record(folder: Path, orderings: dict[str, dict[str, list]]) -> None:
    folder.mkdir(parents=True)
    record = {"examples": {"label": [1, 1, 1]}, "orderings": {"delete": orderings}}
    with gzip.open(folder / "eval.json.gz", "wt") as handle:
        json.dump(record, handle)


def test_main_pairs_the_examples_every_arm_can_use(tmp_path: Path, capsys):
    """Arm b's d0 is below 0.05 on example 0, so both arms are averaged over example 2 only (arm a alone
    would average examples 0 and 2: best / d0 1.125)."""
    write_record(tmp_path / "a_seed0_lr0.0001", ORDERINGS)
    b_empty = [0.88, 0.5, 0.5]  # d0 = 0.02, 0.3, 0.2
    write_record(
        tmp_path / "b_seed0_lr0.0001",
        {name: {**o, "p_empty": b_empty} for name, o in ORDERINGS.items()},
    )
    load_script("normalisation_scale").main(
        ["--records", str(tmp_path), "--arms", "a,b", "--seeds", "0", "--removals", "delete"]
    )
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split("|")[1:-1] for line in lines if line.startswith("| delete")]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["delete", "0", "a", "1", "1.000", "1.000", "1.000"],
        ["delete", "0", "b", "1", "2.000", "2.000", "1.000"],  # best 0.4 and IG 0.4 over d0 0.2
    ]


def test_missing_record_names_the_folder(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"sgt_seed3_lr\*/eval.json.gz, found 0"):
        load_script("normalisation_scale").main(["--records", str(tmp_path), "--arms", "sgt", "--seeds", "3"])
