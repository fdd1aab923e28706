"""A sanity run's inputs and output folder: ERASER splits → right-padded batches, the model from a folder,
and ``sanity.json`` (strict JSON; NaN and ±infinity round-trip generically) plus ``sanity.html``."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..eraser.align import encode_words
from ..files import atomic_write_text
from ..report.sanity_page import write_sanity_html
from .checks import Batch, SanityResult

logger = logging.getLogger(__name__)

#: How JSON text spells the floats strict JSON has no number for (the spellings of JavaScript and of
#: Python's ``json`` module).
NON_FINITE: dict[str, float] = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


# ---- strict JSON with non-finite floats --------------------------------------------------------------------


def encode_non_finite(value: Any) -> Any:
    """``value`` with every NaN / ±infinity float (at any depth) replaced by its :data:`NON_FINITE` string.

    Tuples become lists; ``None`` stays ``None`` (a value that was not measured), so that it stays apart from
    an undefined similarity (NaN).
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {k: encode_non_finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_non_finite(v) for v in value]
    return value


def decode_non_finite(value: Any) -> Any:
    """The inverse of :func:`encode_non_finite`: the strings of :data:`NON_FINITE` become floats again."""
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {k: decode_non_finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_non_finite(v) for v in value]
    return value


def dumps_json(value: Any, indent: int | None = 2) -> str:
    """Strict JSON text (no bare ``NaN`` token) of ``value``, non-finite floats spelled as strings."""
    return json.dumps(encode_non_finite(value), indent=indent, allow_nan=False)


def loads_json(text: str) -> Any:
    """Parse :func:`dumps_json` text back, with the non-finite floats restored."""
    return decode_non_finite(json.loads(text))


# ---- inputs ------------------------------------------------------------------------------------------------


def encode_batches(
    tokenizer: Any,
    words: Sequence[Sequence[str]] | Sequence[str],
    queries: Sequence[Sequence[str]] | None = None,
    max_length: int = 256,
    batch_size: int = 16,
    truncation: str = "head",
) -> list[Batch]:
    """Right-padded batches of texts (strings) or pre-split words with an optional query (a text pair).

    Batches keep the input order (the order of the labels); ERASER documents are cut, the query never is.
    ``truncation`` (head, tail, head_tail) picks the kept words of pre-split words exactly as ``sgt-nlp
    evaluate`` and ``train`` do; texts are split on whitespace for ``tail``/``head_tail``.
    """

    if tokenizer.padding_side != "right":
        tokenizer.padding_side = "right"  # BERT-family heads pool position 0: left padding changes the model
    split = bool(words) and not isinstance(words[0], str)
    has_query = queries is not None and any(queries)
    batches = []
    for start in range(0, len(words), batch_size):
        chunk = list(words[start : start + batch_size])
        pair = list(queries[start : start + batch_size]) if has_query and queries is not None else None
        if split or truncation != "head":
            word_lists = chunk if split else [str(text).split() for text in chunk]
            encoding, _ = encode_words(
                tokenizer, word_lists, pair, max_length, truncation, padding=True, return_tensors="pt"
            )
        else:
            encoding = tokenizer(
                chunk,
                pair,
                is_split_into_words=split,
                truncation="only_first" if pair else True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
        batches.append(
            {k: v for k, v in encoding.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        )
    return batches


def load_eraser_inputs(
    data_dir: str,
    split: str,
    label_names: Sequence[str],
    max_examples: int | None = None,
    shuffle_seed: int | None = None,
) -> tuple[list[list[str]], list[list[str]], torch.Tensor]:
    """Document words, query words and gold labels (in the model's class order) of an ERASER split.

    ``shuffle_seed`` draws a seeded random subset instead of the first ``max_examples`` (ERASER files are
    often sorted by class: Movies' val split starts with 100 NEG reviews).
    """
    from ..eraser import load_split, to_hf_dataset
    from ..loading import match_label_order

    loaded = load_split(data_dir, split)
    loaded = load_split(data_dir, split, labels=match_label_order(label_names, loaded.labels))
    rows = to_hf_dataset(loaded)
    if shuffle_seed is not None:
        rows = rows.shuffle(seed=shuffle_seed)
    if max_examples:
        rows = rows.select(range(min(max_examples, len(rows))))
    return (
        [list(w) for w in rows["words"]],
        [list(q) for q in rows["query_words"]],
        torch.tensor(rows["label"]),
    )


def load_model(path: str, device: str = "cpu") -> tuple[nn.Module, Any]:
    """Model and tokenizer from a folder (or 'minilm'), in eval mode, with right padding."""
    from ..loading import load_classifier

    model, tokenizer, _ = load_classifier(path, device)
    return model, tokenizer


# ---- output ------------------------------------------------------------------------------------------------


def write_outputs(result: SanityResult | Mapping[str, Any], output_dir: str | Path) -> Path:
    """``sanity.json`` (all figures) and ``sanity.html`` (plots and verdicts) under ``output_dir``."""
    data = result.to_dict() if isinstance(result, SanityResult) else dict(result)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "sanity.json", dumps_json(data) + "\n")
    write_sanity_html(data, out / "sanity.html")
    return out


def load_sanity(output_dir: str | Path) -> dict[str, Any]:
    """``sanity.json`` of an output folder as the dict :meth:`SanityResult.to_dict` gave, NaN included
    (``SanityResult.from_dict`` makes it typed again)."""
    return loads_json(Path(output_dir, "sanity.json").read_text())
