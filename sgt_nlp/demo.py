"""``sgt-nlp demo``: plain fine-tuning vs saliency-guided training vs random masking, evaluated and reported.

The demo is the experiment runner (:mod:`sgt_nlp.experiments`) on its ``demo`` preset: a synthetic
ERASER-format task whose rationales are planted (``sgt_nlp.synthetic``), a WordPiece vocabulary trained on it,
and a small BERT built from a config, all offline. The same initial weights are trained three times -- plain,
SGT (the lowest-saliency half of the tokens masked) and random-mask (the same amount masked at random: the
control for "masking in general") -- and every model is explained on the full test split with Gradient (the
``l2`` score SGT trains on, and grad x input), Integrated Gradients and Random (5 draws). The verdict is one
sentence per method with paired bootstrap 95 % intervals over test examples, also at the top of
``report.html``. With ``--data_dir`` and ``--model`` the same runs on real data and a real model.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from .experiments import (
    METHOD_TITLES,
    PRESETS,
    DatasetSpec,
    Experiment,
    ExperimentSpec,
    SpecError,
)

logger = logging.getLogger(__name__)

#: the demo's verdict reads comprehensiveness AOPC (faithfulness), its confidence-normalised NAOPC (a less
#: confident model has a smaller AOPC for that reason alone) and AUPRC against the planted rationale
VERDICT_METRICS = (("comprehensiveness_aopc", "comprehensiveness AOPC"),
                   ("comprehensiveness_naopc", "comprehensiveness NAOPC"), ("auprc_visible", "AUPRC vs the rationale"))
QUICK_SYNTHETIC = {"n_train": 96, "n_val": 16, "n_test": 16, "min_words": 40, "max_words": 100, "templates": "lexical"}


def demo_spec(args: argparse.Namespace) -> ExperimentSpec:
    """The ``demo`` preset with the command line's changes."""
    spec = PRESETS["demo"]
    dataset = spec.datasets[0]
    if args.data_dir:
        dataset = DatasetSpec(name=Path(args.data_dir).name or "data", source="eraser",
                              path=str(Path(args.data_dir).resolve()), max_length=dataset.max_length,
                              epochs=dataset.epochs, learning_rates=dataset.learning_rates,
                              batch_size=dataset.batch_size)
    else:
        dataset = replace(dataset, synthetic={**dataset.synthetic, "templates": args.templates,
                                              "n_train": args.n_train, "n_test": args.n_test})
    dataset = replace(dataset, epochs=args.epochs, learning_rates=(args.learning_rate,), batch_size=args.batch_size,
                      max_length=args.max_length, test_examples=args.max_eval_examples)
    arms = {"plain": {"sgt_mask_fraction": 0.0}}
    sgt = {"sgt_mask_fraction": args.sgt_mask_fraction, "sgt_kl_weight": args.sgt_kl_weight,
           "sgt_mask_strategy": args.sgt_mask_strategy}
    arms["sgt"] = sgt
    if not args.no_random_mask:
        arms["random_mask"] = {**sgt, "sgt_mask_selection": "random"}
    removals = (args.removal,)  # one removal mode keeps the demo within minutes; the presets evaluate two
    spec = replace(spec, datasets=(dataset,), arms=arms, seeds=tuple(int(s) for s in args.seeds.split(",")),
                   removals=removals, model=args.model or "tiny")
    if args.quick:
        synthetic = dataset.synthetic if args.data_dir else {**QUICK_SYNTHETIC, "templates": args.templates}
        spec = replace(spec, datasets=(replace(dataset, epochs=1.0, max_length=96, synthetic=synthetic),),
                       ig_steps=4, random_draws=2, bootstrap_resamples=500)
    return spec


