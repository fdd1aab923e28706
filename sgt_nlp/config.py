"""``SaliencyGuidedTrainingArguments``: the ``TrainingArguments`` of saliency-guided training."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainingArguments

from .files import atomic_write_text
from .loading import SGT_SETTINGS_FILE
from .masking import MASK_SELECTIONS, MASK_STRATEGIES
from .saliency import AGGREGATIONS, TARGET_OUTPUTS
from .validation import UsageError, check_finite_fields, check_number

SALIENCY_TARGETS = ("label", "prediction")
SALIENCY_PASSES = ("reuse", "eval")
SALIENCY_METHODS = ("gradient", "conservative")

#: (TrainingArguments field, lowest, highest, highest excluded) of the numbers that have a range
TRAINING_RANGES: tuple[tuple[str, float | None, float | None, bool], ...] = (
    ("learning_rate", 0.0, None, False),
    ("weight_decay", 0.0, None, False),
    ("adam_beta1", 0.0, 1.0, True),
    ("adam_beta2", 0.0, 1.0, True),
    ("adam_epsilon", 0.0, None, False),
    ("max_grad_norm", 0.0, None, False),
    ("num_train_epochs", 0.0, None, False),
    ("warmup_steps", 0.0, None, False),
    ("label_smoothing_factor", 0.0, 1.0, True),
    ("seed", 0, 2**32 - 1, False),  # numpy's seed range (set_seed failed on a negative one at the start)
    ("data_seed", 0, 2**32 - 1, False),
    ("per_device_train_batch_size", 1, None, False),
    ("per_device_eval_batch_size", 1, None, False),
    ("gradient_accumulation_steps", 1, None, False),
)


#: the sgt_* settings with a list of values, and those with a range (lowest, highest, highest excluded)
SGT_CHOICES: dict[str, tuple[str, ...]] = {
    "sgt_mask_strategy": MASK_STRATEGIES,
    "sgt_mask_selection": MASK_SELECTIONS,
    "sgt_saliency_aggregation": AGGREGATIONS,
    "sgt_saliency_target": SALIENCY_TARGETS,
    "sgt_saliency_output": TARGET_OUTPUTS,
    "sgt_saliency_pass": SALIENCY_PASSES,
    "sgt_saliency_method": SALIENCY_METHODS,
}
SGT_RANGES: dict[str, tuple[float, float | None, bool]] = {
    "sgt_mask_fraction": (0.0, 1.0, True),
    "sgt_kl_weight": (0.0, None, False),
}


def check_sgt_setting(name: str, value: Any, where: str) -> None:
    """One ``sgt_*`` value (an option, or a spec's arm setting named by ``where``): a known choice, a finite
    number in its range, or a bool; anything else is a :class:`~sgt_nlp.validation.UsageError`."""
    if name in SGT_CHOICES:
        if not isinstance(value, str) or value not in SGT_CHOICES[name]:
            raise UsageError(f"{where}={value!r} is not one of: {', '.join(SGT_CHOICES[name])}")
    elif name in SGT_RANGES:
        low, high, high_open = SGT_RANGES[name]
        check_number(where, value, low=low, high=high, high_open=high_open, allow_none=False)
    elif not isinstance(value, bool):
        raise UsageError(f"{where}: true or false is needed, got {value!r}")


@dataclass
class SaliencyGuidedTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus the ``sgt_*`` knobs of Saliency Guided Training (Ismail et al., 2021).

    Each step the trainer ranks the real tokens of every sequence by the saliency of the target class,
    replaces the embeddings of the lowest ``sgt_mask_fraction`` of them, and adds
    ``sgt_kl_weight * KL(p(x) || p(x~))`` to the task loss. ``sgt_mask_fraction=0`` is plain fine-tuning.
    ``sgt_mask_selection`` swaps the ranking for the controls: ``random`` (no saliency at all) and ``highest``
    (the most salient tokens).
    """

    sgt_mask_fraction: float = field(
        default=0.5,
        metadata={
            "help": "Share of each sequence's maskable tokens (not special, not padding) masked per step: "
            "k = floor(fraction * n). 0 disables SGT and trains exactly like the plain Trainer."
        },
    )
    sgt_kl_weight: float = field(
        default=1.0, metadata={"help": "lambda: weight of KL(p(x) || p(masked x)) added to the task loss."}
    )
    sgt_mask_strategy: str = field(
        default="random_token",
        metadata={
            "help": "What replaces a masked token's embedding: 'random_token' (embedding of a random "
            "non-special vocabulary token), 'mask_token' (the tokenizer's mask token), 'zero', or 'uniform' "
            "(per-dimension uniform draw within that sequence's embedding range, the authors' image-code "
            "analogue).",
            "choices": list(MASK_STRATEGIES),
        },
    )
    sgt_mask_selection: str = field(
        default="saliency",
        metadata={
            "help": "Which k tokens are masked: 'saliency' (SGT: the k lowest-saliency), 'random' (k drawn "
            "uniformly per sequence, no saliency pass: masked-consistency training, a control) or 'highest' "
            "(the k most salient: the reversed control).",
            "choices": list(MASK_SELECTIONS),
        },
    )
    sgt_saliency_aggregation: str = field(
        default="l2",
        metadata={
            "help": "How a token's embedding gradient becomes its score: 'l2' (norm), 'l1', 'signed_mean', "
            "'grad_x_input', 'abs_grad_x_input'. The lowest scores are masked.",
            "choices": list(AGGREGATIONS),
        },
    )
    sgt_saliency_target: str = field(
        default="label",
        metadata={
            "help": "Which class's output the saliency explains: 'label' (gold, as the authors' code) or "
            "'prediction' (argmax).",
            "choices": list(SALIENCY_TARGETS),
        },
    )
    sgt_saliency_output: str = field(
        default="logit",
        metadata={
            "help": "Which output of the target class is differentiated: 'logit' (default; the authors' "
            "CIFAR and BIRD code), 'log_prob' (their MNIST code) or 'prob'.",
            "choices": list(TARGET_OUTPUTS),
        },
    )
    sgt_saliency_method: str = field(
        default="gradient",
        metadata={
            "help": "Which backward pass gives the saliency: 'gradient' (the plain gradient) or "
            "'conservative' (conservative propagation, Ali et al. 2022: attention probabilities and "
            "normalisation scales held constant in the backward; same single backward pass). Then "
            "aggregated by sgt_saliency_aggregation ('grad_x_input'/'abs_grad_x_input' are its relevances).",
            "choices": list(SALIENCY_METHODS),
        },
    )
    sgt_saliency_pass: str = field(
        default="reuse",
        metadata={
            "help": "'reuse' (default) takes the saliency from the training forward pass (dropout on; one "
            "forward fewer); 'eval' runs a separate forward in eval mode first (dropout off, as the authors' "
            "code).",
            "choices": list(SALIENCY_PASSES),
        },
    )
    sgt_detach_kl_target: bool = field(
        default=False,
        metadata={"help": "Stop the gradient through p(x) in the KL term (the authors' code does not)."},
    )

    def __post_init__(self) -> None:
        # NaN or inf anywhere (sgt_kl_weight nan trained to NaN weights and exited 0) and numbers out of range
        # are refused before TrainingArguments derives anything from them
        check_finite_fields(self)
        for name, low, high, high_open in TRAINING_RANGES:
            check_number(f"--{name}", getattr(self, name), low=low, high=high, high_open=high_open)
        if self.bf16 and not self.use_cpu:
            from transformers.utils import is_torch_bf16_gpu_available, is_torch_xla_available

            # TrainingArguments refuses bf16 without a bf16 GPU unless use_cpu is set; with no such GPU the
            # run is on the CPU anyway, where autocast runs bf16 (refused at training if not native there)
            self.use_cpu = not (is_torch_bf16_gpu_available() or is_torch_xla_available())
        super().__post_init__()
        for name in SGT_CHOICES | SGT_RANGES:
            check_sgt_setting(name, getattr(self, name), f"--{name}")

    @classmethod
    def from_training_arguments(cls, args: TrainingArguments, **sgt: Any) -> SaliencyGuidedTrainingArguments:
        """The same settings as ``args`` (a plain ``TrainingArguments``), with the given or default
        ``sgt_*``."""
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingArguments) if f.init}
        return cls(**values, **sgt)

    def to_training_arguments(self) -> TrainingArguments:
        """These settings without the ``sgt_*`` fields, for a plain ``Trainer`` run beside an SGT one."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainingArguments) if f.init}
        return TrainingArguments(**values)

    def sgt_settings(self) -> dict[str, object]:
        """The ``sgt_*`` fields as a plain dict, for model cards and logs."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name.startswith("sgt_")}


def write_sgt_settings(folder: str | Path, args: TrainingArguments) -> Path:
    """``<folder>/sgt_settings.json``: the ``sgt_*`` settings of ``args`` (none for a plain
    ``TrainingArguments``: plain fine-tuning), as JSON that any reader can load without running code."""
    settings = args.sgt_settings() if isinstance(args, SaliencyGuidedTrainingArguments) else {}
    text = json.dumps(settings, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"
    return atomic_write_text(Path(folder) / SGT_SETTINGS_FILE, text)
