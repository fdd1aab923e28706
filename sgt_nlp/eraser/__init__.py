"""ERASER benchmark data: loading and validation, the results JSONL, and word ↔ word-piece alignment."""

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

__all__ = [
    "HF_COLUMNS",
    "SPLITS",
    "Annotation",
    "Document",
    "ERASERDataError",
    "ERASERSplit",
    "Evidence",
    "LoadReport",
    "load_documents",
    "load_split",
    "read_annotations",
    "to_hf_dataset",
]
