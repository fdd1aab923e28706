"""Checks ``SaliencyGuidedTrainer`` runs when it is built, so that a setting that cannot work fails before the
first step (not mid-epoch) with a message that says what to change."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from transformers import TrainingArguments

from .conservative import check_conservative
from .saliency import check_embedding_forward, classifier_of, reads_last_token, word_embedding_layer

if TYPE_CHECKING:
    from transformers import PreTrainedConfig

logger = logging.getLogger(__name__)

LABEL_COLUMNS = ("labels", "label", "label_ids")


def check_gradient_checkpointing(args: TrainingArguments) -> None:
    """Reentrant gradient checkpointing is refused: the saliency is taken with ``torch.autograd.grad``."""
    # typed dict | str | None: TrainingArguments.__post_init__ parses a JSON string into a dict
    kwargs = dict(args.gradient_checkpointing_kwargs or {})  # type: ignore[arg-type]
    if args.gradient_checkpointing and kwargs.get("use_reentrant", False):
        raise ValueError(
            "gradient_checkpointing_kwargs={'use_reentrant': True} cannot work with SGT: the saliency "
            "is taken with torch.autograd.grad, which reentrant checkpointing does not support. Use "
            "{'use_reentrant': False} (the default)."
        )


def check_model(model: nn.Module, processing_class: Any, args: Any) -> None:
    """The model must run from embeddings, be a single-label classifier (num_labels >= 2) and, for a
    last-token classifier, pad with the tokenizer's pad id; ``mask_token`` needs a tokenizer mask token.
    Warns about ``signed_mean`` (near-random rankings on BERT-family models) and a missing tokenizer."""
    word_embedding_layer(model)
    check_embedding_forward(model)
    # nn.Module.__getattr__ is typed Tensor | Module; a transformers model's config is a PreTrainedConfig
    config: PreTrainedConfig = model.config  # type: ignore[assignment]
    tokenizer_pad = getattr(processing_class, "pad_token_id", None)
    if reads_last_token(model) and tokenizer_pad is not None and tokenizer_pad != config.pad_token_id:
        raise ValueError(
            f"{type(classifier_of(model)).__name__} reads its logits at the last token that is not "
            f"config.pad_token_id={config.pad_token_id}, but the tokenizer pads with id {tokenizer_pad}: "
            "every right-padded example would be read at a padding token. Set "
            "model.config.pad_token_id = tokenizer.pad_token_id."
        )
    problem = getattr(config, "problem_type", None)
    # num_labels is None for a config without id2label: a TypeError here, left as it was
    if problem in ("multi_label_classification", "regression") or config.num_labels < 2:  # type: ignore[operator]
        raise ValueError(
            f"SaliencyGuidedTrainer supports single-label classification heads (num_labels >= 2); this model "
            f"has num_labels={config.num_labels}, problem_type={problem!r}. The KL consistency term compares "
            "class distributions, which multi-label and regression heads do not produce."
        )
    if args.sgt_mask_strategy == "mask_token" and getattr(processing_class, "mask_token_id", None) is None:
        raise ValueError(
            "sgt_mask_strategy='mask_token' needs a tokenizer with a mask token: pass "
            "processing_class=<tokenizer with mask_token> or choose another sgt_mask_strategy"
        )
    if getattr(args, "sgt_saliency_method", "gradient") == "conservative":
        check_conservative(model)
        if getattr(args, "gradient_checkpointing", False):
            raise ValueError(
                "sgt_saliency_method='conservative' cannot run with gradient_checkpointing: the recomputed "
                "forward of a checkpointed layer runs outside the conservative rules (another attention "
                "function), so the saliency and the loss would be taken on different graphs"
            )
    if args.sgt_saliency_aggregation == "signed_mean":
        logger.warning(
            "sgt_saliency_aggregation='signed_mean' is ~0 for every token of BERT-family models: the word "
            "embedding enters a LayerNorm, whose input gradient has zero mean over dimensions, so the "
            "ranking is rounding noise (near-random masking). Prefer 'l2' (magnitude) or 'grad_x_input'."
        )
    if processing_class is None:
        logger.warning(
            "No processing_class (tokenizer) given: special tokens are taken from the model config "
            "(pad/bos/eos/sep/cls ids); pass the tokenizer so that every special token is excluded from "
            "masking"
        )


def check_datasets(datasets: dict[str, Any], num_labels: int) -> None:
    """:func:`check_dataset` on each named dataset (a dict of splits split by split; None is skipped)."""
    for name, dataset in datasets.items():
        if isinstance(dataset, dict):
            for key, split in dataset.items():
                check_dataset(split, f"{name}[{key!r}]", num_labels)
        elif dataset is not None:
            check_dataset(dataset, name, num_labels)


def check_dataset(dataset: Any, name: str, num_labels: int) -> None:
    """Labels must exist and lie within the model's classes: fail before training rather than mid-epoch."""
    columns = getattr(dataset, "column_names", None)
    if columns is None:
        try:
            columns = list(dataset[0].keys())
        except Exception:  # an iterable dataset or one without dict items: checked batch by batch instead
            return
    label_column = next((c for c in LABEL_COLUMNS if c in columns), None)
    if label_column is None:
        raise ValueError(
            f"{name} has no label column (looked for {', '.join(LABEL_COLUMNS)}; "
            f"found {', '.join(columns)}). "
            "SGT needs gold labels: its saliency target and task loss are the label's."
        )
    values = (
        dataset[label_column] if hasattr(dataset, "column_names") else [row[label_column] for row in dataset]
    )
    values = list(values)
    not_ids = [i for i, v in enumerate(values) if isinstance(v, bool) or not isinstance(v, (int, np.integer))]
    if not_ids:
        row = not_ids[0]
        raise ValueError(
            f"{name} row {row}: {label_column}={values[row]!r} is not a class id; map label names to "
            f"integers 0..num_labels-1 first ({len(not_ids)} such rows)"
        )
    labels = torch.as_tensor(values)
    bad = ((labels < 0) | (labels >= num_labels)).nonzero().flatten()
    if len(bad):
        row = int(bad[0])
        raise ValueError(
            f"{name} row {row}: {label_column}={int(labels[row])} is outside the model's classes "
            f"0..{num_labels - 1} ({len(bad)} rows out of range)"
        )
