"""``sgt-nlp demo``: plain fine-tuning vs saliency-guided training on one task, evaluated and reported.

With no arguments everything is generated here, offline: a synthetic ERASER-format task whose rationales are
planted (``sgt_nlp.synthetic``), a WordPiece tokenizer trained on it with the ``tokenizers`` library, and a small
BERT built from a config. The same initial weights are trained twice on the same data in the same order, once
with the plain ``Trainer`` and once with ``SaliencyGuidedTrainer``; both are explained with Gradient, Integrated
Gradients and Random and scored against the planted rationales. With ``--data_dir`` and ``--model`` the same
runs on real data and a real model (e.g. ERASER movies and the pretrained MiniLM).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

DEMO_METHODS = ("gradient", "integrated_gradients", "random")
COMPARED = (
    ("accuracy", "accuracy", +1), ("comprehensiveness", "comp", +1), ("sufficiency", "suff", -1),
    ("comprehensiveness_aopc", "comp AOPC", +1), ("sufficiency_aopc", "suff AOPC", -1), ("auprc", "AUPRC", +1),
    ("token_f1", "token F1", +1),
)


@dataclass
class DemoSettings:
    """What the demo trains and evaluates; the defaults take about 70 s per seed on two idle CPU cores."""

    output_dir: str = "sgt_demo"
    data_dir: str | None = None
    model: str | None = None
    seeds: tuple[int, ...] = (0,)
    n_train: int = 1600
    n_val: int = 200
    n_test: int = 200
    min_words: int = 40
    max_words: int = 100
    templates: str = "lexical"
    max_length: int = 128
    epochs: float = 4.0
    learning_rate: float = 1e-3
    batch_size: int = 32
    hidden_size: int = 64
    layers: int = 2
    sgt_mask_fraction: float = 0.5
    sgt_kl_weight: float = 1.0
    sgt_mask_strategy: str = "random_token"
    removal: str = "delete"
    max_eval_examples: int | None = None
    ig_steps: int = 16
    eval_split: str = "test"


def _synthetic_data(settings: DemoSettings, seed: int, root: Path) -> Path:
    from .synthetic import make_synthetic_eraser

    return make_synthetic_eraser(
        root / "data", seed=seed, n_train=settings.n_train, n_val=settings.n_val, n_test=settings.n_test,
        min_words=settings.min_words, max_words=settings.max_words, templates=settings.templates,
    )


def _wordpiece_tokenizer(data_dir: Path, folder: Path):
    """A WordPiece tokenizer trained on the task's documents with the ``tokenizers`` library."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    docs = [p.read_text() for p in sorted((data_dir / "docs").iterdir())]
    trainer_tok = BertWordPieceTokenizer(lowercase=True)
    trainer_tok.train_from_iterator(
        docs + ["What is the sentiment of this review?"], vocab_size=2000, min_frequency=1,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    )
    folder.mkdir(parents=True, exist_ok=True)
    trainer_tok.save_model(str(folder))
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"))
    tokenizer.save_pretrained(folder)
    return tokenizer


