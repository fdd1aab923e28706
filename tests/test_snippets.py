"""Every ```bash and ```python block of the README and of docs/ runs as written (so that none goes stale),
unless the line before it is an ``<!-- illustrative: why -->`` comment; and the demo's report explains itself.

One ``sgt-nlp demo --quick`` runs per module (in a scratch folder); each Markdown file then runs its blocks in
order, in a scratch folder of its own that links to that demo (``sgt_demo``), so that two pages may use the
same output folder names. ``sgt-nlp`` commands run in this process (a subprocess per command would spend its
time importing transformers again); ``python scripts/...`` lines run as subprocesses. The README's first two
commands are the demo itself (run by the fixture, as ``--quick``) and this suite. The README's Trainer diff
runs too: its new side, on the demo's initial model and data.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sgt_nlp.cli import main
from tests.toy_data import ROOT

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
ILLUSTRATIVE = re.compile(r"^<!--\s*illustrative\b.*-->\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    illustrative: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` with its language and whether the comment above marks it
    illustrative."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        found.append(
            Block(
                path, i + 1, match.group(1), "\n".join(lines[i + 1 : end]), bool(ILLUSTRATIVE.match(before))
            )
        )
        i = end + 1
    return found


def runnable(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.language in ("bash", "python") and not b.illustrative]


def bash_commands(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\s*\\\n\s*", " ", code)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


# ---- the parser itself -------------------------------------------------------------------------------------


def test_blocks_are_found_with_their_language_and_mark(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```bash\nsgt-nlp demo \\\n  --quick\n# a comment\n```\n\n<!-- illustrative: GPU -->\n"
        "```bash\nsgt-nlp experiment --preset gpu\n```\n```python\nprint(1)\n```\n```\nplain\n```\n"
    )
    found = blocks(page)
    assert [(b.language, b.illustrative) for b in found] == [
        ("bash", False),
        ("bash", True),
        ("python", False),
        ("", False),
    ]
    assert bash_commands(found[0].code) == ["sgt-nlp demo --quick"]
    assert [b.line for b in runnable(page)] == [2, 12]


def test_the_readme_is_a_front_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[:2] == ["Reading the demo's bottom line", "Three examples"]
    assert {"User guide", "Results", "Security"} <= set(headings)
    for link in ("docs/index.md", "docs/results.md", "docs/security.md"):
        assert f"]({link})" in text
    # every page of the guide the README links to exists (docs/security.md is the lead's to write)
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file() or link == "docs/security.md", link


def test_every_block_of_the_front_page_and_the_guide_names_its_language():
    """An unnamed fence would escape the runner: the README and the guide's pages name every block's
    language (the reference pages' unnamed blocks are file trees and records of past runs)."""
    guide = ("index", "training", "models", "evaluation", "experiments_guide", "benchmarks")
    for page in [README, *(ROOT / "docs" / f"{name}.md" for name in guide)]:
        assert all(b.language for b in blocks(page)), [b.where for b in blocks(page) if not b.language]


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped (not - and _), spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_links_between_the_pages_point_at_existing_pages_and_headings():
    for page in [README, *(ROOT / "docs").glob("*.md")]:
        for target, anchor in re.findall(
            r"\]\(([\w./-]*\.md)(?:#([^)]+))?\)", page.read_text(encoding="utf-8")
        ):
            linked = (page.parent / target).resolve()
            if linked.name == "security.md" and not linked.is_file():
                continue  # the lead writes docs/security.md
            assert linked.is_file(), f"{page.name} links to {target}"
            assert not anchor or anchor in _anchors(linked), f"{page.name} links to {target}#{anchor}"


def test_every_guide_page_is_listed_in_the_index():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    for page in (ROOT / "docs").glob("*.md"):
        assert page.name == "index.md" or f"]({page.name})" in index, page.name


# ---- the blocks run ----------------------------------------------------------------------------------------


def _in_process(argv: list[str], capsys: pytest.CaptureFixture[str], where: str) -> None:
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 0, f"{where}: sgt-nlp {' '.join(argv)}\n{out[-2000:]}\n{err[-3000:]}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sgt-nlp demo --quick`` once, as the README's first command (minus the install) runs it."""
    root = tmp_path_factory.mktemp("demo")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["demo", "--quick"]) == 0
    finally:
        os.chdir(cwd)
    assert (root / "sgt_demo" / "report.html").is_file()
    return root / "sgt_demo"


