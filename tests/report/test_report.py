"""The HTML report and the heatmap helpers, on evaluation folders built exactly as docs/evaluation_output.md
says."""

from __future__ import annotations

import html
import json
import random
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from sgt_nlp.report import (
    METRIC_COLUMNS,
    PLOT_FILES,
    build_report,
    load_eval_dir,
    normalise,
    render_heatmap_page,
    render_html_heatmap,
    render_terminal_heatmap,
)
from sgt_nlp.synthetic import SyntheticConfig, generate_split

METHODS = ("gradient", "random")
MODELS = ("plain", "sgt")
HOSTILE_WORD = "<script>alert('x')</script>&"
AOPC_THRESHOLDS = [0.01, 0.05, 0.1, 0.2, 0.5]
FRACTIONS = [round(0.1 * i, 1) for i in range(10)]


def _write_eval_dir(root: Path, model_name: str, seed: int, n_examples: int = 4) -> dict:
    """One ``sgt-nlp evaluate`` output folder with random metric values; returns what was written."""
    rng = random.Random(seed)
    out = root / f"eval_{model_name}"
    out.mkdir(parents=True)
    run = {
        "model": f"/models/{model_name}",
        "model_name": model_name,
        "data_dir": "/data/synthetic",
        "split": "test",
        "examples": n_examples,
        "labels": ["NEG", "POS"],
        "methods": list(METHODS),
        "removal": "delete",
        "aggregation": "signed_mean",
        "word_aggregation": "first",
        "max_length": 256,
        "threshold": 0.0935,
        "aopc_thresholds": AOPC_THRESHOLDS,
        "truncation": {"examples": n_examples, "examples_truncated": 0, "words": 400, "words_truncated": 0},
        "processes": 1,
        "seconds": 1.5,
    }
    if model_name == "sgt":
        run["sgt_settings"] = {"sgt_mask_fraction": 0.5, "sgt_kl_weight": 1.0}
    (out / "run.json").write_text(json.dumps(run))
    summary = []
    accuracy = rng.uniform(0.8, 0.99)
    for method in METHODS:
        row = {"model_name": model_name, "method": method, "accuracy": accuracy, "macro_f1": accuracy - 0.01}
        row |= {key: rng.uniform(0.0, 1.0) for key, _, _ in METRIC_COLUMNS if key not in row}
        row |= {
            "average_precision": row["auprc"],
            "roc_auc": rng.random(),
            "tokens_to_flip": 0.1,
            "seconds": 2.0,
        }
        summary.append(row)
        method_dir = out / method
        method_dir.mkdir()
        curves = {
            "aopc": {
                "thresholds": AOPC_THRESHOLDS,
                "comprehensiveness": sorted(rng.random() for _ in AOPC_THRESHOLDS),
                "sufficiency": sorted((rng.random() for _ in AOPC_THRESHOLDS), reverse=True),
            },
            "masked_accuracy": {
                "fractions": FRACTIONS,
                "accuracy": sorted((rng.uniform(0.5, 1.0) for _ in FRACTIONS), reverse=True),
            },
        }
        (method_dir / "curves.json").write_text(json.dumps(curves))
        (method_dir / "scores.json").write_text(json.dumps({"evaluation_settings": {}}))
        (method_dir / "results.jsonl").write_text("")
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "summary.md").write_text("| model | method |\n")
    examples = []
    config = SyntheticConfig(seed=3, min_words=20, max_words=30)
    for i, ex in enumerate(generate_split("test", n_examples, config)):
        words = list(ex.tokens)
        rationale = [0] * len(words)
        for start, end, _ in ex.spans:
            rationale[start:end] = [1] * (end - start)
        if i == 0:
            words[1] = HOSTILE_WORD
        scores = {
            "gradient": [rng.uniform(-1, 1) for _ in words],  # signed
            "random": [rng.random() for _ in words],  # positive-only
        }
        prediction = ex.label if rng.random() < 0.7 else ("POS" if ex.label == "NEG" else "NEG")
        examples.append(
            {
                "annotation_id": ex.annotation_id,
                "label": ex.label,
                "prediction": prediction,
                "words": words,
                "rationale": rationale,
                "scores": scores,
            }
        )
    (out / "examples.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples))
    return {"dir": out, "summary": summary, "examples": examples}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("report")
    folders = [_write_eval_dir(root, name, seed) for seed, name in enumerate(MODELS)]
    html_path = build_report([f["dir"] for f in folders], root / "out" / "report.html")
    return {"root": root, "folders": folders, "html_path": html_path, "html": html_path.read_text()}


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_writes_html_and_pngs(report):
    out = report["html_path"].parent
    assert report["html_path"].name == "report.html"
    for name in PLOT_FILES.values():
        path = out / name
        width, height = _png_size(path)
        assert width >= 600 and height >= 400
        assert path.stat().st_size > 10_000, f"{name} looks empty"
    page = report["html"]
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Saliency evaluation report</title>" in page
    assert 'id="how-to-read"' in page
    # standalone: no external resources of any kind
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script" not in page
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page))
    assert page.count("data:image/png;base64,") == 3


