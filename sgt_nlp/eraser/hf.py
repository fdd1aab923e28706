"""An ERASER split as a Hugging Face ``datasets.Dataset``: one row per annotation, on whitespace words."""

from __future__ import annotations

from sgt_nlp.eraser.records import ERASERSplit

HF_COLUMNS: tuple[str, ...] = (
    "annotation_id",
    "docids",
    "doc_lengths",
    "words",
    "query",
    "query_words",
    "label",
    "rationale_mask",
    "is_document_word",
)


def to_hf_dataset(split: ERASERSplit, query_mode: str = "pair", separator: str = "[SEP]"):
    """A ``datasets.Dataset`` with one row per annotation, in file order, scored on whitespace words.

    ``words`` starts with the words of the annotation's documents (``docids`` order, concatenated; ERASER
    baselines put the documents first). ``query_mode="pair"`` (default) keeps the query out of ``words`` and
    in ``query_words`` so a tokenizer encodes ``(words, query_words)`` as a text pair and truncation can cut
    the document only (see :func:`sgt_nlp.eraser.align.align_words`). ``query_mode="append"`` gives the flat
    input ``doc words + [separator] + query words`` (separator omitted when the query is empty).
    ``rationale_mask`` and ``is_document_word`` have one 0/1 entry per word of ``words``; the first
    ``sum(doc_lengths)`` words are the documents, and ``doc_lengths`` splits them back into per-document
    scores for the results file.
    """
    import datasets

    if query_mode not in ("pair", "append"):
        raise ValueError(f"query_mode must be 'pair' or 'append', got {query_mode!r}")
    label_to_id = split.label_to_id
    rows: dict[str, list] = {name: [] for name in HF_COLUMNS}
    for ann in split.annotations:
        docs = [split.documents[d] for d in ann.docids]
        words = [token for doc in docs for token in doc.tokens]
        mask = [int(v) for doc in docs for v in ann.rationale_mask(doc)]
        is_doc = [1] * len(words)
        query_words = ann.query.split()
        if query_mode == "append" and query_words:
            extra = [separator, *query_words]
            words += extra
            mask += [0] * len(extra)
            is_doc += [0] * len(extra)
        rows["annotation_id"].append(ann.annotation_id)
        rows["docids"].append(list(ann.docids))
        rows["doc_lengths"].append([len(doc) for doc in docs])
        rows["words"].append(words)
        rows["query"].append(ann.query)
        rows["query_words"].append(query_words)
        rows["label"].append(label_to_id[ann.classification])
        rows["rationale_mask"].append(mask)
        rows["is_document_word"].append(is_doc)
    features = datasets.Features(
        {
            "annotation_id": datasets.Value("string"),
            "docids": datasets.Sequence(datasets.Value("string")),
            "doc_lengths": datasets.Sequence(datasets.Value("int32")),
            "words": datasets.Sequence(datasets.Value("string")),
            "query": datasets.Value("string"),
            "query_words": datasets.Sequence(datasets.Value("string")),
            "label": datasets.ClassLabel(names=list(split.labels)),
            "rationale_mask": datasets.Sequence(datasets.Value("int8")),
            "is_document_word": datasets.Sequence(datasets.Value("int8")),
        }
    )
    return datasets.Dataset.from_dict(rows, features=features)
