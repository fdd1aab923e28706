"""ERASER benchmark data: loading and validation, the results JSONL, and word ↔ word-piece alignment."""

from sgt_nlp.eraser.align import WORD_AGGREGATIONS, TruncationReport, WordAlignment, align_words
from sgt_nlp.eraser.data import (
    HF_COLUMNS,
    SPLITS,
    Annotation,
    Document,
    ERASERDataError,
    ERASERSplit,
    Evidence,
    LoadReport,
    load_documents,
    load_split,
    read_annotations,
    to_hf_dataset,
)
from sgt_nlp.eraser.results import (
    SCORE_FIELDS,
    ResultsError,
    read_results,
    result_record,
    verify_results,
    write_results,
)

__all__ = [
    "HF_COLUMNS",
    "SCORE_FIELDS",
    "SPLITS",
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
    "load_documents",
    "load_split",
    "read_annotations",
    "read_results",
    "result_record",
    "to_hf_dataset",
    "verify_results",
    "write_results",
]