def test_metrics_table_has_every_value(report):
    page = report["html"]
    table = page[page.index('id="metrics-table"') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr[^>]*data-model=\"([^\"]+)\" data-method=\"([^\"]+)\"", table)
    assert sorted(rows) == sorted((m, k) for m in MODELS for k in METHODS)
    for folder in report["folders"]:
        for row in folder["summary"]:
            for key, _, _ in METRIC_COLUMNS:
                assert f'data-value="{row[key]!r}"' in table
                assert f">{row[key]:.3f}<" in table
    assert 'id="delta-table"' in page


def test_best_value_per_method_is_bold(report):
    table = report["html"].split('id="metrics-table"')[1].split("</table>")[0]
    for method in METHODS:
        values = [
            row["auprc"]
            for folder in report["folders"]
            for row in folder["summary"]
            if row["method"] == method
        ]
        assert f'data-metric="auprc" data-value="{max(values)!r}" class="best"' in table
        assert f'data-metric="auprc" data-value="{min(values)!r}">' in table


def test_every_shared_example_is_shown_for_every_model_and_method(report):
    page = report["html"]
    examples = report["folders"][0]["examples"]
    sections = re.findall(r'<section class="example" id="example-\d+" data-annotation-id="([^"]+)"', page)
    assert sections == [ex["annotation_id"] for ex in examples]
    # one heatmap per example x model x method, each with one span per word
    assert page.count('<div class="heatmap"') == len(examples) * len(MODELS) * len(METHODS)
    for ex in examples:
        section = page.split(f'data-annotation-id="{ex["annotation_id"]}"')[1].split("</section>")[0]
        heatmaps = re.findall(r'<div class="heatmap" data-scale="(\w+)">(.*?)</div>', section)
        assert [scale for scale, _ in heatmaps] == ["signed", "signed", "positive", "positive"]
        for _, body in heatmaps:
            spans = re.findall(r'<span class="(w r|w)"[^>]*>(.*?)</span>', body)
            assert [html.unescape(text) for _, text in spans] == ex["words"]
            assert [int(cls == "w r") for cls, _ in spans] == ex["rationale"]


def test_text_is_escaped(report):
    page = report["html"]
    assert HOSTILE_WORD not in page
    assert html.escape(HOSTILE_WORD) in page


def test_rationale_words_are_underlined_in_css(report):
    assert re.search(r"\.heatmap \.r \{[^}]*text-decoration: underline", report["html"])


def test_missing_curves_and_examples_are_reported_not_fatal(tmp_path):
    folder = _write_eval_dir(tmp_path, "plain", seed=5)["dir"]
    (folder / "random" / "curves.json").unlink()
    (folder / "examples.jsonl").unlink()
    run = load_eval_dir(folder)
    assert any("random/curves.json" in p for p in run.problems)
    page = build_report([folder], tmp_path / "out").read_text()
    assert "examples.jsonl is missing" in page
    assert "No example is shared" in page
    assert (tmp_path / "out" / "report.html").is_file()


def test_same_model_names_are_disambiguated(tmp_path):
    a = _write_eval_dir(tmp_path / "seed0", "sgt", seed=1)["dir"]
    b = _write_eval_dir(tmp_path / "seed1", "sgt", seed=2)["dir"]
    page = build_report([a, b], tmp_path / "r.html").read_text()
    rows = set(re.findall(r'data-model="([^"]+)" data-method="gradient"', page))
    assert len(rows) == 2


def test_not_an_evaluation_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="run.json"):
        build_report([tmp_path], tmp_path / "r.html")


# ------------------------------------------------------------------------------------------------ heatmaps


def test_normalise_signed_and_positive():
    assert normalise([-2.0, 1.0, 0.0]) == [-1.0, 0.5, 0.0]
    assert normalise([0.0, 0.5, 2.0]) == [0.0, 0.25, 1.0]
    assert normalise([0.0, 0.0]) == [0.0, 0.0]
    assert normalise([float("nan"), 1.0]) == [0.0, 1.0]


def test_html_heatmap_colours_follow_the_scale():
    out = render_html_heatmap(["a", "b", "c"], [-1.0, 0.0, 1.0], rationale=[0, 1, 0])
    backgrounds = re.findall(r"background:(#[0-9a-f]{6})", out)
    assert backgrounds[1] == "#ffffff"
    assert backgrounds[0] != backgrounds[2]
    r0, b0 = int(backgrounds[0][1:3], 16), int(backgrounds[0][5:7], 16)
    r2, b2 = int(backgrounds[2][1:3], 16), int(backgrounds[2][5:7], 16)
    assert b0 > r0 and r2 > b2  # negative blue, positive red
    assert '<span class="w r"' in out and 'data-scale="signed"' in out
    with pytest.raises(ValueError):
        render_html_heatmap(["a"], [1.0, 2.0])