def method_sentences(result: dict[str, Any], spec: ExperimentSpec) -> list[str]:
    """One plain sentence per method: for each verdict metric, did SGT help, by how much, with the paired 95 %
    interval vs plain (and vs random-mask when it ran). "Helped"/"hurt" need the whole interval vs plain on one
    side of 0; a gap whose interval covers 0 "made no difference beyond noise", however large it looks."""
    sentences = []
    for name, data in result["datasets"].items():
        comparisons = {(c["treatment"], c["control"]): c for c in data["comparisons"]}
        vs_plain, vs_random = comparisons.get(("sgt", "plain")), comparisons.get(("sgt", "random_mask"))
        if vs_plain is None:
            sentences.append(f"{name}: no comparison (no seed passed the gate or finished).")
            continue
        removal = spec.removals[0]
        methods = list(dict.fromkeys(r["method"] for r in vs_plain["rows"]))
        accuracy = vs_plain["accuracy"]
        sentences.append(
            f"Accuracy: SGT {_signed(accuracy)} vs plain (test, {len(vs_plain['seeds'])} seed(s)); faithfulness "
            f"below is under removal '{removal}', intervals are paired bootstrap 95 % over test examples."
        )
        for method in methods:
            parts = []
            for metric, title in VERDICT_METRICS:
                row = _row(vs_plain, removal, method, metric)
                if row is None or math.isnan(row["difference"]["mean"]):
                    continue
                word = {"better": "helped", "worse": "hurt"}.get(row["outcome"], "made no difference beyond noise")
                text = f"{title}: SGT {word} ({_signed(row['difference'])} vs plain"
                other = _row(vs_random, removal, method, metric) if vs_random else None
                if other is not None and not math.isnan(other["difference"]["mean"]):
                    text += f", {_signed(other['difference'])} vs random-mask"
                parts.append(text + ")")
            sentences.append(f"{METHOD_TITLES.get(method, method)}: {'; '.join(parts)}.")
    return sentences


def _row(comparison: dict[str, Any], removal: str, method: str, metric: str) -> dict[str, Any] | None:
    return next((r for r in comparison["rows"] if r["removal"] == removal and r["method"] == method
                 and r["metric"] == metric), None)


def _signed(interval: dict[str, float]) -> str:
    return f"{interval['mean']:+.3f} [{interval['low']:+.3f}, {interval['high']:+.3f}]"


def run_demo(spec: ExperimentSpec, output_dir: str | Path) -> dict[str, Any]:
    """Train, evaluate, compare; writes ``results.{md,json,png}``, ``verdict.md`` and ``report.html``."""
    from .report import build_report

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(output_dir)
    started = time.perf_counter()
    logger.info("the demo trains and evaluates %d models per seed: about 3.5 minutes per seed on two CPU cores "
                "(--quick: about a minute)", len(spec.arms))
    experiment = Experiment(spec, out, out / "work", keep_models=True)
    try:
        result = experiment.run()
    except SpecError:  # settings changed since the last demo in this folder: start over (it takes minutes)
        previous = json.loads((out / "spec.json").read_text())
        if previous.get("name") != spec.name:  # never wipe another experiment's records
            raise
        logger.warning("%s holds a demo with other settings: starting over", out)
        shutil.rmtree(out)
        experiment = Experiment(spec, out, out / "work", keep_models=True)
        result = experiment.run()
    sentences = method_sentences(result, spec)
    publish_shortcuts(out, spec, result)
    (out / "verdict.md").write_text("\n".join(f"- {s}" for s in sentences) + "\n")
    dataset = spec.datasets[0]
    lr = result["datasets"][dataset.name]["learning_rate"]
    seed = spec.seeds[0]
    eval_dirs = [out / "work" / dataset.name / f"{arm}_seed{seed}_lr{lr:g}" / "eval" / "main" for arm in spec.arms]
    eval_dirs = [d for d in eval_dirs if (d / "summary.json").is_file()]
    report = build_report(eval_dirs, out / "report.html", verdict=sentences) if eval_dirs else None
    return {"verdict": sentences, "report": report, "table": (out / "results.md").read_text(),
            "seconds": time.perf_counter() - started, "result": result}


