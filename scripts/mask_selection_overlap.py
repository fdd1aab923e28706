"""How stable is the set of tokens SGT masks? Overlap of the lowest-saliency sets of one trained model.

    python scripts/mask_selection_overlap.py --model runs/.../model --data_dir runs/experiment_cpu/sst2/data \
        [--batches 20] [--batch_size 32] [--max_length 64] [--fractions 0.5,0.2] [--aggregation l2]

SGT differs from its random-mask control only in *which* tokens it masks. On the training sentences, with the
trainer's defaults for the saliency (gradient of the gold label's logit, aggregated per token), this compares
per sequence the ``k = floor(fraction · n)`` masked positions of

- two training forwards (dropout on, the default ``sgt_saliency_pass="reuse"``; two dropout draws),
- one eval-mode forward (dropout off, ``sgt_saliency_pass="eval"``, as the authors' code),
- one uniform random draw (``sgt_mask_selection="random"``),

as the share of the first set's positions the second masks too (:func:`sgt_nlp.masking.mask_overlap`), and
the same share rescaled so that chance (two random draws: ``k / n``) is 0 and identical sets are 1. A
selection whose two dropout draws overlap at chance level masks random tokens in effect.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sgt_nlp.config import SaliencyGuidedTrainingArguments  # noqa: E402
from sgt_nlp.masking import mask_overlap, special_ids_of  # noqa: E402
from sgt_nlp.objective import (  # noqa: E402
    choose_mask,
    eval_mode_saliency,
    forward_capturing_embeddings,
    prepare_batch,
    reused_saliency,
    saliency_scores,
)
from sgt_nlp.saliency import word_embedding_layer  # noqa: E402

PAIRS = (
    ("train (dropout) vs train (dropout)", "train_a", "train_b"),
    ("train (dropout) vs eval (no dropout)", "train_a", "eval"),
    ("eval vs random", "eval", "random"),
    ("random vs random", "random", "random_b"),
)


def batches(
    model_dir: str, data_dir: str, batch_size: int, max_length: int, count: int
) -> tuple[nn.Module, Any, list[dict[str, torch.Tensor]]]:
    """``(model, tokenizer, collated training batches)``: the first ``count`` batches of a seeded shuffle."""
    from transformers import DataCollatorWithPadding

    from sgt_nlp.finetune_data import DataArguments, load_raw_splits, tokenize_splits
    from sgt_nlp.loading import load_classifier

    model, tokenizer, _ = load_classifier(model_dir)
    data = DataArguments(data_dir=data_dir)
    train, _, labels = load_raw_splits(data)
    train, _ = tokenize_splits(train, None, labels, tokenizer, data, max_length)
    train = train.shuffle(seed=0).select(range(min(len(train), batch_size * count)))
    keep = [c for c in train.column_names if c in ("input_ids", "attention_mask", "token_type_ids", "labels")]
    rows = train.select_columns(keep)
    collate = DataCollatorWithPadding(tokenizer)
    out = [
        collate([rows[j] for j in range(i, min(i + batch_size, len(rows)))])
        for i in range(0, len(rows), batch_size)
    ]
    return model, tokenizer, out


#: the trainer's defaults for which output's gradient is the saliency (gold label, its logit)
TRAINER_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(SaliencyGuidedTrainingArguments)}


def masked_sets(
    model: nn.Module,
    special_ids: list[int],
    batch: dict[str, torch.Tensor],
    fractions: list[float],
    aggregation: str,
    generator: torch.Generator,
) -> dict[float, tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]:
    """{fraction: (k [B], chance k/n [B], {name: boolean [B, T] masked positions})} for one batch, chosen
    by the trainer's own steps (:func:`saliency_scores`, :func:`choose_mask`)."""
    target = TRAINER_DEFAULTS["sgt_saliency_target"]
    output = TRAINER_DEFAULTS["sgt_saliency_output"]
    prepared = prepare_batch(model, batch, special_ids)
    candidates = prepared.candidates
    embedding = word_embedding_layer(model)
    with torch.no_grad():
        leaf = embedding(prepared.input_ids)
    grads, _ = eval_mode_saliency(model, leaf, prepared, target, output)
    passes = {"eval": (grads, leaf)}
    model.train()
    try:
        for name in ("train_a", "train_b"):
            logits, embeddings = forward_capturing_embeddings(
                model, embedding, prepared.model_inputs, prepared.input_ids
            )
            grads = reused_saliency(logits, embeddings, prepared.labels, target, output)
            passes[name] = (grads, embeddings)
    finally:
        model.eval()
    scores = {
        name: saliency_scores(grads, embeddings, aggregation, candidates, generator)[0]
        for name, (grads, embeddings) in passes.items()
    }
    result = {}
    for fraction in fractions:
        sets = {}
        for name, score in scores.items():
            k, sets[name] = choose_mask("saliency", score, candidates, fraction, generator)
        for name in ("random", "random_b"):
            _, sets[name] = choose_mask("random", None, candidates, fraction, generator)
        chance = k.double() / candidates.sum(-1).clamp(min=1).double()
        result[fraction] = (k, chance, sets)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a trained classifier folder")
    parser.add_argument("--data_dir", required=True, help="an ERASER folder with train.jsonl")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_length", type=int, default=64)
    parser.add_argument("--fractions", default="0.5,0.2")
    parser.add_argument("--aggregation", default="l2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    fractions = [float(f) for f in args.fractions.split(",")]
    torch.manual_seed(args.seed)  # the dropout draws
    generator = torch.Generator().manual_seed(args.seed)
    model, tokenizer, collated = batches(
        args.model, args.data_dir, args.batch_size, args.max_length, args.batches
    )
    shares: dict[tuple[float, str], list[torch.Tensor]] = {}
    chances: dict[float, list[torch.Tensor]] = {}
    from tqdm.auto import tqdm

    special_ids = special_ids_of(tokenizer)
    for batch in tqdm(collated, desc="batches"):
        for fraction, (k, chance, sets) in masked_sets(
            model, special_ids, batch, fractions, args.aggregation, generator
        ).items():
            chances.setdefault(fraction, []).append(chance[k > 0])
            for title, a, b in PAIRS:
                shares.setdefault((fraction, title), []).append(mask_overlap(sets[a], sets[b], k)[k > 0])
    sentences = sum(len(b["input_ids"]) for b in collated)
    print(
        f"model={args.model}; {sentences} training sentences; aggregation={args.aggregation}; "
        "overlap = share of the first set's masked tokens the second masks too"
    )
    print("| fraction | chance k/n | pair | overlap | above chance (0 = random, 1 = same set) |")
    print("|---|---|---|---|---|")
    for fraction in fractions:
        chance = torch.cat(chances[fraction])
        for title, _, _ in PAIRS:
            values = torch.cat(shares[(fraction, title)])
            scaled = ((values - chance) / (1 - chance).clamp(min=1e-9)).mean().item()
            sem = values.std().item() / math.sqrt(len(values))
            print(
                f"| {fraction:g} | {chance.mean().item():.3f} | {title} "
                f"| {values.mean().item():.3f} ± {sem:.3f} | {scaled:+.3f} |"
            )


if __name__ == "__main__":
    main()