def _initial_model(settings: DemoSettings, tokenizer, labels: list[str], seed: int, folder: Path) -> str:
    """Save the initial weights once, so that both training runs start from exactly the same model."""
    import torch
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    from .training import resolve_model_path

    id2label = dict(enumerate(labels))
    label2id = {v: k for k, v in id2label.items()}
    torch.manual_seed(seed)
    if settings.model:
        path = resolve_model_path(settings.model)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(labels), id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True
        )
    else:
        config = BertConfig(
            vocab_size=len(tokenizer), hidden_size=settings.hidden_size, num_hidden_layers=settings.layers,
            num_attention_heads=4, intermediate_size=settings.hidden_size * 2, max_position_embeddings=512,
            num_labels=len(labels), id2label=id2label, label2id=label2id,
        )
        model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _train(settings: DemoSettings, mode: str, init: str, data_dir: Path, seed: int, out: Path) -> dict[str, Any]:
    """Train one model (``plain`` or ``sgt``) from the saved initial weights; returns timing and metrics."""
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
    )

    from .config import SaliencyGuidedTrainingArguments
    from .trainer import SaliencyGuidedTrainer
    from .training import (
        DataArguments,
        classification_metrics,
        load_raw_splits,
        load_tokenizer,
        tokenize_splits,
        write_model_card,
    )

    tokenizer = load_tokenizer(init)
    data_args = DataArguments(data_dir=str(data_dir))
    train_raw, val_raw, labels = load_raw_splits(data_args)
    train, validation = tokenize_splits(train_raw, val_raw, labels, tokenizer, data_args, settings.max_length)
    model = AutoModelForSequenceClassification.from_pretrained(init)
    args = SaliencyGuidedTrainingArguments(
        output_dir=str(out), num_train_epochs=settings.epochs, learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size, per_device_eval_batch_size=64, warmup_steps=0.1,
        weight_decay=0.01, seed=seed, data_seed=seed, eval_strategy="no", save_strategy="no", report_to=[],
        logging_steps=20, use_cpu=not _cuda(), sgt_mask_fraction=settings.sgt_mask_fraction if mode == "sgt" else 0.0,
        sgt_kl_weight=settings.sgt_kl_weight, sgt_mask_strategy=settings.sgt_mask_strategy,
        dataloader_num_workers=0,
    )
    common = dict(model=model, train_dataset=train, eval_dataset=validation, processing_class=tokenizer,
                  data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=classification_metrics)
    if mode == "plain":
        trainer = Trainer(args=args.to_training_arguments(), **common)
    else:
        trainer = SaliencyGuidedTrainer(args=args, **common)
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    eval_metrics = trainer.evaluate() if validation is not None else {}
    trainer.save_model()
    write_model_card(
        out, base_model=settings.model or "small BERT built from a config (sgt-nlp demo)",
        data_description=f"`{data_dir}`", labels=labels,
        sgt_settings=args.sgt_settings() if mode == "sgt" else {"sgt_mask_fraction": 0.0},
        train_metrics=result.metrics, eval_metrics=eval_metrics,
    )
    return {"train_seconds": seconds, "val_accuracy": eval_metrics.get("eval_accuracy"), **result.metrics}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _evaluate(settings: DemoSettings, model_dir: Path, data_dir: Path, name: str, out: Path, seed: int) -> list[dict]:
    from .evaluation import EvaluationConfig, evaluate_rationales

    config = EvaluationConfig(
        model=str(model_dir), data_dir=str(data_dir), output_dir=str(out), split=settings.eval_split,
        methods=DEMO_METHODS, batch_size=32, removal=settings.removal, max_length=settings.max_length,
        max_examples=settings.max_eval_examples, ig_steps=settings.ig_steps, model_name=name, seed=seed,
    )
    return evaluate_rationales(config)


def run_seed(settings: DemoSettings, seed: int, root: Path) -> dict[str, Any]:
    """Data, tokenizer, initial model, two trainings and two evaluations for one seed."""
    from .eraser import load_split
    from .evaluation import summary_table
    from .training import add_evaluation_to_model_card

    root.mkdir(parents=True, exist_ok=True)
    data_dir = Path(settings.data_dir) if settings.data_dir else _synthetic_data(settings, seed, root)
    labels = list(load_split(data_dir, "train").labels)
    if settings.model:
        from .training import load_tokenizer, resolve_model_path

        tokenizer = load_tokenizer(resolve_model_path(settings.model))
    else:
        tokenizer = _wordpiece_tokenizer(data_dir, root / "tokenizer")
    init = _initial_model(settings, tokenizer, labels, seed, root / "initial_model")
    runs: dict[str, Any] = {}
    for mode in ("plain", "sgt"):
        logger.info("seed %d: training the %s model", seed, mode)
        runs[mode] = {"training": _train(settings, mode, init, data_dir, seed, root / f"model_{mode}")}
        logger.info("seed %d: evaluating the %s model", seed, mode)
        runs[mode]["rows"] = _evaluate(settings, root / f"model_{mode}", data_dir, mode, root / f"eval_{mode}", seed)
        add_evaluation_to_model_card(
            root / f"model_{mode}", summary_table(runs[mode]["rows"]),
            f"`sgt-nlp demo` evaluation on `{data_dir}` ({settings.eval_split}), removal `{settings.removal}`.",
        )
    return runs