def test_terminal_heatmap():
    words = ["alpha", "beta", "gamma", "delta"] * 10
    scores = [float(i) for i in range(len(words))]
    out = render_terminal_heatmap(words, scores, rationale=[1] + [0] * (len(words) - 1), width=40)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    lines = plain.splitlines()
    assert all(len(line) <= 40 for line in lines[:-1])
    assert " ".join(lines[:-1]).split() == words
    assert "\x1b[4malpha" in out  # rationale underlined
    assert "\x1b[48;2;255;255;255m" in out  # score 0 is white
    assert "\x1b[48;5;" in render_terminal_heatmap(["x"], [1.0], truecolor=False)


def test_heatmap_page_is_standalone_and_escaped():
    page = render_heatmap_page(
        "explain <model>", [("text 1 → POS", ["a", "<b>"], [0.5, -0.2], None), ("text 2", ["c"], [1.0], [1])]
    )
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "explain &lt;model&gt;" in page and "&lt;b&gt;" in page and "<b>" not in page
    assert page.count('<div class="heatmap"') == 2
    assert 'data-scale="signed"' in page and 'data-scale="positive"' in page


# ------------------------------------------------------------------------------------------------ browser


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _chromium_command(profile: Path) -> list[str]:
    return [
        _chromium(),
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
    ]


