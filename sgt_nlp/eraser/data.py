"""Read ERASER dataset folders into the dataclasses of :mod:`sgt_nlp.eraser.records`, validating everything
the official scorer relies on.

Layout (the conventions of ERASER's ``rationale_benchmark/utils.py``): ``<dir>/{split}.jsonl`` holds one
annotation per line; documents live either in ``<dir>/docs/<docid>`` (one sentence per line, tokens separated
by spaces; empty lines and empty tokens dropped) or in ``<dir>/docs.jsonl`` (``{"docid", "document"}``, split
on ``\\n`` then on ``" "`` with no filtering). Token offsets index the flattened document.

Upstream quirks are handled, never silently: empty spans (``start_token == end_token``) are skipped and
counted, annotations without evidence are kept and listed, sentence index ``-1`` is accepted and counted,
``docids: null`` is filled from the evidences (or the annotation-id prefix before ``:``). Everything skipped
lands in a :class:`LoadReport`. Real errors (missing document, offset past the end, duplicate id, unknown
label, malformed record) raise :class:`ERASERDataError` naming the file, the line and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from sgt_nlp.eraser.records import Annotation, Document, ERASERDataError, ERASERSplit, Evidence, LoadReport
from sgt_nlp.files import PLAIN_NAME, is_inside
from sgt_nlp.validation import canonical_label

# ------------------------------------------------------------------------------------------------------------
# documents


def _documents_source(data_dir: Path) -> Path:
    docs_dir, docs_jsonl = data_dir / "docs", data_dir / "docs.jsonl"
    if docs_dir.is_dir() and docs_jsonl.exists():
        raise ERASERDataError(data_dir, None, None, "both docs/ and docs.jsonl exist; ERASER allows only one")
    if docs_dir.is_dir():
        return docs_dir
    if docs_jsonl.exists():
        return docs_jsonl
    raise ERASERDataError(data_dir, None, None, "no docs/ directory and no docs.jsonl")


def docid_path_problem(docs_dir: Path, docid: str) -> str | None:
    """Why ``docid`` cannot name a document file of ``docs_dir`` (None when it can).

    A docid is a file name inside ``docs/``, never a path: one with a separator, ``..`` or a symlink that
    leads out of the folder would make the evaluation read (and show, or train on) any file the user can read.
    """
    if docid in ("", ".", "..") or any(c in docid for c in ("/", "\\", "\0")):
        return (
            f"document name {docid!r} is a path, not a file name in {docs_dir}: refused (a docid names "
            "a file inside the dataset's docs/ folder)"
        )
    path = docs_dir / docid
    if path.is_symlink() and not is_inside(path, docs_dir):
        return f"document {docid!r} is a link to {path.resolve()}, outside {docs_dir}: refused"
    if path.exists() and not path.is_file():
        return f"document {docid!r} in {docs_dir} is not a plain file"
    return None


def _check_docid_paths(annotations: Sequence[Annotation], docs_dir: Path, path: Path) -> None:
    """Every docid an annotation names (its docids and its evidences') must be a file name inside docs/."""
    for ann in annotations:
        named = [(f"docids[{j}]", docid) for j, docid in enumerate(ann.docids)]
        named += [("evidences[{}][{}].docid".format(*ev.source_index), ev.docid) for ev in ann.all_evidences]
        for field, docid in named:
            problem = docid_path_problem(docs_dir, docid)
            if problem:
                raise ERASERDataError(path, ann.line, field, problem)


def load_documents(data_dir: str | Path, docids: Iterable[str] | None = None) -> dict[str, Document]:
    """Documents of ``data_dir`` (all, or only ``docids``, which avoids reading large corpora such as BoolQ).

    A requested docid that does not exist raises :class:`ERASERDataError`.
    """
    data_dir = Path(data_dir)
    source = _documents_source(data_dir)
    wanted = None if docids is None else set(docids)
    documents: dict[str, Document] = {}
    if source.is_dir():
        names = sorted(p.name for p in source.iterdir()) if wanted is None else sorted(wanted)
        for docid in names:
            problem = docid_path_problem(source, docid)
            if problem:
                raise ERASERDataError(source / docid, None, "docid", problem)
            path = source / docid
            if not path.is_file():
                raise ERASERDataError(path, None, "docid", f"document {docid!r} does not exist in {source}")
            documents[docid] = _parse_doc_file(path)
        return documents
    read_utf8(source)  # undecodable bytes: an error that names the line
    with source.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = parse_json_line(line, source, line_no)
            for key in ("docid", "document"):
                if not isinstance(record.get(key), str):
                    raise ERASERDataError(source, line_no, key, "missing or not a string")
            if wanted is None or record["docid"] in wanted:
                sentences = tuple(tuple(s.split(" ")) for s in record["document"].split("\n"))
                documents[record["docid"]] = Document(record["docid"], sentences)
    for docid in sorted((wanted or set()) - documents.keys()):
        raise ERASERDataError(source, None, "docid", f"document {docid!r} does not exist in {source}")
    return documents


# ------------------------------------------------------------------------------------------------------------
# annotations


def read_utf8(path: Path) -> str:
    """The text of a UTF-8 file; other bytes raise :class:`ERASERDataError` naming the line and column (a bare
    ``UnicodeDecodeError`` names neither)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line_no = data.count(b"\n", 0, exc.start) + 1
        raise ERASERDataError(
            path,
            line_no,
            None,
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at column {exc.start - line_start + 1}",
        ) from None


def parse_json_line(line: str, path: Path, line_no: int, error: type[ValueError] = ERASERDataError) -> dict:
    """One JSONL line as a dict; ``error(path, line, field, message)`` names the file and line otherwise."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise error(path, line_no, None, f"invalid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise error(path, line_no, None, "a line must be a JSON object")
    return record


def _int_field(raw: dict, key: str, path: Path, line_no: int, where: str, default: int | None = None) -> int:
    value = raw.get(key, default)
    if value is None and default is not None:
        value = default
    if not isinstance(value, int) or isinstance(value, bool):
        raise ERASERDataError(path, line_no, f"{where}.{key}", f"must be an integer, got {value!r}")
    return value


def _parse_evidence(raw: object, path: Path, line_no: int, group: int, position: int) -> Evidence:
    where = f"evidences[{group}][{position}]"
    if not isinstance(raw, dict):
        raise ERASERDataError(path, line_no, where, "an evidence must be a JSON object")
    docid = raw.get("docid")
    if not isinstance(docid, str) or not docid:
        raise ERASERDataError(path, line_no, f"{where}.docid", f"must be a non-empty string, got {docid!r}")
    start = _int_field(raw, "start_token", path, line_no, where)
    end = _int_field(raw, "end_token", path, line_no, where)
    if start < 0 or end < start:
        raise ERASERDataError(
            path, line_no, f"{where}.end_token", f"span [{start}, {end}) needs 0 <= start_token <= end_token"
        )
    text = raw.get("text") or ""
    return Evidence(
        docid=docid,
        start_token=start,
        end_token=end,
        text=str(text),
        start_sentence=_int_field(raw, "start_sentence", path, line_no, where, default=-1),
        end_sentence=_int_field(raw, "end_sentence", path, line_no, where, default=-1),
        source_index=(group, position),
    )


def read_annotations(
    path: str | Path, labels: Sequence[str] | None = None, report: LoadReport | None = None
) -> list[Annotation]:
    """Parse and structurally validate ``{split}.jsonl`` (documents are checked by :func:`load_split`).

    Checks: valid JSON objects, ``annotation_id`` present and unique, ``classification`` a string in
    ``labels`` (when given), evidences a list of lists of well-formed spans. Empty spans are skipped and
    counted in ``report``.
    """
    path = Path(path)
    if not path.is_file():
        raise ERASERDataError(path, None, None, "annotation file does not exist")
    report = report if report is not None else LoadReport(str(path))
    label_set = set(labels) if labels is not None else None
    spellings: dict[str, str] = {}
    seen: dict[str, int] = {}
    annotations: list[Annotation] = []
    read_utf8(path)  # undecodable bytes: an error that names the line
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                report.blank_lines_skipped += 1
                continue
            raw = parse_json_line(line, path, line_no)
            ann_id = raw.get("annotation_id")
            if not isinstance(ann_id, str) or not ann_id:
                raise ERASERDataError(
                    path, line_no, "annotation_id", f"must be a non-empty string, got {ann_id!r}"
                )
            if ann_id in seen:
                raise ERASERDataError(
                    path,
                    line_no,
                    "annotation_id",
                    f"duplicate annotation_id {ann_id!r} (first on line {seen[ann_id]})",
                )
            seen[ann_id] = line_no
            label = raw.get("classification")
            if not isinstance(label, str) or not label.strip():
                raise ERASERDataError(path, line_no, "classification", f"must be a label, got {label!r}")
            label = canonical_label(label)  # ' POS' is POS, '1.0' is 1: one spelling per class
            if label_set is not None and label not in label_set:
                raise ERASERDataError(
                    path,
                    line_no,
                    "classification",
                    f"label {label!r} is not in the label set {sorted(label_set)}",
                )
            if label_set is None and (spelt := spellings.setdefault(label.casefold(), label)) != label:
                raise ERASERDataError(
                    path,
                    line_no,
                    "classification",
                    f"label {label!r} differs only in case from {spelt!r}; spell each class one way",
                )
            raw_groups = raw.get("evidences") or []
            if not isinstance(raw_groups, list):
                raise ERASERDataError(path, line_no, "evidences", "must be a list of evidence groups")
            groups: list[tuple[Evidence, ...]] = []
            empty: list[Evidence] = []
            for g, raw_group in enumerate(raw_groups):
                if isinstance(raw_group, dict):  # tolerate a bare evidence in place of a one-element group
                    raw_group = [raw_group]
                if not isinstance(raw_group, list):
                    raise ERASERDataError(
                        path, line_no, f"evidences[{g}]", "an evidence group must be a list"
                    )
                kept: list[Evidence] = []
                for i, raw_ev in enumerate(raw_group):
                    ev = _parse_evidence(raw_ev, path, line_no, g, i)
                    if ev.start_sentence == -1 or ev.end_sentence == -1:
                        report.sentence_index_minus_one += 1
                    if len(ev) == 0:
                        report.empty_spans_skipped += 1
                        report.empty_span_annotation_ids.append(ann_id)
                        empty.append(ev)
                        continue
                    kept.append(ev)
                if kept:
                    groups.append(tuple(kept))
                elif raw_group:
                    report.empty_groups_dropped += 1
            if not groups:
                report.annotations_without_evidence.append(ann_id)
            raw_docids = raw.get("docids")
            if raw_docids is not None and (
                not isinstance(raw_docids, list) or not all(isinstance(d, str) and d for d in raw_docids)
            ):
                raise ERASERDataError(
                    path, line_no, "docids", f"must be null or a list of strings, got {raw_docids!r}"
                )
            if raw_docids:
                docids = tuple(dict.fromkeys(raw_docids))
            elif groups:
                docids = tuple(dict.fromkeys(ev.docid for group in groups for ev in group))
                report.docids_from_evidences += 1
            else:
                docids = (ann_id.split(":", 1)[0],)
                report.docids_from_annotation_id += 1
            query = raw.get("query")
            annotations.append(
                Annotation(
                    annotation_id=ann_id,
                    query=query if isinstance(query, str) else "",
                    evidences=tuple(groups),
                    classification=label,
                    docids=docids,
                    query_type=raw.get("query_type"),
                    line=line_no,
                    empty_evidences=tuple(empty),
                )
            )
    report.annotations = len(annotations)
    report.evidence_spans = sum(len(a.all_evidences) for a in annotations)
    return annotations


def _check_against_documents(
    annotations: Sequence[Annotation], documents: dict[str, Document], path: Path, report: LoadReport
) -> None:
    for ann in annotations:
        for j, docid in enumerate(ann.docids):
            if docid not in documents:
                raise ERASERDataError(path, ann.line, f"docids[{j}]", f"document {docid!r} does not exist")
            if len(documents[docid]) == 0:
                raise ERASERDataError(
                    path,
                    ann.line,
                    f"docids[{j}]",
                    f"document {docid!r} has no tokens: nothing to classify or explain",
                )
        for ev in ann.all_evidences:
            where = "evidences[{}][{}]".format(*ev.source_index)
            doc = documents.get(ev.docid)
            if doc is None:
                raise ERASERDataError(
                    path, ann.line, f"{where}.docid", f"document {ev.docid!r} does not exist"
                )
            if ev.docid not in ann.docids:
                raise ERASERDataError(
                    path,
                    ann.line,
                    f"{where}.docid",
                    f"document {ev.docid!r} is not in the annotation's docids {list(ann.docids)}: the model "
                    "never sees this rationale",
                )
            if ev.end_token > len(doc):
                raise ERASERDataError(
                    path,
                    ann.line,
                    f"{where}.end_token",
                    f"offset {ev.end_token} is past the end of document {ev.docid!r} ({len(doc)} tokens)",
                )
            if ev.text and " ".join(doc.tokens[ev.start_token : ev.end_token]) != ev.text:
                report.evidence_text_mismatches += 1


def load_split(data_dir: str | Path, split: str, labels: Sequence[str] | None = None) -> ERASERSplit:
    """Load ``<data_dir>/<split>.jsonl`` and the documents it references, fully validated.

    ``labels`` fixes the label set and its order (label id = position); without it the sorted set of labels
    seen in the split is used, which is only safe when every label occurs in the split.
    """
    data_dir = Path(data_dir)
    if not PLAIN_NAME.fullmatch(split):
        message = f"{split!r} is not a split name (e.g. train, val, test)"
        raise ERASERDataError(data_dir, None, "split", message)
    path = data_dir / f"{split}.jsonl"
    report = LoadReport(str(path))
    annotations = read_annotations(path, labels=labels, report=report)
    needed = {d for ann in annotations for d in ann.docids} | {
        ev.docid for ann in annotations for ev in ann.all_evidences
    }
    source = _documents_source(data_dir)
    if source.is_dir():
        _check_docid_paths(annotations, source, path)
        documents = {d: doc for d in needed if (doc := _read_doc_if_exists(source, d)) is not None}
    else:
        documents = {d: doc for d, doc in load_documents(data_dir).items() if d in needed}
    _check_against_documents(annotations, documents, path, report)
    report.documents = len(documents)
    label_order = (
        tuple(labels) if labels is not None else tuple(sorted({a.classification for a in annotations}))
    )
    return ERASERSplit(
        name=split, annotations=annotations, documents=documents, labels=label_order, report=report
    )


def _parse_doc_file(path: Path) -> Document:
    lines = read_utf8(path).split("\n")
    sentences = tuple(tuple(t for t in line.strip().split(" ") if t) for line in lines if line.strip())
    return Document(path.name, sentences)


def _read_doc_if_exists(docs_dir: Path, docid: str) -> Document | None:
    path = docs_dir / docid
    return _parse_doc_file(path) if path.is_file() else None
