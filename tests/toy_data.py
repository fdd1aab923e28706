"""Small data the tests share: the paths of the repository and of ../shared/data, a hand-built ERASER folder
with every quirk (``write_toy_dataset``), the tiny sentiment folder of ``tiny.SENTENCES`` (``write_eraser``)
and CSV files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests import tiny

ROOT = Path(__file__).resolve().parents[1]
#: ../shared/data beside the checkout (CI has it; a bare clone does not: tests using it skip)
SHARED_DATA = ROOT.parent / "shared" / "data"
MOVIES = SHARED_DATA / "eraser_movies"
LABELS = ("NEG", "POS")

# Toy documents. d1: 2 sentences of 4 tokens (8 tokens); d2: a blank line between "p q r" and "s t"
# (5 tokens); d3: 6 tokens and never any human rationale.
TOY_DOCS = {"d1": "a b c d\ne f g h\n", "d2": "p q r\n\n s  t\n", "d3": "x y z w v u\n"}


def evidence(docid: str, start: int, end: int, sentence: int = 0, text: str | None = None) -> dict:
    return {
        "docid": docid,
        "start_token": start,
        "end_token": end,
        "start_sentence": sentence,
        "end_sentence": sentence,
        "text": text if text is not None else "",
    }


def toy_records() -> list[dict]:
    return [
        {  # multi-document: group 0 in d1, group 1 spans d1 and d2; docids null -> from the evidences
            "annotation_id": "a1",
            "query": "is it good ?",
            "classification": "POS",
            "docids": None,
            "evidences": [
                [evidence("d1", 1, 3, text="b c")],
                [evidence("d1", 5, 6, 1, text="f"), evidence("d2", 0, 2, text="p q")],
            ],
        },
        {  # an empty span (skipped and counted) and a sentence index -1
            "annotation_id": "a2",
            "query": "is it good ?",
            "classification": "NEG",
            "docids": ["d2"],
            "evidences": [[evidence("d2", 3, 3, 1)], [evidence("d2", 2, 4, -1, text="r s")]],
        },
        {  # no evidence at all, docids null -> the annotation-id prefix before ':'
            "annotation_id": "d3:0",
            "query": "",
            "classification": "NEG",
            "evidences": [],
        },
    ]


def write_toy_dataset(root: Path, records: list[dict] | None = None, split: str = "train") -> Path:
    """A small ERASER folder (docs/ + {split}.jsonl, with a trailing blank line) under ``root``."""
    (root / "docs").mkdir(parents=True, exist_ok=True)
    for docid, text in TOY_DOCS.items():
        (root / "docs" / docid).write_text(text)
    lines = [json.dumps(r) for r in (records if records is not None else toy_records())]
    (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n\n")
    return root


def write_csv(path: Path, rows):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def write_eraser(folder: Path) -> Path:
    (folder / "docs").mkdir(parents=True)
    for split in ("train", "val"):
        lines = []
        for i, (sentence, label) in enumerate(tiny.SENTENCES):
            docid = f"{split}_{i}"
            (folder / "docs" / docid).write_text(sentence + "\n")
            words = sentence.split()
            ev = {
                "docid": docid,
                "start_token": 0,
                "end_token": 2,
                "start_sentence": 0,
                "end_sentence": 1,
                "text": " ".join(words[:2]),
            }
            lines.append(
                json.dumps(
                    {
                        "annotation_id": docid,
                        "classification": "POS" if label else "NEG",
                        "evidences": [[ev]],
                        "query": "what is the sentiment ?",
                        "query_type": None,
                    }
                )
            )
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder
