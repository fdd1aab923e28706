"""``SaliencyGuidedTrainer``: a drop-in ``transformers.Trainer`` that trains with Saliency Guided Training."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput

from .config import SaliencyGuidedTrainingArguments
from .masking import (
    apply_mask,
    maskable_positions,
    replacement_embeddings,
    select_mask_positions,
    special_ids_of,
    tokens_to_mask_per_sequence,
)
from .saliency import (
    aggregate_token_saliency,
    check_embedding_forward,
    classifier_of,
    embedding_forward_kwargs,
    forward_from_embeddings,
    reads_last_token,
    select_target_scores,
    word_embedding_layer,
)

logger = logging.getLogger(__name__)

LABEL_COLUMNS = ("labels", "label", "label_ids")
# Per-step values that are averaged over the steps of a logging interval; the rest are summed.
_SUMMED = {
    "sgt_unmasked_sequences",
    "sgt_degenerate_saliency",
    "_masked_tokens",
    "_maskable_tokens",
    "_correct",
    "_seen",
}


class SaliencyGuidedTrainer(Trainer):
    """Fine-tunes a sequence classifier with the SGT loss ``CE(f(x), y) + lambda * KL(f(x) || f(x~))``.

    ``x~`` is ``x`` with the embeddings of each sequence's lowest-saliency real tokens replaced (or, with
    ``sgt_mask_selection``, random or most salient ones; see ``SaliencyGuidedTrainingArguments``). Everything else, from the optimiser to checkpoints, is the stock
    ``Trainer``. The loss is a per-batch mean, so the Trainer divides it by the accumulation steps
    (``loss_is_scaled_for_ga = False``), which makes accumulation equal to the larger batch.
    """

    loss_is_scaled_for_ga = False

    def __init__(
        self, model: nn.Module | None = None, args: TrainingArguments | None = None, *pargs, **kwargs
    ):
        if args is None:
            args = SaliencyGuidedTrainingArguments(output_dir="tmp_trainer")
        elif not isinstance(args, SaliencyGuidedTrainingArguments):
            logger.warning(
                "SaliencyGuidedTrainer got plain TrainingArguments; using the default sgt_* settings"
            )
            args = SaliencyGuidedTrainingArguments.from_training_arguments(args)
        self._check_gradient_checkpointing(args)
        super().__init__(model, args, *pargs, **kwargs)
        self._metrics: dict[str, dict[str, list[float]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }
        self._rng_step, self._micro_step, self._eval_calls = -1, 0, 0
        self._check_model()
        self._special_ids = special_ids_of(self.processing_class, self.model.config)
        for dataset, name in ((self.train_dataset, "train_dataset"), (self.eval_dataset, "eval_dataset")):
            if isinstance(dataset, dict):
                for key, split in dataset.items():
                    self._check_dataset(split, f"{name}[{key!r}]")
            elif dataset is not None:
                self._check_dataset(dataset, name)

    # ---- validation -----------------------------------------------------------------------------------

    @staticmethod
    def _check_gradient_checkpointing(args: TrainingArguments) -> None:
        kwargs = dict(args.gradient_checkpointing_kwargs or {})
        if args.gradient_checkpointing and kwargs.get("use_reentrant", False):
            raise ValueError(
                "gradient_checkpointing_kwargs={'use_reentrant': True} cannot work with SGT: the saliency "
                "is taken with torch.autograd.grad, which reentrant checkpointing does not support. Use "
                "{'use_reentrant': False} (the default)."
            )

    def _check_model(self) -> None:
        model = self.model
        word_embedding_layer(model)
        check_embedding_forward(model)
        config = model.config
        tokenizer_pad = getattr(self.processing_class, "pad_token_id", None)
        if reads_last_token(model) and tokenizer_pad is not None and tokenizer_pad != config.pad_token_id:
            raise ValueError(
                f"{type(classifier_of(model)).__name__} reads its logits at the last token that is not "
                f"config.pad_token_id={config.pad_token_id}, but the tokenizer pads with id {tokenizer_pad}: "
                "every right-padded example would be read at a padding token. Set "
                "model.config.pad_token_id = tokenizer.pad_token_id."
            )
        problem = getattr(config, "problem_type", None)
        if problem in ("multi_label_classification", "regression") or config.num_labels < 2:
            raise ValueError(
                f"SaliencyGuidedTrainer supports single-label classification heads (num_labels >= 2); this model "
                f"has num_labels={config.num_labels}, problem_type={problem!r}. The KL consistency term compares "
                "class distributions, which multi-label and regression heads do not produce."
            )
        if self.args.sgt_mask_strategy == "mask_token":
            if getattr(self.processing_class, "mask_token_id", None) is None:
                raise ValueError(
                    "sgt_mask_strategy='mask_token' needs a tokenizer with a mask token: pass "
                    "processing_class=<tokenizer with mask_token> or choose another sgt_mask_strategy"
                )
        if self.args.sgt_saliency_aggregation == "signed_mean":
            logger.warning(
                "sgt_saliency_aggregation='signed_mean' is ~0 for every token of BERT-family models: the word "
                "embedding enters a LayerNorm, whose input gradient has zero mean over dimensions, so the ranking "
                "is rounding noise (near-random masking). Prefer 'l2' (magnitude) or 'grad_x_input'."
            )
        if self.processing_class is None:
            logger.warning(
                "No processing_class (tokenizer) given: special tokens are taken from the model config "
                "(pad/bos/eos/sep/cls ids); pass the tokenizer so that every special token is excluded from masking"
            )

    def _check_dataset(self, dataset: Any, name: str) -> None:
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
                f"{name} has no label column (looked for {', '.join(LABEL_COLUMNS)}; found {', '.join(columns)}). "
                "SGT needs gold labels: its saliency target and task loss are the label's."
            )
        values = dataset[label_column] if hasattr(dataset, "column_names") else [row[label_column] for row in dataset]
        values = list(values)
        not_ids = [i for i, v in enumerate(values) if isinstance(v, bool) or not isinstance(v, (int, np.integer))]
        if not_ids:
            row = not_ids[0]
            raise ValueError(
                f"{name} row {row}: {label_column}={values[row]!r} is not a class id; map label names to integers "
                f"0..num_labels-1 first ({len(not_ids)} such rows)"
            )
        labels = torch.as_tensor(values)
        num_labels = self.model.config.num_labels
        bad = ((labels < 0) | (labels >= num_labels)).nonzero().flatten()
        if len(bad):
            row = int(bad[0])
            raise ValueError(
                f"{name} row {row}: {label_column}={int(labels[row])} is outside the model's classes 0..{num_labels - 1} "
                f"({len(bad)} rows out of range)"
            )

    # ---- the loss ------------------------------------------------------------------------------------

    def _mask_generator(self, training: bool) -> torch.Generator:
        """A generator keyed by (seed, step, micro-step, process): resuming replays the same masks."""
        if training:
            if self.state.global_step != self._rng_step:
                self._rng_step, self._micro_step = self.state.global_step, 0
            key = (self.args.seed, self.state.global_step, self._micro_step, self.args.process_index)
            self._micro_step += 1
        else:
            key = (self.args.seed, -1, self._eval_calls, self.args.process_index)
            self._eval_calls += 1
        seed = 0
        for part in key:
            seed = (seed * 1_000_003 + part + 7) % (2**62)
        return torch.Generator().manual_seed(seed)

    def evaluate(self, *args, **kwargs) -> dict[str, float]:
        # Every evaluation draws the same replacement tokens, so eval_masked_accuracy compares across evaluations.
        self._eval_calls = 0
        return super().evaluate(*args, **kwargs)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ):
        args: SaliencyGuidedTrainingArguments = self.args
        mode = "train" if model.training else "eval"
        inputs = dict(inputs)
        special_tokens_mask = inputs.pop("special_tokens_mask", None)
        labels = inputs.get("labels")
        if labels is None:
            raise ValueError(f"the batch has no 'labels' (keys: {', '.join(inputs)}); SGT needs gold labels")
        if args.sgt_mask_fraction == 0:
            # Plain fine-tuning, as Trainer.compute_loss computes it at one accumulation step (with the
            # padding-aware positions every forward here uses: decoders under left padding need them). In
            # evaluation nothing is masked either: no saliency or masked pass, and no eval_masked_accuracy.
            if "input_ids" in inputs:
                unwrapped = self.accelerator.unwrap_model(model)
                inputs.update(embedding_forward_kwargs(unwrapped, inputs))
            outputs = model(**inputs)
            self._record(mode, {"task_loss": outputs.loss.detach()})
            return (outputs.loss, outputs) if return_outputs else outputs.loss
        if "input_ids" not in inputs:
            raise ValueError("SGT needs 'input_ids' in the batch to find special tokens and embed tokens")

        unwrapped = self.accelerator.unwrap_model(model)
        embedding = word_embedding_layer(unwrapped)
        input_ids = inputs["input_ids"]
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        forward_kwargs = embedding_forward_kwargs(unwrapped, model_inputs)
        forward_kwargs.update(
            {k: v for k, v in model_inputs.items() if k not in forward_kwargs and k != "input_ids"}
        )
        if "position_ids" in forward_kwargs:  # the clean forward numbers positions as the masked one does
            model_inputs["position_ids"] = forward_kwargs["position_ids"]
        candidates = maskable_positions(
            input_ids, inputs.get("attention_mask"), self._special_ids, special_tokens_mask
        )

        # The random control ranks nothing: no saliency gradient, no eval-mode saliency forward.
        needs_saliency = args.sgt_mask_selection != "random"
        grads = None
        if mode == "eval":
            word_embeddings = embedding(input_ids).detach()
            if needs_saliency:
                grads, logits = self._saliency_in_eval_mode(
                    unwrapped, word_embeddings, forward_kwargs, input_ids, labels
                )
            else:
                logits = forward_from_embeddings(unwrapped, word_embeddings, forward_kwargs, input_ids).detach()
        else:
            if needs_saliency and args.sgt_saliency_pass == "eval":
                with torch.no_grad():
                    leaf_source = embedding(input_ids)
                grads, _ = self._saliency_in_eval_mode(
                    unwrapped, leaf_source, forward_kwargs, input_ids, labels
                )
            # The clean forward goes through the wrapped model from input_ids, exactly as the plain Trainer's, so
            # DDP sees every parameter used inside its forward; the word embeddings are captured on the way.
            logits, word_embeddings = _forward_capturing_embeddings(model, embedding, model_inputs, input_ids)
            if needs_saliency and args.sgt_saliency_pass == "reuse":
                target = labels if args.sgt_saliency_target == "label" else logits.detach().argmax(-1)
                score = select_target_scores(logits, target, args.sgt_saliency_output).sum()
                (grads,) = torch.autograd.grad(score, word_embeddings, retain_graph=True)

        generator = self._mask_generator(mode == "train")
        scores = None
        degenerate = torch.zeros(candidates.shape[0], dtype=torch.bool, device=candidates.device)
        if grads is not None:
            scores = aggregate_token_saliency(grads, word_embeddings.detach(), args.sgt_saliency_aggregation)
            scores, degenerate = _replace_degenerate_scores(scores, candidates, generator)
        k = tokens_to_mask_per_sequence(candidates, args.sgt_mask_fraction)
        positions = select_mask_positions(args.sgt_mask_selection, scores, candidates, k, generator)
        replacements = replacement_embeddings(
            args.sgt_mask_strategy,
            word_embeddings,
            positions,
            # Embeddings whose forward is more than a lookup (Gemma's scaled rows) are asked for their rows.
            embedding if type(embedding).forward is not nn.Embedding.forward else embedding.weight,
            mask_token_id=getattr(self.processing_class, "mask_token_id", None),
            special_ids=self._special_ids,
            candidates=candidates,
            generator=generator,
        )
        masked_embeddings = apply_mask(word_embeddings, positions, replacements)
        # The masked forward must not open a second DDP forward (DDP would then see the word embedding table as
        # unused and mark it ready twice); FSDP, whose parameters only exist inside the wrapper, needs the wrapper.
        masked_model = model if self.is_fsdp_enabled else unwrapped
        with torch.set_grad_enabled(mode == "train"):
            masked_logits = forward_from_embeddings(
                masked_model, masked_embeddings, forward_kwargs, input_ids
            )

        task_loss = F.cross_entropy(logits.float(), labels.view(-1))
        log_p = F.log_softmax(logits.float(), dim=-1)
        log_q = F.log_softmax(masked_logits.float(), dim=-1)
        kl = F.kl_div(
            log_q,
            log_p.detach() if args.sgt_detach_kl_target else log_p,
            log_target=True,
            reduction="batchmean",
        )
        loss = task_loss + args.sgt_kl_weight * kl

        values = {
            "task_loss": task_loss.detach(),
            "kl_loss": kl.detach(),
            "_masked_tokens": positions.sum(),
            "_maskable_tokens": candidates.sum(),
            "sgt_unmasked_sequences": (k == 0).sum(),
            "sgt_degenerate_saliency": degenerate.sum(),
        }
        if mode == "eval":
            values["_correct"] = (masked_logits.argmax(-1) == labels.view(-1)).sum()
            values["_seen"] = torch.tensor(labels.numel(), device=labels.device)
        self._record(mode, values)
        if return_outputs:
            return loss, SequenceClassifierOutput(loss=loss, logits=logits)
        return loss

    def _saliency_in_eval_mode(self, unwrapped, word_embeddings, forward_kwargs, input_ids, labels):
        """Saliency from a separate forward with dropout off (the authors' choice), on a detached leaf."""
        was_training = unwrapped.training
        unwrapped.eval()
        try:
            leaf = word_embeddings.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = forward_from_embeddings(unwrapped, leaf, forward_kwargs, input_ids)
                target = labels if self.args.sgt_saliency_target == "label" else logits.detach().argmax(-1)
                score = select_target_scores(logits, target, self.args.sgt_saliency_output).sum()
                (grads,) = torch.autograd.grad(score, leaf)
        finally:
            unwrapped.train(was_training)
        return grads, logits.detach()

    # ---- metrics -------------------------------------------------------------------------------------

    def _record(self, mode: str, values: dict[str, torch.Tensor]) -> None:
        """Gather this step's values across processes (one collective) and keep them until the next log."""
        names = list(values)
        stacked = torch.stack(
            [torch.as_tensor(values[n], dtype=torch.float32).to(self.args.device) for n in names]
        )
        gathered = self.accelerator.gather(stacked.unsqueeze(0)).view(-1, len(names))
        for i, name in enumerate(names):
            column = gathered[:, i]
            value = column.sum() if name in _SUMMED else column.mean()
            self._metrics[mode][name].append(float(value))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Evaluation logs carry "<prefix>_runtime" (eval_runtime, test_runtime, ...); training step logs carry "loss".
        prefix = next(
            (k[: -len("runtime")] for k in logs if k.endswith("_runtime") and k != "train_runtime"), None
        )
        mode = "eval" if prefix else "train"
        collected = self._metrics[mode]
        if collected and (mode == "eval" or "loss" in logs):
            metrics = {
                name: (sum(vals) if name in _SUMMED else sum(vals) / len(vals))
                for name, vals in collected.items()
                if not name.startswith("_")
            }
            if collected.get("_maskable_tokens"):
                masked, maskable = sum(collected["_masked_tokens"]), sum(collected["_maskable_tokens"])
                metrics["sgt_masked_token_share"] = masked / max(maskable, 1.0)
            if collected.get("_seen"):
                metrics["masked_accuracy"] = sum(collected["_correct"]) / max(sum(collected["_seen"]), 1.0)
            logs.update({f"{prefix or ''}{name}": value for name, value in metrics.items()})
            collected.clear()
        super().log(logs, start_time)


def _forward_capturing_embeddings(
    model: nn.Module, embedding: nn.Embedding, inputs: dict[str, torch.Tensor], input_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``model(**inputs).logits`` and the word-embedding output of that same forward (in the graph).

    The captured call is the one on ``input_ids``: GPT-2 also embeds ``token_type_ids`` with its word table,
    a second call whose output is no word embedding (and which stays in the model, as the plain forward has
    it). A frozen table (LoRA) gives an output that needs no gradient; it is made to require one (as
    ``enable_input_require_grads`` does), so the saliency can be taken; the table itself stays frozen.
    """
    captured: list[torch.Tensor] = []

    def capture(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        ids = args[0] if args else None
        if ids is None or captured or not _same_ids(ids, input_ids):
            return None
        if torch.is_grad_enabled() and not output.requires_grad:
            output = output.detach().requires_grad_(True)
        captured.append(output)
        return output

    handle = embedding.register_forward_hook(capture)
    try:
        logits = model(**inputs).logits
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(
            f"the word embedding layer {type(embedding).__name__} never ran on the batch's input_ids during "
            "the forward; SGT needs the model to embed input_ids with get_input_embeddings()"
        )
    return logits, captured[0]


def _same_ids(ids: torch.Tensor, input_ids: torch.Tensor) -> bool:
    """Whether an embedding call's ids are the batch's ``input_ids`` (possibly viewed or reshaped)."""
    if ids.data_ptr() == input_ids.data_ptr() and ids.numel() == input_ids.numel():
        return True
    if ids.numel() != input_ids.numel():
        return False
    return torch.equal(ids.reshape(input_ids.shape), input_ids.to(ids.device))


def _replace_degenerate_scores(
    scores: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose saliency is non-finite or all zero (fp16 underflow) get random scores, and are counted.

    Ranking a row of zeros or NaNs would silently mask the first tokens; a random ranking is the honest
    fallback, and the count (logged as ``sgt_degenerate_saliency``) makes it visible.
    """
    real = candidates.any(dim=-1)
    finite = torch.isfinite(scores).all(dim=-1)
    nonzero = scores.masked_fill(~candidates, 0.0).abs().sum(dim=-1) > 0
    degenerate = real & ~(finite & nonzero)
    if bool(degenerate.any()):
        noise = torch.rand(scores.shape, generator=generator).to(scores.device)
        scores = torch.where(degenerate.unsqueeze(-1), noise, torch.nan_to_num(scores))
    return scores, degenerate
