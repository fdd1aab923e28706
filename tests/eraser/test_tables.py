"""A CSV of texts and labels as an ERASER folder that load_split reads; errors name file, line, field."""

from __future__ import annotations

import pytest

from sgt_nlp.eraser import load_split, table_to_eraser
from sgt_nlp.validation import InputFileError


def test_rows_become_documents_without_evidences(tmp_path):
    table = tmp_path / "texts.csv"
    table.write_text('sentence,gold\n"a  fine, moving film",POS\nflat and dull,NEG\n')
    out = table_to_eraser(table, tmp_path / "data", split="test", text_column="sentence", label_column="gold")
    split = load_split(out, "test")
    assert [a.classification for a in split.annotations] == ["POS", "NEG"]
    first = split.annotations[0]
    assert list(split.documents[first.docids[0]].tokens) == ["a", "fine,", "moving", "film"]
    assert all(not a.evidences for a in split.annotations)
    # a second split keeps the first one's documents
    table_to_eraser(table, out, split="val", text_column="sentence", label_column="gold")
    assert len(load_split(out, "test").annotations) == 2 and len(load_split(out, "val").annotations) == 2


def test_bad_tables_name_the_file_line_and_field(tmp_path):
    table = tmp_path / "texts.csv"
    table.write_text("text,label\ngood,POS\n   ,NEG\n")
    with pytest.raises(InputFileError, match=r"texts.csv, line 3, field 'text': empty cell"):
        table_to_eraser(table, tmp_path / "data")
    with pytest.raises(InputFileError, match=r"line 1, field 'category': no such column"):
        table_to_eraser(table, tmp_path / "data", label_column="category")
    with pytest.raises(ValueError, match="split"):
        table_to_eraser(table, tmp_path / "data", split="dev")
