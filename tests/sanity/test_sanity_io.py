"""sanity.json's generic non-finite-float codec, the typed result's dict round trip, and the verdict row that
every verdict table (terminal, HTML, Markdown) renders from (pure functions, no model)."""

from __future__ import annotations

import json
import math

import pytest

from sgt_nlp.report.sanity_tables import markdown_table, summary_table, verdict_rows, verdict_table_html
from sgt_nlp.sanity import MEASURES, SanityResult
from sgt_nlp.sanity.io import (
    decode_non_finite,
    dumps_json,
    encode_non_finite,
    load_sanity,
    loads_json,
    write_outputs,
)


def test_non_finite_floats_round_trip_at_any_depth_and_none_stays_none():
    value = {"a": math.nan, "b": [1.5, -math.inf, {"c": math.inf}], "d": None, "e": (0.0, "x"), "f": "NaN?"}
    encoded = encode_non_finite(value)
    assert encoded == {
        "a": "NaN",
        "b": [1.5, "-Infinity", {"c": "Infinity"}],
        "d": None,
        "e": [0.0, "x"],
        "f": "NaN?",
    }
    text = dumps_json(value, indent=None)
    json.loads(text, parse_constant=lambda token: pytest.fail(f"bare {token} in strict JSON"))
    back = loads_json(text)
    assert math.isnan(back["a"]) and back["b"][1] == -math.inf and back["b"][2]["c"] == math.inf
    assert back["d"] is None and back["e"] == [0.0, "x"] and back["f"] == "NaN?"
    assert decode_non_finite(["Infinity", "nan", 2]) == [math.inf, "nan", 2]  # only the exact spellings


def _result(class_rho: float = -0.25, top: float = math.nan) -> SanityResult:
    summary = {"mean": class_rho, "std": 0.1, "n": 4, "excluded": 1}
    method = {
        "label": "gradient/l2",
        "method": "gradient",
        "aggregation": "l2",
        "signed": False,
        "params": {},
        "class_sensitivity": {m: dict(summary) for m in MEASURES},
        "precision": {"spearman": 0.97, "examples": 4, "median_max_abs_score": 1.0, "verdict": "ok"},
        "class_verdict": "sensitive",
        "class_verdict_measure": "spearman",
        "cascading": [{"stage": "classifier", **{m: {**summary, "mean": top} for m in MEASURES}}],
        "randomization_similarity": top,
        "randomization_stage": "classifier",
        "randomization_verdict": "degenerate",
    }
    return SanityResult(
        model_class="M",
        model_type=None,
        num_labels=2,
        examples=4,
        settings={"max_stages": None},
        original={"accuracy": None, "agreement": 1.0},
        stages=[{"stage": "classifier", "modules": ["c"]}],
        randomization={
            "cascading": [{"stage": "classifier", "accuracy": None, "agreement": 0.5, "modules": ["c"]}]
        },
        methods=[method],
        seconds=1.0,
        inputs={"model": "m_dir", "labels": ["NaN", "POS"]},
    )


def test_result_writes_strict_json_and_reads_back_typed(tmp_path):
    result = _result()
    data = result.to_dict()
    assert (
        data["model"] == "m_dir" and "inputs" not in data and list(data)[:2] == ["model_class", "model_type"]
    )
    write_outputs(result, tmp_path)
    loaded = load_sanity(tmp_path)
    assert math.isnan(loaded["methods"][0]["randomization_similarity"])
    assert loaded["original"]["accuracy"] is None and loaded["settings"]["max_stages"] is None
    again = SanityResult.from_dict(loaded)
    assert again.inputs["model"] == "m_dir" and again.method("gradient/l2")["class_verdict"] == "sensitive"
    with pytest.raises(KeyError, match="gradient/l2"):
        again.method("random")
    assert "<td class='name'>gradient/l2</td>" in (tmp_path / "sanity.html").read_text()


def test_one_verdict_row_feeds_the_terminal_html_and_markdown_tables():
    result = _result(class_rho=-0.25, top=math.nan)
    (row,) = verdict_rows(result)
    assert (row.class_rho, row.excluded, row.signed, row.randomization_verdict) == (
        -0.25,
        1,
        False,
        "degenerate",
    )
    assert math.isnan(row.randomization_rho) and row.all_randomised_rho is not None
    terminal = summary_table(result).splitlines()[2]
    assert terminal.split()[:5] == ["gradient/l2", "no", "+0.970", "-0.250", "-0.250"]
    assert terminal.split()[-3:] == ["-", "-", "degenerate"]  # NaN after the top stage: a dash, twice
    assert "<td>-0.250</td><td>-0.250</td><td>-0.250</td><td>-0.250</td><td>1</td>" in verdict_table_html(
        result
    )
    assert (
        markdown_table({"m": result}).splitlines()[2]
        == "| m | `gradient/l2` | no | -0.250 | sensitive | – | degenerate |"
    )


def test_verdict_tables_say_what_each_column_measures():
    from sgt_nlp.report.sanity_tables import LEGEND

    result = _result(class_rho=-0.25, top=math.nan)
    terminal = summary_table(result)
    header = terminal.splitlines()[0]
    for head in ("fp32~fp64 ρ", "ρ vs other class", "ρ|·| vs other class", "ρ|·| after top rand."):
        assert head in header
    assert terminal.splitlines()[-1] == LEGEND and "Spearman" in LEGEND
    page = verdict_table_html(result)
    assert "<th>ρ vs other class</th>" in page and "<th>ρ |·| after head + top layer re-drawn</th>" in page
    assert "<p class='legend'>ρ: Spearman rank correlation" in page
