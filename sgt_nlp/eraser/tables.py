"""A CSV of texts and labels as an ERASER folder, so that ``sgt-nlp evaluate``, ``sanity`` and the experiment
runner read it like any other: one document per row, no evidences (the agreement metrics then have no
rationale to compare with and are left out; faithfulness needs none). SST-2 is written the same way."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sgt_nlp.eraser.records import SPLITS
from sgt_nlp.validation import InputFileError


def table_to_eraser(
    path: str | Path,
    out_dir: str | Path,
    split: str = "test",
    text_column: str = "text",
    label_column: str = "label",
) -> Path:
    """Write the rows of the CSV ``path`` as ``split`` of the ERASER folder ``out_dir`` (``docs.jsonl`` and
    ``<split>.jsonl``; the documents of other splits already there are kept). Labels are written as they
    are: they must be the model's label names (its ``config.id2label``). A missing column or an empty cell
    is an error naming the file, the line and the field. Returns ``out_dir``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    path, out = Path(path), Path(out_dir)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        for column in (text_column, label_column):
            if column not in header:
                raise InputFileError(path, 1, column, f"no such column (the header has {', '.join(header)})")
        rows = []
        for line, row in enumerate(reader, start=2):
            for column in (text_column, label_column):
                if not (row.get(column) or "").strip():
                    raise InputFileError(path, line, column, "empty cell")
            rows.append((line, row[text_column], row[label_column].strip()))
    if not rows:
        raise InputFileError(path, None, None, "no data rows")
    out.mkdir(parents=True, exist_ok=True)
    docs_path = out / "docs.jsonl"
    docs = {}
    if docs_path.is_file():
        for text_line in docs_path.read_text(encoding="utf-8").splitlines():
            if text_line.strip():
                doc = json.loads(text_line)
                docs[doc["docid"]] = doc
    annotations = []
    for line, text, label in rows:
        docid = f"{split}_{line - 1}"
        docs[docid] = {"docid": docid, "document": " ".join(text.split())}
        annotations.append(
            {"annotation_id": docid, "classification": label, "docids": [docid], "evidences": [], "query": ""}
        )
    docs_path.write_text("".join(json.dumps(d) + "\n" for d in docs.values()), encoding="utf-8")
    (out / f"{split}.jsonl").write_text("".join(json.dumps(a) + "\n" for a in annotations), encoding="utf-8")
    return out
