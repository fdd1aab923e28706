"""ERASER benchmark data: loading and validation, the results JSONL, and word ↔ word-piece alignment."""

from sgt_nlp.eraser.align import (
    TRUNCATIONS,
    WORD_AGGREGATIONS,
    TruncationReport,
    WordAlignment,
    align_words,
    encode_words,
    select_kept_words,
)
from sgt_nlp.eraser.data import load_documents, load_split, parse_json_line, read_annotations, read_utf8
from sgt_nlp.eraser.hf import HF_COLUMNS, to_hf_dataset
from sgt_nlp.eraser.records import (
    SPLITS,
    Annotation,
    Document,
    ERASERDataError,
    ERASERSplit,
    Evidence,
    LoadReport,
)
from sgt_nlp.eraser.results import (
    SCORE_FIELDS,
    ResultsError,
    read_results,
    result_record,
    write_results,
)
from sgt_nlp.eraser.tables import table_to_eraser
from sgt_nlp.eraser.verify import verify_results

__all__ = [
    "HF_COLUMNS",
    "SCORE_FIELDS",
    "SPLITS",
    "TRUNCATIONS",
    "WORD_AGGREGATIONS",
    "Annotation",
    "Document",
    "ERASERDataError",
    "ERASERSplit",
    "Evidence",
    "LoadReport",
    "ResultsError",
    "TruncationReport",
    "WordAlignment",
    "align_words",
    "encode_words",
    "load_documents",
    "load_split",
    "parse_json_line",
    "read_annotations",
    "read_utf8",
    "read_results",
    "result_record",
    "select_kept_words",
    "table_to_eraser",
    "to_hf_dataset",
    "verify_results",
    "write_results",
]