def _console_errors(log: str) -> list[str]:
    """Page console messages (JS errors print as ``INFO:CONSOLE ... "Uncaught ..."``) in Chromium's log."""
    return [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(report, tmp_path):
    common = _chromium_command(tmp_path / "profile")
    url = report["html_path"].resolve().as_uri()
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="metrics-table"' in dom.stdout
    assert dom.stdout.count('class="heatmap"') == len(report["folders"][0]["examples"]) * 4
    assert "Saliency evaluation report" in dom.stdout
    screenshot = tmp_path / "report.png"
    shot = subprocess.run(
        [*common, f"--screenshot={screenshot}", "--window-size=1400,2400", "--hide-scrollbars", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert _png_size(screenshot) == (1400, 2400)
    assert screenshot.stat().st_size > 100_000  # a blank page compresses to a few kB
    assert not _console_errors(dom.stderr) and not _console_errors(shot.stderr)

    # negative control: the same check must catch a broken page, or the assertion above proves nothing
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    bad = subprocess.run(
        [*_chromium_command(tmp_path / "profile2"), "--dump-dom", broken.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert any("undefinedFunction" in line for line in _console_errors(bad.stderr))


# ---- removal modes and noise -------------------------------------------------------------------------------


def test_paired_bootstrap_tells_a_shift_from_noise():
    from sgt_nlp.report.noise import compare, paired_bootstrap_interval

    base = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}
    shifted = {k: v + 0.05 for k, v in base.items()}
    assert paired_bootstrap_interval([0.05] * 4) == pytest.approx((0.05, 0.05))
    assert compare(base, shifted, +1)[0] == "better" and compare(base, shifted, -1)[0] == "worse"
    # the same mean shift of 0 with per-example swings of +-0.1: the interval straddles 0
    swinging = {k: v + d for (k, v), d in zip(base.items(), (0.1, -0.1, 0.1, -0.1), strict=True)}
    verdict, (low, high), shared = compare(base, swinging, +1)
    assert verdict == "noise" and low < 0 < high and shared == 4
    assert compare(base, {"z": 1.0}, +1) == ("unknown", None, 0)


@pytest.fixture(scope="module")
def two_evaluations(tmp_path_factory):
    """The same tiny model evaluated twice (two names), and another model, each with two removal modes."""
    from sgt_nlp.evaluation import EvaluationConfig, evaluate_folder
    from tests import tiny
    from tests.toy_data import write_eraser

    root = tmp_path_factory.mktemp("evals")
    data = write_eraser(root / "data")
    folders = {}
    for name, seed in (("first", 3), ("again", 3), ("other", 4)):
        model_dir = root / f"model_{seed}"
        if not model_dir.is_dir():
            model = tiny.tiny_model("bert", seed=seed)
            model.config.id2label, model.config.label2id = {0: "NEG", 1: "POS"}, {"NEG": 0, "POS": 1}
            model.save_pretrained(model_dir)
            tiny.wordpiece_tokenizer().save_pretrained(model_dir)
        config = EvaluationConfig(
            model=str(model_dir),
            data_dir=str(data),
            output_dir=str(root / name),
            split="val",
            methods=("gradient", "random"),
            removal="delete",
            extra_removals=("mask_token",),
            model_name=name,
            batch_size=4,
        )
        evaluate_folder(config)
        folders[name] = root / name
    return folders


def test_per_example_values_average_to_the_summary(two_evaluations):
    from sgt_nlp.report.noise import PER_EXAMPLE_METRICS, per_example_faithfulness

    for removal_dir in (two_evaluations["other"], two_evaluations["other"] / "removal_mask_token"):
        for method in ("gradient", "random"):
            values = per_example_faithfulness(removal_dir / method / "results.jsonl")
            scores = json.loads((removal_dir / method / "scores.json").read_text())["classification_scores"]
            for key in PER_EXAMPLE_METRICS:
                assert len(values[key]) == 8
                assert sum(values[key].values()) / 8 == pytest.approx(scores[key], abs=1e-12)


def test_report_shows_every_removal_mode_and_marks_noise(two_evaluations, tmp_path):
    folders = two_evaluations
    run = load_eval_dir(folders["first"])
    assert run.removals == ["delete", "mask_token"]
    page = build_report(
        [folders["first"], folders["again"], folders["other"]], tmp_path / "r.html"
    ).read_text()
    table = page.split('id="metrics-table"')[1].split("</table>")[0]
    rows = set(re.findall(r'data-model="([^"]+)" data-method="([^"]+)" data-removal="([^"]+)"', table))
    assert rows == {
        (m, k, r)
        for m in ("first", "again", "other")
        for k in ("gradient", "random")
        for r in ("delete", "mask_token")
    }
    delta = page.split('id="delta-table"')[1].split("</table>")[0]
    delta_rows = re.findall(
        r"<tr><th scope=\"row\">(.*?)</th><td class=\"method\" data-term=\"(\w+)\"[^>]*>[^<]*</td>"
        r"<td class=\"removal\">(\w+)</td>(.*?)</tr>",
        delta,
    )
    assert (
        len(delta_rows) == 2 * 2 * 2
    )  # two later models x two methods x two removal modes, never across modes
    for models, _, _, cells in delta_rows:
        verdicts = re.findall(r'data-verdict="(\w+)"', cells)
        # comprehensiveness and sufficiency from three measures (no bounds.jsonl: NAOPC with all-order
        # bounds not measured, named in the title; Random has no "minus Random")
        three = re.findall(r'data-measures-verdict="([^"]+)" title="([^"]+)"', cells)
        assert len(three) == 2 and all("naopc_bounds: not measured" in title for _, title in three)
        if models.startswith("again"):  # the same model again: every difference is 0, so all of it is noise
            assert verdicts and set(verdicts) == {"noise"}
            assert {verdict for verdict, _ in three} == {"within noise"}
        assert "[" in cells  # faithfulness columns carry their bootstrap interval


def test_three_measure_verdict_of_two_evaluations_reads_bounds_jsonl(tmp_path):
    """Per annotation: raw AOPC, minus the model's Random AOPC, NAOPC with bounds.jsonl's all-order bounds;
    the verdict needs all three, and a normaliser that flips one measure makes it 'depends on
    normalisation'."""
    import numpy as np

    from sgt_nlp.report.noise import measures, read_bounds, three_measure_verdict

    ids = [f"a{i}" for i in range(40)]
    path = tmp_path / "bounds.jsonl"
    lines = [
        {
            "annotation_id": a,
            "removal": "delete",
            "comprehensiveness_aopc_low": 0.0,
            "comprehensiveness_aopc_high": 1.0,
            "sufficiency_aopc_low": 0.0,
            "sufficiency_aopc_high": 1.0,
        }
        for a in ids
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    bounds = read_bounds(path)["delete"]
    rng = np.random.default_rng(0)
    base_aopc = {a: 0.3 + 0.01 * rng.normal() for a in ids}
    random_aopc = {a: 0.1 for a in ids}
    base = measures(base_aopc, random_aopc, bounds, "comprehensiveness")
    better = measures({a: v + 0.2 for a, v in base_aopc.items()}, random_aopc, bounds, "comprehensiveness")
    verdict, shown = three_measure_verdict(base, better, +1)
    assert verdict == "better" and shown["naopc_bounds"][0] == "better"
    # the other model's bounds are wider: its NAOPC falls although its AOPC rises
    wide = {a: {**line, "comprehensiveness_aopc_high": 3.0} for a, line in bounds.items()}
    flipped = measures({a: v + 0.2 for a, v in base_aopc.items()}, random_aopc, wide, "comprehensiveness")
    assert three_measure_verdict(base, flipped, +1)[0] == "depends on normalisation"
    without = measures(base_aopc, random_aopc, {}, "comprehensiveness")
    assert three_measure_verdict(without, {**better, "naopc_bounds": None}, +1)[0] == (
        "better (NAOPC with all-order bounds not measured)"
    )