def comparison_rows(per_seed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over seeds of every compared metric, per method and model, plus SGT − plain."""
    rows = []
    for method in DEMO_METHODS:
        for mode in ("plain", "sgt"):
            row: dict[str, Any] = {"method": method, "model": mode}
            for key, _, _ in COMPARED:
                values = [next(r[key] for r in run[mode]["rows"] if r["method"] == method) for run in per_seed]
                values = [v for v in values if v is not None]
                row[key] = (float(np.mean(values)), float(np.std(values)) if len(values) > 1 else 0.0)
            rows.append(row)
    return rows


def comparison_table(rows: list[dict[str, Any]], seeds: int) -> str:
    header = ["method", "model", *(title for _, title, _ in COMPARED)]
    lines = [
        f"mean ± std over {seeds} seed(s); higher is better except sufficiency (lower is better)",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in rows:
        cells = [row["method"], row["model"]]
        for key, _, _ in COMPARED:
            mean, std = row[key]
            cells.append(f"{mean:.3f} ± {std:.3f}" if seeds > 1 else f"{mean:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]]) -> str:
    """One honest sentence on whether SGT helped Gradient here, in the terms the issue asks about."""
    by = {(r["method"], r["model"]): r for r in rows}
    plain, sgt = by[("gradient", "plain")], by[("gradient", "sgt")]
    acc_gap = sgt["accuracy"][0] - plain["accuracy"][0]
    better = [title for key, title, sign in COMPARED[1:] if sign * (sgt[key][0] - plain[key][0]) > 0]
    worse = [title for key, title, sign in COMPARED[1:] if sign * (sgt[key][0] - plain[key][0]) < 0]
    parts = [f"Gradient: SGT vs plain accuracy {acc_gap:+.3f}"]
    parts.append(f"SGT better on {', '.join(better) or 'nothing'}")
    if worse:
        parts.append(f"worse on {', '.join(worse)}")
    if abs(acc_gap) > 0.01:
        parts.append("accuracies differ by more than one point, so faithfulness numbers compare different models")
    return "; ".join(parts) + "."


def run_demo(settings: DemoSettings) -> dict[str, Any]:
    """The whole demo; writes ``<output_dir>/report.html``, PNG plots, ``comparison.md`` and ``comparison.json``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .report import build_report

    out = Path(settings.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    per_seed = []
    for seed in settings.seeds:
        per_seed.append(run_seed(settings, seed, out / f"seed{seed}"))
    first = out / f"seed{settings.seeds[0]}"
    report = build_report([first / "eval_plain", first / "eval_sgt"], out / "report.html")
    rows = comparison_rows(per_seed)
    table = comparison_table(rows, len(settings.seeds))
    summary = verdict(rows)
    training = {
        mode: {
            "train_seconds": [run[mode]["training"]["train_seconds"] for run in per_seed],
            "val_accuracy": [run[mode]["training"].get("val_accuracy") for run in per_seed],
        }
        for mode in ("plain", "sgt")
    }
    (out / "comparison.md").write_text(table + "\n\n" + summary + "\n")
    (out / "comparison.json").write_text(json.dumps(
        {"settings": settings.__dict__, "rows": rows, "verdict": summary, "training": training,
         "seconds": time.perf_counter() - started}, indent=2, default=list))
    return {"table": table, "verdict": summary, "report": report, "seconds": time.perf_counter() - started}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgt-nlp demo",
        description="Train the same small BERT twice (plain Trainer, SaliencyGuidedTrainer) on a synthetic task "
        "with planted rationales, explain both (Gradient, Integrated Gradients, Random), and write a comparison "
        "table and an HTML report. Offline; about 70 seconds per seed on two CPU cores.",
    )
    d = DemoSettings()
    parser.add_argument("--output_dir", default=d.output_dir, help="where to write data, models and the report")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds; several give mean ± std (default: 0)")
    parser.add_argument("--data_dir", default=None, help="an ERASER folder instead of the synthetic task")
    parser.add_argument("--model", default=None, help="a model folder, or 'minilm' for the PyPI MiniLM, instead "
                        "of a small BERT built from a config")
    parser.add_argument("--templates", default=d.templates, choices=("lexical", "contrastive"),
                        help="synthetic task variant: lexical (label words) or contrastive (same words, order "
                        "decides; harder)")
    parser.add_argument("--n_train", type=int, default=d.n_train, help="synthetic training documents")
    parser.add_argument("--n_test", type=int, default=d.n_test, help="synthetic test documents")
    parser.add_argument("--epochs", type=float, default=d.epochs)
    parser.add_argument("--learning_rate", type=float, default=d.learning_rate)
    parser.add_argument("--batch_size", type=int, default=d.batch_size)
    parser.add_argument("--max_length", type=int, default=d.max_length)
    parser.add_argument("--sgt_mask_fraction", type=float, default=d.sgt_mask_fraction)
    parser.add_argument("--sgt_kl_weight", type=float, default=d.sgt_kl_weight)
    parser.add_argument("--sgt_mask_strategy", default=d.sgt_mask_strategy,
                        choices=("random_token", "mask_token", "zero", "uniform"))
    parser.add_argument("--removal", default=d.removal, choices=("delete", "mask_token", "random_token"),
                        help="how words are removed for the faithfulness metrics")
    parser.add_argument("--max_eval_examples", type=int, default=None, help="evaluate only the first N examples")
    parser.add_argument("--eval_split", default=d.eval_split, help="split to evaluate on (default: test)")
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds) that exercises every step")
    return parser