def publish_shortcuts(out: Path, spec: ExperimentSpec, result: dict[str, Any]) -> None:
    """Short names for what the README's next commands use: ``<out>/seed<s>/{data, initial_model, model_<arm>,
    eval_<arm>}``, relative links into the runner's work folder."""
    dataset = spec.datasets[0]
    lr = result["datasets"][dataset.name]["learning_rate"]
    if lr is None:
        return
    work = out / "work" / dataset.name
    for seed in spec.seeds:
        folder = out / f"seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        targets = {"data": work / "data", "initial_model": work / f"tiny_seed{seed}"}
        for arm in spec.arms:
            run = work / f"{arm}_seed{seed}_lr{lr:g}"
            targets[f"model_{arm}"], targets[f"eval_{arm}"] = run / "model", run / "eval" / "main"
        for name, target in targets.items():
            link = folder / name
            if link.is_symlink():
                link.unlink()
            if target.exists() and not link.exists():
                link.symlink_to(os.path.relpath(target, folder), target_is_directory=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgt-nlp demo",
        description="Train the same small BERT three times (plain, SGT, random-mask) on a synthetic task with "
        "planted rationales, explain every model on the full test split (Gradient, Integrated Gradients, Random) "
        "and write paired bootstrap comparisons, a one-sentence verdict per method and an HTML report. Offline; "
        "the experiment runner's 'demo' preset (sgt-nlp experiment --preset demo).",
    )
    d = PRESETS["demo"].datasets[0]
    parser.add_argument("--output_dir", default="sgt_demo", help="where to write data, models and the report")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, pooled in the intervals (default: 0)")
    parser.add_argument("--data_dir", default=None, help="an ERASER folder instead of the synthetic task")
    parser.add_argument("--model", default=None, help="a model folder, or 'minilm' for the PyPI MiniLM, instead "
                        "of a small BERT built from a config")
    parser.add_argument("--templates", default=d.synthetic["templates"], choices=("lexical", "contrastive"),
                        help="synthetic task variant: lexical (label words) or contrastive (same words, order "
                        "decides; harder)")
    parser.add_argument("--n_train", type=int, default=d.synthetic["n_train"], help="synthetic training documents")
    parser.add_argument("--n_test", type=int, default=d.synthetic["n_test"], help="synthetic test documents")
    parser.add_argument("--epochs", type=float, default=d.epochs)
    parser.add_argument("--learning_rate", type=float, default=d.learning_rates[0])
    parser.add_argument("--batch_size", type=int, default=d.batch_size)
    parser.add_argument("--max_length", type=int, default=d.max_length)
    parser.add_argument("--sgt_mask_fraction", type=float, default=0.5)
    parser.add_argument("--sgt_kl_weight", type=float, default=1.0)
    parser.add_argument("--sgt_mask_strategy", default="random_token",
                        choices=("random_token", "mask_token", "zero", "uniform"))
    parser.add_argument("--removal", default="delete", choices=("delete", "mask_token", "random_token"),
                        help="how words are removed for the faithfulness metrics (default: delete, ERASER's)")
    parser.add_argument("--max_eval_examples", type=int, default=None,
                        help="evaluate a seeded sample of N test examples (default: all)")
    parser.add_argument("--no_random_mask", action="store_true", help="leave out the random-mask control arm")
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds) that exercises every step")
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = build_parser().parse_args(argv)
    spec = demo_spec(args)
    result = run_demo(spec, args.output_dir)
    if not args.data_dir:
        from .synthetic import SyntheticConfig, describe

        task = spec.datasets[0].synthetic
        print("\n" + describe(SyntheticConfig(**task)))
    print("\n" + arms_table(result["result"]))
    print("\nVerdict:\n" + "\n".join(f"- {s}" for s in result["verdict"]))
    out = Path(args.output_dir)
    print(f"\nevery metric with its interval: {out / 'results.md'}")
    print(f"report: {result['report']}  ({math.ceil(result['seconds'])} s)")


def arms_table(result: dict[str, Any]) -> str:
    """Accuracy and time per epoch of each arm (mean ± sd over seeds)."""
    lines = ["| arm | val accuracy | test accuracy | s/epoch |", "|---|---|---|---|"]
    for data in result["datasets"].values():
        for arm, info in data["arms"].items():
            cells = [_mean_sd(info["val_accuracy"]), _mean_sd(info["test_accuracy"]),
                     _mean_sd(info["seconds_per_epoch"], 0)]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_sd(value: list[float] | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"
