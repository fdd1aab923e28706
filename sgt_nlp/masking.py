"""Which tokens may be masked, which are, and what replaces them: pure tensor functions.

SGT masks the ``k = floor(fraction * n)`` lowest-saliency tokens of each sequence, where ``n`` counts the
real (non-special, non-padding) tokens only, and replaces their embeddings by a "mask distribution".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

MaskStrategy = Literal["random_token", "mask_token", "zero", "uniform"]
MASK_STRATEGIES: tuple[str, ...] = ("random_token", "mask_token", "zero", "uniform")
# Which k tokens are masked: SGT's lowest-saliency ones, or the two controls that isolate what the saliency
# adds (a uniformly random k: "masked-consistency training"; the k most salient: the reversed ranking).
MASK_SELECTIONS: tuple[str, ...] = ("saliency", "random", "highest")


#: the special tokens that mark structure (never a word of the text): never masked, scored or removed
STRUCTURAL_TOKENS = ("pad", "bos", "eos", "sep", "cls", "mask")


def special_ids_of(tokenizer=None, config=None) -> list[int]:
    """Ids that must never be masked or counted: every special token the tokenizer knows, else the
    config's; but not the unknown token.

    ``[UNK]`` stands for a word of the text the vocabulary lacks (an emoji, another script): it moves the
    prediction like any word, so saliency scores it, SGT may mask it and evaluation may remove it. (Counted
    as special, every out-of-vocabulary word scored exactly 0 under every method.) Where the unknown token
    is also a structural one (GPT-2's ``<|endoftext|>`` is unk, bos and eos at once) it stays special.
    """
    ids: set[int] = set()
    if tokenizer is not None:
        ids.update(int(i) for i in getattr(tokenizer, "all_special_ids", []) if i is not None)
        unk = getattr(tokenizer, "unk_token_id", None)
        structural = {getattr(tokenizer, f"{name}_token_id", None) for name in STRUCTURAL_TOKENS}
        if isinstance(unk, int) and unk not in structural:
            ids.discard(unk)
    if config is not None and not ids:
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id"):
            value = getattr(config, name, None)
            if isinstance(value, int):
                ids.add(value)
    return sorted(ids)


def never_drawn_ids(tokenizer=None, config=None) -> list[int]:
    """Ids a ``random_token`` replacement never draws: the special ones and the unknown token (a random
    replacement is a real word)."""
    ids = set(special_ids_of(tokenizer, config))
    unk = getattr(tokenizer, "unk_token_id", None) if tokenizer is not None else None
    if isinstance(unk, int):
        ids.add(unk)
    return sorted(ids)


def maskable_positions(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    special_ids: Iterable[int] = (),
    special_tokens_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Boolean ``[B, T]``: real tokens that SGT may mask (attended, not special, not padding)."""
    candidates = torch.ones_like(input_ids, dtype=torch.bool)
    if attention_mask is not None:
        candidates &= attention_mask.bool()
    special = list(special_ids)
    if special:
        candidates &= ~torch.isin(
            input_ids, torch.tensor(special, device=input_ids.device, dtype=input_ids.dtype)
        )
    if special_tokens_mask is not None:
        candidates &= ~special_tokens_mask.bool()
    return candidates


def tokens_to_mask_per_sequence(candidates: torch.Tensor, fraction: float) -> torch.Tensor:
    """``k_i = floor(fraction * n_i)`` with ``n_i`` the maskable tokens of sequence ``i``."""
    counts = candidates.sum(dim=-1)
    # The small epsilon keeps floor(0.3 * 10) == 3 despite 0.3 * 10 == 2.9999999999999996 in floating point.
    return torch.floor(counts.double() * fraction + 1e-9).long()


def lowest_k_mask(scores: torch.Tensor, candidates: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Boolean ``[B, T]`` marking, per row, the ``k[i]`` candidates with the lowest score.

    Non-candidates are never chosen. Ties are broken by position (the earlier token first), so the choice is
    deterministic for a given score tensor.
    """
    if scores.shape != candidates.shape:
        raise ValueError(
            f"scores {tuple(scores.shape)} and candidates {tuple(candidates.shape)} differ in shape"
        )
    keyed = scores.float().masked_fill(~candidates, float("inf"))
    order = torch.sort(keyed, dim=-1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
    return (rank < k.view(-1, 1)) & candidates


def highest_k_mask(scores: torch.Tensor, candidates: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Boolean ``[B, T]`` marking, per row, the ``k[i]`` candidates with the highest score (ties: earlier
    first)."""
    return lowest_k_mask(-scores.float(), candidates, k)


def random_k_mask(
    candidates: torch.Tensor, k: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Boolean ``[B, T]`` marking, per row, ``k[i]`` candidates drawn uniformly without replacement.

    Ranking i.i.d. uniform keys makes every ``k``-subset of a row's candidates equally likely; the keys come
    from ``generator`` (on its own device), so a fixed generator reproduces the draw.
    """
    device = generator.device if generator is not None else candidates.device
    keys = torch.rand(candidates.shape, generator=generator, device=device).to(candidates.device)
    return lowest_k_mask(keys, candidates, k)


def mask_overlap(first: torch.Tensor, second: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Per row, the share of ``first``'s ``k[i]`` masked positions that ``second`` masks too (NaN where
    ``k[i] == 0``). Two uniform random draws of ``k`` among ``n`` candidates share ``k / n`` in expectation,
    the level at which a saliency ranking is no better than chance at choosing the same tokens."""
    shared = (first & second).sum(dim=-1).double()
    return torch.where(k > 0, shared / k.clamp(min=1).double(), torch.full_like(shared, float("nan")))


def select_mask_positions(
    selection: str,
    scores: torch.Tensor | None,
    candidates: torch.Tensor,
    k: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The positions to mask for ``selection`` in ``MASK_SELECTIONS``; ``random`` needs no ``scores``."""
    if selection == "random":
        return random_k_mask(candidates, k, generator)
    if selection not in ("saliency", "highest"):
        raise ValueError(f"unknown mask selection {selection!r}; allowed: {', '.join(MASK_SELECTIONS)}")
    if scores is None:
        raise ValueError(f"mask selection {selection!r} ranks tokens by saliency and needs scores")
    return (
        lowest_k_mask(scores, candidates, k)
        if selection == "saliency"
        else highest_k_mask(scores, candidates, k)
    )


def replacement_embeddings(
    strategy: str,
    embeddings: torch.Tensor,
    positions: torch.Tensor,
    embedding_weight: torch.Tensor | nn.Embedding,
    *,
    mask_token_id: int | None = None,
    special_ids: Iterable[int] = (),
    candidates: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Embeddings ``[B, T, D]`` to write at masked positions, per strategy; detached (no gradient flows).

    - ``random_token``: the embedding of a uniformly drawn non-special vocabulary token, per position.
    - ``mask_token``: the tokenizer's mask token embedding.
    - ``zero``: the zero vector.
    - ``uniform``: per dimension, Uniform(min, max) over that sequence's real-token embeddings (the authors'
      image-code ``randomMask`` ported to embedding space).

    ``embedding_weight`` is the table, or the embedding module itself: pass the module where its forward does
    more than a lookup (Gemma scales the rows by sqrt(hidden size)), so that replacements match real tokens.
    """
    if isinstance(embedding_weight, nn.Module):
        module = embedding_weight
        vocab = module.num_embeddings

        def lookup(ids: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return module(ids.to(module.weight.device))
    else:
        table = embedding_weight.detach()
        vocab = table.shape[0]

        def lookup(ids: torch.Tensor) -> torch.Tensor:
            return table[ids]

    embeddings = embeddings.detach()
    shape, device, dtype = embeddings.shape, embeddings.device, embeddings.dtype
    if strategy == "random_token":
        allowed = torch.ones(vocab, dtype=torch.bool, device=device)
        special = [i for i in special_ids if 0 <= i < vocab]
        if special:
            allowed[torch.tensor(special, device=device)] = False
        allowed_ids = allowed.nonzero().squeeze(-1)
        draws = torch.randint(
            len(allowed_ids), shape[:2], generator=generator, device=generator.device if generator else device
        )
        return lookup(allowed_ids[draws.to(device)]).to(dtype)
    if strategy == "mask_token":
        if mask_token_id is None:
            raise ValueError("sgt_mask_strategy='mask_token' needs a tokenizer with a mask token")
        return lookup(torch.tensor([mask_token_id], device=device))[0].to(dtype).expand(shape).clone()
    if strategy == "zero":
        return torch.zeros(shape, device=device, dtype=dtype)
    if strategy == "uniform":
        real = (
            candidates if candidates is not None else torch.ones(shape[:2], dtype=torch.bool, device=device)
        )
        big = torch.finfo(torch.float32).max
        e = embeddings.float()
        low = e.masked_fill(~real.unsqueeze(-1), big).amin(dim=1, keepdim=True)
        high = e.masked_fill(~real.unsqueeze(-1), -big).amax(dim=1, keepdim=True)
        empty = ~real.any(dim=1).view(-1, 1, 1)
        low, high = low.masked_fill(empty, 0.0), high.masked_fill(empty, 0.0)
        u = torch.rand(shape, generator=generator, device=generator.device if generator else device).to(
            device
        )
        return (low + u * (high - low)).to(dtype)
    raise ValueError(f"unknown mask strategy {strategy!r}; allowed: {', '.join(MASK_STRATEGIES)}")


def apply_mask(embeddings: torch.Tensor, positions: torch.Tensor, replacements: torch.Tensor) -> torch.Tensor:
    """``embeddings`` with ``replacements`` written where ``positions`` is True; the result is detached."""
    return torch.where(
        positions.unsqueeze(-1), replacements.to(embeddings.dtype), embeddings.detach()
    ).detach()
