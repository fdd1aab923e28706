"""The data of ``sgt-nlp train``: where it comes from (``DataArguments``), reading it and tokenizing it.

Data comes from an ERASER folder (documents first, the query as the second sequence of a text pair, as the
ERASER BERT baselines join them), from CSV/JSON(L) files with text and label columns, or from a
``datasets`` folder saved with ``save_to_disk``. Label names become class ids in one order (the training
split's), and a row whose label is not among them is an error naming its file, line and field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .eraser.align import TRUNCATIONS
from .sampling import random_subset
from .validation import (
    InputFileError,
    UsageError,
    canonical_label,
    check_label_spellings,
    check_max_length,
    check_number,
    check_positive,
    check_readable_texts,
    check_table_cells,
    first_data_line,
    sorted_label_names,
)

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


@dataclass
class DataArguments:
    """Where the training data lives; exactly one of data_dir, train_file or dataset_path."""

    _argument_group_name = "data"

    data_dir: str | None = field(
        default=None, metadata={"help": "An ERASER folder: docs/ or docs.jsonl plus {train,val,test}.jsonl."}
    )
    train_file: str | None = field(
        default=None, metadata={"help": "A CSV, JSON or JSONL file with text and labels."}
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "Validation file in the same format."}
    )
    dataset_path: str | None = field(
        default=None, metadata={"help": "A datasets.DatasetDict folder written by save_to_disk."}
    )
    text_column: str = field(default="text", metadata={"help": "Text column of CSV/JSON/disk data."})
    text_pair_column: str | None = field(default=None, metadata={"help": "Optional second text column."})
    label_column: str = field(default="label", metadata={"help": "Label column of CSV/JSON/disk data."})
    train_split: str = field(default="train", metadata={"help": "Split used for training."})
    validation_split: str = field(
        default="val", metadata={"help": "Split used for evaluation and model selection."}
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={
            "help": "Train on N rows drawn at random (seeded by --subset_seed), kept in file order. ERASER "
            "files are sorted by class, so the first N rows would be one class."
        },
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on N validation rows drawn the same way."}
    )
    subset_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the --max_train_samples/--max_eval_samples draw; fixed apart from "
            "--seed so that runs with different training seeds see the same rows."
        },
    )
    truncation: str = field(
        default="head",
        metadata={
            "help": "Which words of a long text fit in --max_length: head (the first pieces, default), tail "
            "(the last whole words) or head_tail (whole words: the first quarter of the budget from the "
            "start, the rest from the end; Sun et al. 2019). The ERASER query (and a CSV text_pair_column, "
            "under tail/head_tail) is never cut; under tail/head_tail CSV text is split on whitespace into "
            "words, as sgt-nlp explain and evaluate do.",
            "choices": list(TRUNCATIONS),
        },
    )

    def __post_init__(self) -> None:
        given = [n for n in ("data_dir", "train_file", "dataset_path") if getattr(self, n)]
        if len(given) != 1:
            raise UsageError(
                f"give exactly one of --data_dir, --train_file, --dataset_path (got {given or 'none'})"
            )
        check_positive("--max_train_samples", self.max_train_samples)
        check_positive("--max_eval_samples", self.max_eval_samples)
        check_number("--subset_seed", self.subset_seed, low=0, high=2**32 - 1)
        if self.truncation not in TRUNCATIONS:
            raise UsageError(f"--truncation={self.truncation!r} is not one of: {', '.join(TRUNCATIONS)}")


def load_raw_splits(data: DataArguments) -> tuple[Dataset, Dataset | None, list[str]]:
    """(train, validation, label names) as ``datasets.Dataset`` objects with the original columns."""
    import datasets

    from .eraser.data import read_utf8

    if data.data_dir:
        from .eraser import load_split, to_hf_dataset

        train_split = load_split(data.data_dir, data.train_split)
        labels = list(train_split.labels)
        train = to_hf_dataset(train_split)
        logger.info("ERASER %s: %s", data.train_split, train_split.report.summary())
        validation = None
        if (Path(data.data_dir) / f"{data.validation_split}.jsonl").is_file():
            validation = to_hf_dataset(load_split(data.data_dir, data.validation_split, labels=labels))
        return train, validation, labels
    if data.dataset_path:
        loaded = datasets.load_from_disk(data.dataset_path)
        if not isinstance(loaded, datasets.DatasetDict):
            raise ValueError(f"{data.dataset_path}: expected a DatasetDict with a {data.train_split!r} split")
        if data.train_split not in loaded:
            raise ValueError(f"{data.dataset_path}: no split {data.train_split!r} (has {', '.join(loaded)})")
        train, validation = loaded[data.train_split], loaded.get(data.validation_split)
    else:
        assert data.train_file is not None  # __post_init__: exactly one of data_dir, train_file, dataset_path
        files = {"train": data.train_file}
        if data.validation_file:
            files["validation"] = data.validation_file
        loaded = {}
        for name, path in files.items():
            suffix = Path(path).suffix.lower()
            builder = {".csv": "csv", ".json": "json", ".jsonl": "json"}.get(suffix)
            if builder is None:
                raise ValueError(f"{path}: unsupported file type {suffix!r} (use .csv, .json or .jsonl)")
            if not Path(path).is_file():
                raise InputFileError(path, None, None, "file does not exist")
            text = read_utf8(
                Path(path)
            )  # undecodable bytes: an error that names the line, not a pyarrow traceback
            if builder == "json":
                _check_json(Path(path), text)
            try:  # each file by its own type: a .jsonl validation file beside a .csv is read as JSON lines
                loaded[name] = datasets.load_dataset(builder, data_files={"train": path})["train"]
            except Exception as exc:  # datasets' build errors run to many lines and name no line
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InputFileError(path, None, None, f"cannot be read as {builder}: {reason}") from exc
        train, validation = loaded["train"], loaded.get("validation")
    for name, split in (("train", train), ("validation", validation)):
        if split is None:
            continue
        where = split_source(data, name)
        for column in (data.text_column, data.label_column, data.text_pair_column):
            if column and column not in split.column_names:
                raise InputFileError(
                    where, None, column, f"no such column (columns: {', '.join(split.column_names)})"
                )
        for column in (data.text_column, data.text_pair_column):
            dtype = getattr(split.features[column], "dtype", None) if column else None
            if column and dtype not in ("string", "large_string"):
                raise InputFileError(
                    where, None, column, f"a text column holds {dtype or 'no'} values, not text"
                )
        columns = [c for c in (data.text_column, data.text_pair_column, data.label_column) if c]
        check_table_cells(
            where, {c: split[c] for c in columns}, first_data_line(where) if data.train_file else None
        )
    feature = train.features[data.label_column]
    if hasattr(feature, "names"):
        labels = list(feature.names)
    else:
        # The label set is the training split's: a validation label outside it is an error, not a new class.
        labels = sorted_label_names(train[data.label_column])
        for name, split in (("train", train), ("validation", validation)):
            if split is not None:
                check_label_spellings(
                    map(canonical_label, split[data.label_column]), split_source(data, name)
                )
    return train, validation, labels


def split_source(data: DataArguments, split: str) -> str:
    """The file (or folder and split) a split was read from, for error messages."""
    if data.train_file:
        return data.train_file if split == "train" else str(data.validation_file)
    if data.dataset_path:
        return f"{data.dataset_path} [{data.train_split if split == 'train' else data.validation_split}]"
    assert data.data_dir is not None  # __post_init__: exactly one of data_dir, train_file, dataset_path
    return str(
        Path(data.data_dir) / f"{data.train_split if split == 'train' else data.validation_split}.jsonl"
    )


def _check_json(path: Path, text: str) -> None:
    """A JSON array, or JSON lines, that parses: an error naming the line (datasets' own error logs a
    traceback and names no line)."""
    import json

    array = text.lstrip().startswith("[")
    for number, line in [(1, text)] if array else enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(
                path, exc.lineno if array else number, None, f"not valid JSON ({exc.msg})"
            ) from None


def _annotation(source: str, names: list[str], row: int) -> str:
    return f"{source}, {names[row]}"


def _cell(data: DataArguments, split: str, column: str, row: int) -> str:
    """Where row ``row`` of a split's ``column`` is, for messages: file, line (where the format has lines)
    and field."""
    source = split_source(data, split)
    first = first_data_line(source) if data.train_file else None
    return (
        f"{source}, " + (f"line {first + row}" if first is not None else f"row {row}") + f", field '{column}'"
    )


def tokenize_splits(
    train: Dataset,
    validation: Dataset | None,
    labels: list[str],
    tokenizer: PreTrainedTokenizerBase,
    data: DataArguments,
    max_length: int,
) -> tuple[Dataset, Dataset | None]:
    """Tokenized train/validation datasets with integer ``labels`` columns, checked against ``labels``.

    Long inputs are cut by ``data.truncation`` (:func:`sgt_nlp.eraser.align.select_kept_words`).
    """
    from .eraser.align import encode_words

    label_to_id = {name: i for i, name in enumerate(labels)}

    def label_id(value: Any, row: int, split: str) -> int:
        if canonical_label(value) in label_to_id:
            return label_to_id[canonical_label(value)]
        if isinstance(value, (int, np.integer)) and 0 <= int(value) < len(labels):  # a ClassLabel id
            return int(value)
        source = split_source(data, split)
        first = first_data_line(source) if data.train_file else None
        line = None if first is None else first + row
        raise InputFileError(
            source,
            line,
            data.label_column,
            f"row {row}: {value!r} is not one of the training labels {labels}"
            + "".join(
                f" (did you mean {name!r}?)"
                for name in labels
                if name.casefold() == canonical_label(value).casefold()
            ),
        )

    def encode(batch, indices, split):
        if data.data_dir:
            # The same kept words as sgt-nlp evaluate sees (one shared selection, the query never cut).
            enc, _ = encode_words(
                tokenizer, batch["words"], batch["query_words"], max_length, data.truncation
            )
            enc["labels"] = batch["label"]
            return enc
        pair = batch[data.text_pair_column] if data.text_pair_column else None
        if data.truncation == "head":
            enc = tokenizer(batch[data.text_column], pair, truncation=True, max_length=max_length)
        else:
            words = [str(text).split() for text in batch[data.text_column]]
            pair_words = [str(text).split() for text in pair] if pair is not None else None
            enc, _ = encode_words(tokenizer, words, pair_words, max_length, data.truncation)
        enc["labels"] = [
            label_id(v, i, split) for v, i in zip(batch[data.label_column], indices, strict=True)
        ]
        return enc

    out: list[Dataset | None] = []
    for split_name, split in (("train", train), ("validation", validation)):
        if split is None:
            out.append(None)
            continue
        if data.data_dir:
            where = [
                f"{split_source(data, split_name)}, annotation {a!r}, field 'query'"
                for a in split["annotation_id"]
            ]
            check_max_length(tokenizer, max_length, split["query_words"], where)
            ids = [f"annotation {a!r}" for a in split["annotation_id"]]
            source = split_source(data, split_name)
            check_readable_texts(tokenizer, split["words"], partial(_annotation, source, ids))
        else:
            specials = tokenizer.num_special_tokens_to_add(pair=bool(data.text_pair_column))
            texts = 2 if data.text_pair_column else 1  # at least one piece of each text must fit
            if max_length < specials + texts:
                raise UsageError(
                    f"--max_length {max_length} leaves no room for text: the special tokens take {specials}"
                )
            check_readable_texts(
                tokenizer, split[data.text_column], partial(_cell, data, split_name, data.text_column)
            )
        limit = data.max_train_samples if split_name == "train" else data.max_eval_samples
        if limit is not None:
            split = random_subset(split, limit, data.subset_seed)
        columns = split.column_names
        tokenized = split.map(
            encode,
            batched=True,
            with_indices=True,
            fn_kwargs={"split": split_name},
            remove_columns=columns,
            desc=f"tokenizing {split_name}",
        )
        out.append(tokenized)
    return out[0], out[1]
