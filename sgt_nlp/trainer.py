"""``SaliencyGuidedTrainer``: a drop-in ``transformers.Trainer`` that trains with Saliency Guided Training."""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput

from . import objective
from .config import SaliencyGuidedTrainingArguments, write_sgt_settings
from .masking import never_drawn_ids, special_ids_of
from .precision import device_of, fp32_attention
from .saliency import embedding_forward_kwargs, word_embedding_layer
from .trainer_checks import check_datasets, check_gradient_checkpointing, check_model

logger = logging.getLogger(__name__)

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
    ``sgt_mask_selection``, random or most salient ones; see ``SaliencyGuidedTrainingArguments``). Everything
    else, from the optimiser to checkpoints, is the stock ``Trainer``. The loss is a per-batch mean, so the
    Trainer divides it by the accumulation steps (``loss_is_scaled_for_ga = False``), which makes accumulation
    equal to the larger batch.
    """

    loss_is_scaled_for_ga = False
    args: SaliencyGuidedTrainingArguments  # __init__ turns plain TrainingArguments into these

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
        check_gradient_checkpointing(args)
        super().__init__(model, args, *pargs, **kwargs)
        self._metrics: dict[str, dict[str, list[float]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }
        self._rng_step, self._micro_step, self._eval_calls = -1, 0, 0
        assert self.model is not None  # Trainer.__init__ took it from model or model_init (or raised)
        check_model(self.model, self.processing_class, self.args)
        self._special_ids = special_ids_of(self.processing_class, self.model.config)
        self._never_drawn = never_drawn_ids(self.processing_class, self.model.config)
        check_datasets(
            {"train_dataset": self.train_dataset, "eval_dataset": self.eval_dataset},
            # nn.Module.__getattr__ is typed Tensor | Module: the config of a transformers model
            self.model.config.num_labels,  # type: ignore[union-attr, arg-type]
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

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """The stock save, plus ``sgt_settings.json``: the SGT settings as JSON, which ``sgt-nlp evaluate``
        reads instead of the pickled ``training_args.bin`` (a pickle from someone else's folder can run
        code)."""
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            folder = output_dir if output_dir is not None else self.args.output_dir
            assert folder is not None  # TrainingArguments.__post_init__ sets a default
            write_sgt_settings(folder, self.args)

    def evaluate(self, *args, **kwargs) -> dict[str, float]:
        # Every evaluation draws the same replacement tokens, so eval_masked_accuracy compares across
        # evaluations.
        self._eval_calls = 0
        return super().evaluate(*args, **kwargs)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ):
        """The SGT loss of one batch (the steps are the functions of :mod:`sgt_nlp.objective`). Under ``bf16``
        on a CPU, sdpa attention runs in float32 (:func:`sgt_nlp.precision.fp32_attention`: faster there)."""
        unwrapped = self.accelerator.unwrap_model(model)
        on_cpu_bf16 = self.args.bf16 and device_of(unwrapped).type == "cpu"
        with fp32_attention(unwrapped) if on_cpu_bf16 else contextlib.nullcontext():
            return self._compute_loss(model, unwrapped, inputs, return_outputs)

    def _compute_loss(
        self, model: nn.Module, unwrapped: nn.Module, inputs: dict[str, Any], return_outputs: bool
    ):
        args: SaliencyGuidedTrainingArguments = self.args
        training = model.training
        inputs = dict(inputs)
        special_tokens_mask = inputs.pop("special_tokens_mask", None)
        if inputs.get("labels") is None:
            raise ValueError(f"the batch has no 'labels' (keys: {', '.join(inputs)}); SGT needs gold labels")
        if args.sgt_mask_fraction == 0:
            return self._plain_loss(model, unwrapped, inputs, return_outputs)
        if "input_ids" not in inputs:
            raise ValueError("SGT needs 'input_ids' in the batch to find special tokens and embed tokens")

        batch = objective.prepare_batch(unwrapped, inputs, self._special_ids, special_tokens_mask)
        clean = objective.clean_pass(model, unwrapped, batch, args, training)
        generator = self._mask_generator(training)
        scores, degenerate = objective.saliency_scores(
            clean.grads, clean.embeddings, args.sgt_saliency_aggregation, batch.candidates, generator
        )
        k, positions = objective.choose_mask(
            args.sgt_mask_selection, scores, batch.candidates, args.sgt_mask_fraction, generator
        )
        masked = objective.mask_embeddings(
            args.sgt_mask_strategy,
            clean.embeddings,
            positions,
            word_embedding_layer(unwrapped),
            mask_token_id=getattr(self.processing_class, "mask_token_id", None),
            special_ids=self._never_drawn,
            candidates=batch.candidates,
            generator=generator,
        )
        # The masked forward must not open a second DDP forward (DDP would then see the word embedding table
        # as unused and mark it ready twice); FSDP, whose parameters only exist inside the wrapper, needs the
        # wrapper.
        masked_logits = objective.masked_forward(
            model if self.is_fsdp_enabled else unwrapped, masked, batch, training
        )
        loss, task_loss, kl = objective.sgt_loss(
            clean.logits, masked_logits, batch.labels, args.sgt_kl_weight, args.sgt_detach_kl_target
        )
        evaluated = (masked_logits, batch.labels) if not training else (None, None)
        self._record(
            "train" if training else "eval",
            objective.step_values(task_loss, kl, positions, batch.candidates, k, degenerate, *evaluated),
        )
        return (loss, SequenceClassifierOutput(loss=loss, logits=clean.logits)) if return_outputs else loss

    def _plain_loss(
        self, model: nn.Module, unwrapped: nn.Module, inputs: dict[str, Any], return_outputs: bool
    ):
        """Plain fine-tuning, as ``Trainer.compute_loss`` computes it at one accumulation step (with the
        padding-aware positions every forward here uses: decoders under left padding need them). In evaluation
        nothing is masked either: no saliency or masked pass, and no eval_masked_accuracy."""
        if "input_ids" in inputs:
            inputs.update(embedding_forward_kwargs(unwrapped, inputs))
        outputs = model(**inputs)
        self._record("train" if model.training else "eval", {"task_loss": outputs.loss.detach()})
        return (outputs.loss, outputs) if return_outputs else outputs.loss

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
        # Evaluation logs carry "<prefix>_runtime" (eval_runtime, test_runtime, ...); training step logs carry
        # "loss".
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