def settings_from_args(argv: list[str] | None = None) -> DemoSettings:
    args = build_parser().parse_args(argv)
    settings = DemoSettings(
        output_dir=args.output_dir, data_dir=args.data_dir, model=args.model,
        seeds=tuple(int(s) for s in args.seeds.split(",")), n_train=args.n_train, n_test=args.n_test,
        templates=args.templates, max_length=args.max_length, epochs=args.epochs, learning_rate=args.learning_rate,
        batch_size=args.batch_size, sgt_mask_fraction=args.sgt_mask_fraction, sgt_kl_weight=args.sgt_kl_weight,
        sgt_mask_strategy=args.sgt_mask_strategy, removal=args.removal, max_eval_examples=args.max_eval_examples,
        eval_split=args.eval_split,
    )
    if args.quick:
        settings.n_train, settings.n_val, settings.n_test, settings.epochs = 96, 16, 16, 1.0
        settings.ig_steps, settings.max_length = 4, 96
    return settings


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    settings = settings_from_args(argv)
    result = run_demo(settings)
    from .synthetic import SyntheticConfig, describe

    if settings.data_dir is None:
        config = SyntheticConfig(n_train=settings.n_train, n_val=settings.n_val, n_test=settings.n_test,
                                 min_words=settings.min_words, max_words=settings.max_words,
                                 templates=settings.templates)
        print("\n" + describe(config))
    print("\n" + result["table"])
    print("\n" + result["verdict"])
    print(f"\nreport: {result['report']}  ({math.ceil(result['seconds'])} s)")
