"""Does ``--bf16`` change the numbers? fp32 and bf16 side by side on a trained MiniLM (issue 35, item 2).

    python scripts/bf16_agreement.py [--out docs/results/bf16_agreement] [--train_examples 1000]
                                     [--eval_examples 300] [--epochs 2] [--max_length 64]

1. Training: one seeded SGT run (``sgt_mask_fraction`` 0.5) of the pretrained MiniLM on a seeded subset of
   SST-2's training sentences, once in fp32 and once with ``bf16=True`` (CPU autocast through the stock
   ``TrainingArguments``); the dev-accuracy curve of both (same seed, same data order).
2. Evaluation: the fp32-trained model evaluated twice on the same SST-2 test sentences, fp32 and
   ``EvaluationConfig(bf16=True)``; per method and removal mode, the paired difference bf16 - fp32 of each
   example's comprehensiveness and sufficiency AOPC (mean and 95% example-bootstrap interval), how often the
   two predict the same class, and the Spearman correlation of the two word-score vectors (median and 10th
   percentile over examples with at least 3 words).

Writes ``<out>/bf16_agreement.json`` and ``<out>/bf16_agreement.md`` (the table ``docs/results.md`` quotes).
The machine's 2 cores were shared with other work, so the seconds are indicative only
(``scripts/bench_train_step.py`` and ``scripts/bench_eval.py`` time fp32 and bf16 interleaved).

``--stage`` splits the work so that parts can run side by side (models and partial results in ``--work``):
``train --precisions fp32`` beside ``train --precisions bf16``, then ``evaluate --precisions fp32`` beside
``evaluate --precisions bf16`` (both evaluate the fp32-trained model), then ``report``; ``all`` (the default)
runs them in turn.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("gradient", "integrated_gradients", "smoothgrad", "occlusion", "random")


def train(data_dir: Path, out: Path, bf16: bool, args: argparse.Namespace) -> dict[str, Any]:
    """One seeded SGT run; its dev-accuracy curve, final accuracy and seconds."""
    from sgt_nlp.config import SaliencyGuidedTrainingArguments
    from sgt_nlp.finetune import DataArguments, ModelArguments, RunArguments, run_training

    steps_per_epoch = -(-args.train_examples // args.batch_size)
    training_args = SaliencyGuidedTrainingArguments(
        output_dir=str(out),
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64,
        warmup_steps=0.1,
        weight_decay=0.01,
        seed=args.seed,
        data_seed=args.seed,
        eval_strategy="steps",
        eval_steps=max(1, steps_per_epoch // 4),
        save_strategy="no",
        logging_steps=10,
        report_to=[],
        use_cpu=True,
        bf16=bf16,
        disable_tqdm=True,
        sgt_mask_fraction=0.5,
    )
    started = time.perf_counter()
    trainer = run_training(
        ModelArguments(model_name_or_path="minilm", max_length=args.max_length),
        DataArguments(data_dir=str(data_dir), max_eval_samples=args.dev_examples),
        training_args,
        RunArguments(overwrite_output_dir=True),
    )
    seconds = time.perf_counter() - started
    history = trainer.state.log_history
    end = next((i for i, h in enumerate(history) if "train_runtime" in h), len(history))
    curve = [
        {"step": h["step"], "epoch": round(h["epoch"], 3), "accuracy": h["eval_accuracy"]}
        for h in history[:end]
        if "eval_accuracy" in h
    ]
    losses = [h["loss"] for h in history[:end] if "loss" in h]
    return {"curve": curve, "final_train_loss": losses[-1] if losses else None, "seconds": seconds}


def aopc(probs: np.ndarray, bins: list[np.ndarray], predicted: int) -> float:
    """mean over the AOPC bins of p(full)[pred] - p(perturbed)[pred]: the AOPC of one example."""
    return float(np.mean([probs[predicted] - b[predicted] for b in bins]))


def example_bootstrap(d: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def compare(fp32: dict[str, Any], bf16: dict[str, Any], removal: str, method: str) -> dict[str, Any]:
    """Paired per-example comparison of one method and removal mode in two evaluation results."""
    from scipy.stats import spearmanr

    rows: dict[str, list[float]] = {"comp": [], "suff": []}
    agree, rhos = [], []
    for a_out, b_out in zip(fp32["outputs"], bf16["outputs"], strict=True):
        a, b = a_out[removal][method], b_out[removal][method]
        pa, pb = int(np.argmax(a["probs"])), int(np.argmax(b["probs"]))
        agree.append(pa == pb)
        ts = sorted(a["thresholded"], key=float)
        for k, part in (("comp", 0), ("suff", 1)):
            va = aopc(np.asarray(a["probs"]), [np.asarray(a["thresholded"][t][part]) for t in ts], pa)
            vb = aopc(np.asarray(b["probs"]), [np.asarray(b["thresholded"][t][part]) for t in ts], pb)
            rows[k].append(vb - va)
        wa, wb = np.asarray(a["word_scores"]), np.asarray(b["word_scores"])
        if len(wa) >= 3 and np.ptp(wa) > 0 and np.ptp(wb) > 0:
            rhos.append(float(spearmanr(wa, wb).statistic))
    out: dict[str, Any] = {"method": method, "removal": removal, "examples": len(agree)}
    for k, d in rows.items():
        diffs = np.asarray(d)
        low, high = example_bootstrap(diffs)
        out[f"{k}_aopc_diff"] = {"mean": float(diffs.mean()), "low": low, "high": high}
    out["prediction_agreement"] = float(np.mean(agree))
    out["spearman_median"] = float(np.median(rhos)) if rhos else None
    out["spearman_p10"] = float(np.quantile(rhos, 0.1)) if rhos else None
    out["spearman_examples"] = len(rhos)
    out["seconds_fp32"] = float(sum(o[removal][method]["seconds"] for o in fp32["outputs"]))
    out["seconds_bf16"] = float(sum(o[removal][method]["seconds"] for o in bf16["outputs"]))
    return out


def markdown(report: dict[str, Any]) -> str:
    settings = report["settings"]
    lines = [
        f"SST-2, pretrained MiniLM fine-tuned with SGT in fp32 ({settings['train_examples']} "
        f"training sentences, {settings['epochs']} epochs, batch {settings['batch_size']}, "
        f"learning rate {settings['learning_rate']:g}, max_length "
        f"{settings['max_length']}), evaluated on {settings['eval_examples']} test "
        "sentences in fp32 and in bf16 (the same examples). Differences are bf16 - fp32, per example; "
        "intervals are 95% example-bootstrap.",
        "",
        "| method | removal | comp AOPC diff [95% CI] | suff AOPC diff [95% CI] | same prediction | "
        "Spearman median (p10) |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["evaluation"]:
        c, s = r["comp_aopc_diff"], r["suff_aopc_diff"]
        rho = "-" if r["spearman_median"] is None else f"{r['spearman_median']:.4f} ({r['spearman_p10']:.4f})"
        lines.append(
            f"| {r['method']} | {r['removal']} | {c['mean']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}] | "
            f"{s['mean']:+.4f} [{s['low']:+.4f}, {s['high']:+.4f}] | {r['prediction_agreement']:.3f} | "
            f"{rho} |"
        )
    lines += ["", "Dev accuracy during one seeded SGT run (same seed and data order):", ""]
    fp32, bf16 = report["training"]["fp32"], report["training"]["bf16"]
    lines += ["| step | epoch | fp32 | bf16 |", "|---|---|---|---|"]
    for a, b in zip(fp32["curve"], bf16["curve"], strict=False):
        lines.append(f"| {a['step']} | {a['epoch']:.2f} | {a['accuracy']:.3f} | {b['accuracy']:.3f} |")
    lines += [
        "",
        f"Training seconds (shared machine): fp32 {fp32['seconds']:.0f}, bf16 {bf16['seconds']:.0f}; "
        f"final training loss fp32 {fp32['final_train_loss']}, bf16 {bf16['final_train_loss']}.",
        f"Evaluation seconds (shared machine): fp32 {report['eval_seconds']['fp32']:.0f}, "
        f"bf16 {report['eval_seconds']['bf16']:.0f}. Test accuracy of the fp32-trained model on these "
        f"sentences: {report['test_accuracy']}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "bf16_agreement"))
    parser.add_argument(
        "--work", default=None, help="models and partial results (default: a temporary folder)"
    )
    parser.add_argument("--stage", default="all", choices=("all", "train", "evaluate", "report"))
    parser.add_argument("--precisions", default="fp32,bf16", help="which trainings --stage train runs")
    parser.add_argument("--sst2", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    parser.add_argument("--train_examples", type=int, default=400)
    parser.add_argument("--dev_examples", type=int, default=200)
    parser.add_argument("--eval_examples", type=int, default=80)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--max_length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--removals", default="delete,random_token")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.stage in ("all", "train"):
            for name in args.precisions.split(","):
                record = train(data_folder(args, work), work / f"model_{name}", name == "bf16", args)
                (work / f"training_{name}.json").write_text(json.dumps(record))
                print(name, "training:", json.dumps(record), flush=True)
        if args.stage in ("all", "evaluate"):
            for name in args.precisions.split(","):
                evaluate(data_folder(args, work), work, args, name)
        if args.stage in ("all", "report"):
            (work / "evaluation.json").write_text(json.dumps(compare_all(work, args)))
            report = {
                "settings": vars(args) | {"torch": torch.__version__, "threads": torch.get_num_threads()},
                "training": {
                    n: json.loads((work / f"training_{n}.json").read_text()) for n in ("fp32", "bf16")
                },
                **json.loads((work / "evaluation.json").read_text()),
            }
            (out / "bf16_agreement.json").write_text(json.dumps(report, indent=2))
            text = markdown(report)
            (out / "bf16_agreement.md").write_text(text)
            print(text)


def data_folder(args: argparse.Namespace, work: Path) -> Path:
    from sgt_nlp.experiments.data import write_sst2_as_eraser

    return write_sst2_as_eraser(args.sst2, work / "data", args.train_examples, seed=args.seed)


def evaluate(data_dir: Path, work: Path, args: argparse.Namespace, name: str) -> None:
    """The fp32-trained model evaluated in precision ``name`` (``work/eval_<name>.json``: what the comparison
    reads of each example's results, and the seconds); the two precisions can run side by side."""
    import torch

    from sgt_nlp.evaluation import EvaluationConfig, evaluate_rationales
    from sgt_nlp.loading import load_classifier

    removals = args.removals.split(",")
    model, tokenizer, _ = load_classifier(str(work / "model_fp32"), torch.device("cpu"))
    bf16 = name == "bf16"
    config = EvaluationConfig(
        data_dir=str(data_dir),
        split="test",
        methods=tuple(args.methods.split(",")),
        removal=removals[0],
        extra_removals=tuple(removals[1:]),
        max_length=args.max_length,
        max_examples=args.eval_examples,
        sample="random",
        batch_size=32,
        masked_accuracy_curve=False,
        threshold=0.2,  # SST-2 has no human rationales (the runner's SST-2 setting)
        bf16=bf16,
    )
    started = time.perf_counter()
    result = evaluate_rationales(model, tokenizer, data_dir, config)
    seconds = time.perf_counter() - started
    print(name, f"evaluation: {seconds:.0f} s", flush=True)
    staged = {"seconds": seconds, "labels": [int(e.label) for e in result.examples], "outputs": []}
    for output in result.outputs:
        staged["outputs"].append(
            {
                removal: {method: _staged_method(output.result(removal, method)) for method in config.methods}
                for removal in removals
            }
        )
    (work / f"eval_{name}.json").write_text(json.dumps(staged))


def _staged_method(result: Any) -> dict[str, Any]:
    """What :func:`compare` reads of one method's result, as JSON (the staging never uses pickles)."""
    return {
        "probs": np.asarray(result.probs, dtype=float).tolist(),
        "thresholded": {
            repr(float(t)): [np.asarray(part, dtype=float).tolist() for part in parts[:2]]
            for t, parts in result.thresholded.items()
        },
        "word_scores": np.asarray(result.word_scores, dtype=float).tolist(),
        "seconds": float(result.seconds),
    }


def compare_all(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The two evaluations compared per method and removal mode."""
    removals = args.removals.split(",")
    results = {name: json.loads((work / f"eval_{name}.json").read_text()) for name in ("fp32", "bf16")}
    seconds = {name: r["seconds"] for name, r in results.items()}
    rows = [
        compare(results["fp32"], results["bf16"], removal, method)
        for removal in removals
        for method in args.methods.split(",")
    ]
    accuracy = {
        name: float(
            np.mean(
                [
                    int(np.argmax(o[removals[0]]["random"]["probs"])) == label
                    for o, label in zip(r["outputs"], r["labels"], strict=True)
                ]
            )
        )
        for name, r in results.items()
        if "random" in args.methods.split(",")
    }
    return {"evaluation": rows, "eval_seconds": seconds, "test_accuracy": accuracy}


if __name__ == "__main__":
    main()
