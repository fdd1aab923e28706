"""Pure helpers of the faithfulness perturbations: which words stay, and what replaces the others.

A perturbation key ``("comp", k)`` drops an example's top ``k`` words (comprehensiveness), ``("suff", k)``
keeps only them (sufficiency); ``k = removal_count(n, fraction)`` (ERASER's ``ceil``). Removed words are
deleted or replaced by the mask token or by seeded random whole-word vocabulary entries.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from ..metrics import removal_count


def perturbation_keys(
    n_words: int, fractions_removed: Sequence[float], fractions_kept: Sequence[float]
) -> set[tuple[str, int]]:
    """The distinct perturbations an example needs: ``("comp", k)`` drops the top k words, ``("suff", k)``
    keeps them.

    ``k = removal_count(n, fraction)`` (ERASER's ``ceil``). ``("comp", 0)`` and ``("suff", n)`` are the
    unperturbed input and are left out: the prediction is reused for them.
    """
    keys = {("comp", removal_count(n_words, f)) for f in fractions_removed}
    keys |= {("suff", removal_count(n_words, f)) for f in fractions_kept}
    return {key for key in keys if key not in (("comp", 0), ("suff", n_words))}


def kept_positions(order: np.ndarray, n_words: int, key: tuple[str, int]) -> np.ndarray:
    """Boolean per word: True for words that stay in the input under perturbation ``key``."""
    kind, k = key
    top = np.zeros(n_words, dtype=bool)
    top[order[:k]] = True
    return ~top if kind == "comp" else top


def perturbed_words(
    words: Sequence[str], keep: np.ndarray, removal: str, replacement: str | Sequence[str] | None = None
) -> list[str]:
    """The word list after removal: dropped (``delete``) or replaced (one replacement word per removed
    word)."""
    if removal == "delete":
        return [w for w, k in zip(words, keep, strict=True) if k]
    if replacement is None:
        raise ValueError(f"removal={removal!r} needs a replacement word")
    if isinstance(replacement, str):
        return [w if k else replacement for w, k in zip(words, keep, strict=True)]
    return [w if k else r for w, k, r in zip(words, keep, replacement, strict=True)]


def whole_word_vocabulary(tokenizer) -> list[str]:
    """Vocabulary entries that are whole alphabetic words, specials excluded: random replacement words.

    WordPiece: entries without the ``##`` continuation prefix. Byte-level BPE: entries that start a word
    (``Ġ`` prefix, which is stripped).
    """
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_tokens)
    byte_level = any(token.startswith("Ġ") for token in vocab)
    words = set()
    for token in vocab:
        if token in special or token.startswith("[unused"):
            continue
        if byte_level:
            if not token.startswith("Ġ"):
                continue
            token = token[1:]
        elif token.startswith("##"):
            continue
        if token.isalpha():
            words.add(token)
    if not words:
        raise ValueError(
            "the tokenizer's vocabulary has no whole-word entries to draw random replacements from"
        )
    return sorted(words)


def example_seed(seed: int, annotation_id: str) -> int:
    """A per-example seed keyed on the annotation id: the same draws in any batch or process."""
    return (seed * 1_000_003 + zlib.crc32(annotation_id.encode())) % (2**32)