def run_command(command: str, capsys: pytest.CaptureFixture[str], where: str) -> None:
    if command.startswith("pip install") and command.endswith("&& sgt-nlp demo"):
        return  # the README's first command: the module's demo fixture (CI runs it in full)
    if command == "python -m pytest -q":
        return  # this suite
    args = shlex.split(command)
    if args[0] == "sgt-nlp":
        _in_process(args[1:], capsys, where)
        return
    if args[0] == "python" and len(args) > 1 and args[1].startswith("scripts/"):
        done = subprocess.run(
            [sys.executable, str(ROOT / args[1]), *args[2:]],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        )
        assert done.returncode == 0, f"{where}: {command}\n{done.stderr[-3000:]}"
        return
    raise AssertionError(f"{where}: no rule to run {command!r}; mark the block illustrative or add one here")


def run_python(block: Block) -> None:
    namespace = {"__name__": "__snippet__"}
    exec(compile(block.code, block.where, "exec"), namespace)  # noqa: S102 - the documentation's own code


def write_my_texts(demo: Path, path: Path) -> None:
    """The reader's own CSV that the README's example converts: the demo's test texts and labels."""
    from sgt_nlp.eraser import load_split

    split = load_split(demo / "seed0" / "data", "test")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for annotation in split.annotations:
            words = [w for docid in annotation.docids for w in split.documents[docid].tokens]
            writer.writerow([" ".join(words), annotation.classification])


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_of_the_page_runs(page, demo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sgt_demo").symlink_to(demo, target_is_directory=True)
    if page == README:  # the README converts "your" CSV: here one of the demo's texts
        write_my_texts(demo, tmp_path / "my_texts.csv")
    for block in runnable(page):
        if block.language == "python":
            run_python(block)
        else:
            for command in bash_commands(block.code):
                run_command(command, capsys, block.where)


def _trainer_inputs(folder: Path, data: Path) -> dict:
    """``model``, ``tokenizer``, ``train`` and ``val`` as the README's Trainer diff assumes them."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from sgt_nlp.eraser import load_split, to_hf_dataset

    tokenizer = AutoTokenizer.from_pretrained(folder)
    sets = {}
    for split in ("train", "val"):
        rows = to_hf_dataset(load_split(data, split))
        sets[split] = rows.map(
            lambda row: tokenizer(row["words"], is_split_into_words=True, truncation=True, max_length=96),
            remove_columns=[c for c in rows.column_names if c != "label"],
        )
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    return {"model": model, "tokenizer": tokenizer, "train": sets["train"], "val": sets["val"]}


def test_the_readme_trainer_diff_runs(demo, tmp_path, monkeypatch):
    (diff,) = [b for b in blocks(README) if b.language == "diff"]
    new_side = "\n".join(line[1:] for line in diff.code.splitlines() if not line.startswith("-"))
    assert "SaliencyGuidedTrainer(" in new_side and "from transformers import Trainer" not in new_side
    monkeypatch.chdir(tmp_path)
    namespace = {
        "__name__": "__snippet__",
        **_trainer_inputs(demo / "seed0" / "initial_model", demo / "seed0" / "data"),
    }
    exec(compile(new_side, diff.where, "exec"), namespace)  # noqa: S102
    assert namespace["trainer"].state.global_step > 0
    assert (tmp_path / "out").is_dir()


# ---- the demo's report explains itself ---------------------------------------------------------------------


def test_the_demo_report_has_a_bottom_line_and_defines_what_it_shows(demo):
    from sgt_nlp.report.experiment import METHOD_TITLES

    page = (demo / "report.html").read_text(encoding="utf-8")
    verdict = (demo / "verdict.md").read_text(encoding="utf-8")
    assert page.index('id="bottom-line"') < page.index('id="verdict"') < page.index('id="metrics"')
    # every method the verdict names has rows in the metrics table, under the same name
    table = page.split('id="metrics-table"')[1].split("</table>")[0]
    named = [line[2:].split(":")[0] for line in verdict.splitlines() if not line.startswith("- Accuracy")]
    assert named and set(named) <= set(METHOD_TITLES.values())
    for title in named:
        assert f">{title}</td>" in table.replace("&amp;", "&"), title
    # every term the tables use, and the verdict's normalised metric, is defined on the page
    defined = set(re.findall(r'<dt id="def-[^"]+" data-term="([^"]+)"', page))
    used = set(re.findall(r'data-term="([^"]+)"', page.split('id="how-to-read"')[1]))
    assert used <= defined, used - defined
    assert "NAOPC" in verdict and "naopc" in defined and "auprc" in defined
    # no empty panel: the runner skips the masked-accuracy curve, so that plot and column are left out
    assert 'id="plot-masked-accuracy"' not in page and "Masked-acc." not in table
    assert "no data in the evaluation folders" not in page
    assert not (demo / "masked_accuracy.png").exists()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_the_demo_report_fits_1400_px_in_headless_chromium(demo, tmp_path):
    from tests.report.test_report_reads import _probe

    overflowing, width = _probe((demo / "report.html").read_text(encoding="utf-8"), tmp_path)
    assert overflowing == [] and width <= 1400
