"""The report explains itself: every column and metric defined on the page, no empty panel or column, legends
beside the curves rather than over them, the methods of a verdict in the tables, and (in headless Chromium)
tables that fit a 1400 px window."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from sgt_nlp.report import build_report, load_eval_dir
from sgt_nlp.report.eval_runs import merge_methods
from sgt_nlp.report.glossary import TERMS
from sgt_nlp.report.plots import Series, figure
from tests.report.test_report import _chromium, _chromium_command, _write_eval_dir


def _without_masked_accuracy(folder: Path) -> None:
    """As the experiment runner writes a folder: no masked-accuracy curve, its summary column None."""
    summary = json.loads((folder / "summary.json").read_text())
    for row in summary:
        row["masked_accuracy_auc"] = None
    (folder / "summary.json").write_text(json.dumps(summary))
    for curves_path in folder.glob("*/curves.json"):
        curves = json.loads(curves_path.read_text())
        curves["masked_accuracy"] = {"fractions": [], "accuracy": []}
        curves_path.write_text(json.dumps(curves))


@pytest.fixture(scope="module")
def demo_like(tmp_path_factory) -> dict:
    """Three models as the demo reports them: the l2 gradient merged in from a second folder, a verdict and a
    bottom line, no masked-accuracy curve; an earlier masked_accuracy.png lies beside the page."""
    root = tmp_path_factory.mktemp("demo_like")
    runs = []
    for seed, name in enumerate(("plain", "sgt", "random_mask")):
        main = _write_eval_dir(root / "main", name, seed)["dir"]
        l2 = _write_eval_dir(root / "l2", name, seed + 10)["dir"]
        for folder in (main, l2):
            _without_masked_accuracy(folder)
        runs.append(merge_methods(load_eval_dir(main), load_eval_dir(l2), {"gradient": "gradient_l2"}))
    out = root / "out"
    out.mkdir()
    (out / "masked_accuracy.png").write_bytes(b"stale")
    verdict = [
        "Accuracy: SGT +0.010 [-0.010, +0.030] vs plain (test, 1 seed(s)); ...",
        "Gradient (l2, the trained score): comprehensiveness NAOPC: SGT helped (+0.050 [+0.020, +0.080] vs "
        "plain).",
        "Random: comprehensiveness AOPC: SGT made no difference beyond noise (+0.001 [-0.010, +0.012] vs "
        "plain).",
    ]
    path = build_report(runs, out / "report.html", verdict=verdict, bottom_line="SGT helped Gradient (l2).")
    return {"path": path, "html": path.read_text(), "out": out}


def test_methods_of_another_folder_are_merged_under_their_new_name(demo_like):
    page = demo_like["html"]
    table = page.split('id="metrics-table"')[1].split("</table>")[0]
    rows = set(re.findall(r'data-model="([^"]+)" data-method="([^"]+)"', table))
    assert rows == {
        (m, k) for m in ("plain", "sgt", "random_mask") for k in ("gradient_l2", "gradient", "random")
    }
    assert ">Gradient (l2, the trained score)</td>" in table and ">Gradient (signed_mean)</td>" in table
    # and their heatmaps: one per example x model x method
    assert page.count('<div class="heatmap"') == 4 * 3 * 3


def test_every_term_on_the_page_is_defined_once_in_one_line(demo_like):
    page = demo_like["html"]
    glossary = page.split('<dl class="glossary">')[1].split("</dl>")[0]
    defined = re.findall(r'<dt id="def-([^"]+)" data-term="\1">', glossary)
    assert len(defined) == len(set(defined))
    used = set(re.findall(r'data-term="([^"]+)"', page)) - set(defined)
    assert not used, f"used on the page but not defined: {used}"
    for term in ("naopc", "auprc", "comprehensiveness_aopc", "interval", "noise", "gradient_l2"):
        assert term in defined
    definitions = re.findall(r"<dd>(.*?)</dd>", glossary)
    assert all(0 < len(d) <= 220 and "\n" not in d for d in definitions)
    assert set(TERMS) >= set(defined)


def test_bottom_line_comes_first(demo_like):
    page = demo_like["html"]
    assert page.index('id="bottom-line"') < page.index('id="verdict"') < page.index('id="how-to-read"')
    assert "SGT helped Gradient (l2)." in page.split('id="bottom-line"')[1].split("</section>")[0]


def test_no_empty_panel_or_column(demo_like):
    page, out = demo_like["html"], demo_like["out"]
    assert 'id="plot-masked-accuracy"' not in page and not (out / "masked_accuracy.png").exists()
    assert 'data-term="masked_accuracy_auc"' not in page
    assert page.count("data:image/png;base64,") == 2
    assert 'data-term="removal"' not in page.split('id="metrics-table"')[1].split("</table>")[0]
    assert "replaced by <code>delete</code> in every row" in page


def test_no_curves_section_without_curves(tmp_path):
    folder = _write_eval_dir(tmp_path, "plain", seed=1)["dir"]
    for curves in folder.glob("*/curves.json"):
        curves.unlink()
    page = build_report([folder], tmp_path / "r.html").read_text()
    assert 'id="curves"' not in page and "no data in the evaluation folders" not in page


def test_legends_sit_outside_the_axes():
    import matplotlib.pyplot as plt

    models, methods = (
        ["plain", "sgt", "random_mask"],
        ["gradient_l2", "gradient", "integrated_gradients", "random"],
    )
    series = [Series(m, k, [1, 5, 10, 20, 50], [0.1, 0.3, 0.5, 0.8, 1.0]) for m in models for k in methods]
    fig = figure(series, models, methods, "t", "x", "y", note="a note")
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        (ax,) = fig.axes
        axes_box = ax.get_window_extent(renderer)
        assert len(fig.legends) == 2 and not ax.get_legend()
        for legend in fig.legends:
            box = legend.get_window_extent(renderer)
            assert box.y1 < axes_box.y0, "a legend overlaps the plotting area"
            assert box.x0 >= 0 and box.x1 <= fig.bbox.x1 + 1
    finally:
        plt.close(fig)


LAYOUT_PROBE = """<script>
window.addEventListener('load', () => {
  const wide = [...document.querySelectorAll('.table-wrap')]
    .filter(w => w.scrollWidth > w.clientWidth + 1).map(w => w.firstElementChild && w.firstElementChild.id);
  document.body.setAttribute('data-overflowing', JSON.stringify(wide));
  document.body.setAttribute('data-page-width', String(document.documentElement.scrollWidth));
});
</script></body>"""


def _probe(page: str, tmp_path: Path) -> tuple[list[str], int]:
    """The ids of the tables wider than their box, and the page's width, at a 1400 px window."""
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", LAYOUT_PROBE))
    done = subprocess.run(
        [*_chromium_command(tmp_path / "profile"), "--window-size=1400,1000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    overflowing = re.search(r'data-overflowing="([^"]*)"', done.stdout)
    width = re.search(r'data-page-width="(\d+)"', done.stdout)
    assert overflowing and width, "the probe did not run"
    return json.loads(overflowing.group(1).replace("&quot;", '"')), int(width.group(1))


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed")
def test_tables_fit_1400_px_in_headless_chromium(demo_like, tmp_path):
    """The page itself has no script; a copy with a probe measures every table's box at 1400 px."""
    overflowing, width = _probe(demo_like["html"], tmp_path)
    assert overflowing == [] and width <= 1400


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed")
def test_the_sanity_section_fits_1400_px_too(demo_like, tmp_path):
    from tests.sanity.test_sanity_io import _result

    root = demo_like["path"].parent.parent
    folders = [root / "main" / f"eval_{name}" for name in ("plain", "sgt")]
    page = build_report(folders, tmp_path / "r.html", sanity={"sanity": _result()}).read_text()
    assert 'id="sanity"' in page and "<p class='legend'>" in page
    overflowing, width = _probe(page, tmp_path)
    assert overflowing == [] and width <= 1400
