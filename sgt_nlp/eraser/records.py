"""The ERASER data model: an annotation (its evidence spans and label), a document, a loaded split, the report
of what loading kept, skipped and repaired, and the error that names a file, line and field.

Token offsets index the flattened document (its sentences concatenated); evidence groups are each sufficient
on their own (ERASER's convention), and an annotation's ``docids`` say which documents the model reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

SPLITS: tuple[str, ...] = ("train", "val", "test")


class ERASERDataError(ValueError):
    """A dataset file violates the ERASER format; ``path``, ``line`` (1-based) and ``field`` say where."""

    def __init__(self, path: str | Path, line: int | None, field_name: str | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field_name
        where = self.path + (f", line {line}" if line is not None else "")
        where += f", field '{field_name}'" if field_name else ""
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Evidence:
    """One human rationale span: tokens ``[start_token, end_token)`` of the flattened document ``docid``."""

    docid: str
    start_token: int
    end_token: int
    text: str = ""
    start_sentence: int = -1
    end_sentence: int = -1
    #: (group, position) in the source line, so errors name the field as written even after empty spans
    #: are dropped
    source_index: tuple[int, int] = field(default=(-1, -1), compare=False, repr=False)

    def __len__(self) -> int:
        return self.end_token - self.start_token


@dataclass(frozen=True)
class Document:
    """A document as sentences of tokens; ERASER offsets index :attr:`tokens`, the flattened view."""

    docid: str
    sentences: tuple[tuple[str, ...], ...]

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        return tuple(token for sentence in self.sentences for token in sentence)

    @cached_property
    def sentence_starts(self) -> tuple[int, ...]:
        """Offset of each sentence's first token in :attr:`tokens` (to map token spans to sentences)."""
        starts, offset = [], 0
        for sentence in self.sentences:
            starts.append(offset)
            offset += len(sentence)
        return tuple(starts)

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True)
class Annotation:
    """One line of ``{split}.jsonl``.

    ``evidences`` are evidence *groups* (each sufficient on its own, possibly spanning documents), with empty
    spans already removed and groups left empty by that removal dropped. ``docids`` is never empty: it comes
    from the record, else from the evidences (first-appearance order), else from the annotation-id prefix
    before ``:``.
    """

    annotation_id: str
    query: str
    evidences: tuple[tuple[Evidence, ...], ...]
    classification: str
    docids: tuple[str, ...]
    query_type: str | None = None
    line: int = 0
    #: the empty spans (``start_token == end_token``) left out of ``evidences``; the official scorer still
    #: counts them as gold spans that no prediction can match, so span-level recall keeps them (see
    #: ``gold_spans``)
    empty_evidences: tuple[Evidence, ...] = ()

    @property
    def all_evidences(self) -> tuple[Evidence, ...]:
        """Every span of every group (the scorer's truth set flattens the groups)."""
        return tuple(ev for group in self.evidences for ev in group)

    @property
    def evidence_docids(self) -> tuple[str, ...]:
        """Docids that carry at least one span, in first-appearance order (those a results file may list)."""
        return tuple(dict.fromkeys(ev.docid for ev in self.all_evidences))

    def rationale_mask(self, document: Document) -> np.ndarray:
        """Boolean per flattened token of ``document``: True where any span of any group covers it."""
        mask = np.zeros(len(document), dtype=bool)
        for ev in self.all_evidences:
            if ev.docid == document.docid:
                mask[ev.start_token : ev.end_token] = True
        return mask


@dataclass
class LoadReport:
    """What loading a split kept, skipped and repaired; nothing is dropped without being counted here."""

    path: str
    annotations: int = 0
    documents: int = 0
    evidence_spans: int = 0
    empty_spans_skipped: int = 0
    empty_span_annotation_ids: list[str] = field(default_factory=list)
    empty_groups_dropped: int = 0
    annotations_without_evidence: list[str] = field(default_factory=list)
    sentence_index_minus_one: int = 0
    docids_from_evidences: int = 0
    docids_from_annotation_id: int = 0
    evidence_text_mismatches: int = 0
    blank_lines_skipped: int = 0

    def summary(self) -> str:
        """One human-readable line, for logs and the evaluation summary."""
        return (
            f"{self.path}: {self.annotations} annotations, {self.documents} documents, "
            f"{self.evidence_spans} evidence spans; skipped {self.empty_spans_skipped} empty spans "
            f"(in {len(set(self.empty_span_annotation_ids))} annotations) and {self.empty_groups_dropped} "
            f"emptied groups; {len(self.annotations_without_evidence)} annotations without evidence; "
            f"{self.sentence_index_minus_one} spans with sentence index -1; docids filled from evidences "
            f"{self.docids_from_evidences}x, from annotation id {self.docids_from_annotation_id}x; "
            f"{self.evidence_text_mismatches} span texts differ from the document; "
            f"{self.blank_lines_skipped} blank lines skipped"
        )


@dataclass
class ERASERSplit:
    """A loaded split: annotations in file order, the documents they need, the label set and the report."""

    name: str
    annotations: list[Annotation]
    documents: dict[str, Document]
    labels: tuple[str, ...]
    report: LoadReport

    def __len__(self) -> int:
        return len(self.annotations)

    @property
    def label_to_id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def rationale_fractions(self) -> np.ndarray:
        """Per annotation: human-rationale tokens / tokens, over the annotation's documents."""
        fractions = []
        for ann in self.annotations:
            docs = [self.documents[d] for d in ann.docids]
            covered = sum(int(ann.rationale_mask(doc).sum()) for doc in docs)
            fractions.append(covered / max(1, sum(len(doc) for doc in docs)))
        return np.asarray(fractions, dtype=float)

    def mean_rationale_fraction(self) -> float:
        """Mean of :meth:`rationale_fractions`: the default comprehensiveness/sufficiency threshold."""
        return float(self.rationale_fractions().mean()) if self.annotations else 0.0
