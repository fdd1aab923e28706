"""``sgt-nlp demo``: plain fine-tuning vs saliency-guided training vs random masking, evaluated and reported.

The demo is the experiment runner (:mod:`sgt_nlp.experiments`) on its ``demo`` preset: a synthetic
ERASER-format task whose rationales are planted (``sgt_nlp.synthetic``), a WordPiece vocabulary trained on it,
and a small BERT built from a config, all offline. The same initial weights are trained three times -- plain,
SGT (the lowest-saliency half of the tokens masked) and random-mask (the same amount masked at random: the
control for "masking in general") -- and every model is explained on the full test split with Gradient (the
``l2`` score SGT trains on, and grad x input), Integrated Gradients and Random (5 draws). The verdict is one
sentence per method with paired bootstrap 95 % intervals over test examples (and seeds), also at the top of
``report.html``. With ``--data_dir`` and ``--model`` the same runs on real data and a real model.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import SaliencyGuidedTrainingArguments, check_sgt_setting
from .demo_folder import publish_shortcuts, remove_demo_outputs
from .demo_text import bottom_line
from .experiments import (
    PRESETS,
    REMOVALS,
    DatasetSpec,
    Experiment,
    ExperimentSpec,
    SpecError,
    validate_spec,
)
from .experiments.verdicts import MEASURES
from .files import atomic_write_text
from .metrics.verdict_rule import DEPENDS, NOT_MEASURED, normalisation_verdict
from .report.experiment import METHOD_TITLES
from .synthetic import TEMPLATE_NAMES
from .validation import UsageError, check_finite_fields, check_number, check_positive, parse_seeds

if TYPE_CHECKING:
    from transformers import HfArgumentParser

logger = logging.getLogger(__name__)

#: the demo's verdict per method is comprehensiveness from three measures that must agree (raw AOPC, AOPC
#: minus the same model's Random AOPC, NAOPC with all-order bounds: :mod:`sgt_nlp.experiments.verdicts`);
#: NAOPC with evaluated bounds is shown, labelled, and AUPRC against the planted rationale beside it
VERDICT_METRICS = (
    ("comprehensiveness_aopc", "AOPC"),
    ("comprehensiveness_aopc_minus_random", "AOPC − Random"),
    ("comprehensiveness_naopc_bounds", "NAOPC (all-order bounds)"),
    ("comprehensiveness_naopc", "NAOPC (evaluated bounds, not deciding)"),
    ("auprc_visible", "AUPRC vs the rationale"),
)
#: the measures that decide (the others are shown)
DECIDING = MEASURES["comprehensiveness"]
WORDS = {"better": "helped", "worse": "hurt", DEPENDS: DEPENDS}

#: the demo preset: the defaults of every option below that it sets
DEMO = PRESETS["demo"]
DEMO_TASK = DEMO.datasets[0]
#: ``--quick``: the demo preset's synthetic task, cut to a few dozen documents
QUICK_SYNTHETIC = {**DEMO_TASK.synthetic, "n_train": 96, "n_val": 16, "n_test": 16}


def _sgt_option(name: str) -> Any:
    """An ``sgt_*`` option exactly as :class:`SaliencyGuidedTrainingArguments` defines it (default, help,
    choices)."""
    owner = next(f for f in fields(SaliencyGuidedTrainingArguments) if f.name == name)
    return field(default=owner.default, metadata=dict(owner.metadata))


@dataclass
class DemoSettings:
    """The options of ``sgt-nlp demo``. Defaults come from their owners: the ``demo`` preset (task, training,
    removal) and :class:`SaliencyGuidedTrainingArguments` (the ``sgt_*`` settings of the SGT arm)."""

    output_dir: str = field(
        default="sgt_demo", metadata={"help": "where to write data, models and the report"}
    )
    seeds: str = field(
        default=",".join(map(str, DEMO.seeds)),
        metadata={"help": "comma-separated seeds, pooled in the intervals"},
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "an ERASER folder instead of the synthetic task"}
    )
    model: str | None = field(
        default=None,
        metadata={
            "help": "a model folder, or 'minilm' for the PyPI MiniLM, instead of a small BERT built from a "
            "config"
        },
    )
    templates: str = field(
        default=DEMO_TASK.synthetic["templates"],
        metadata={
            "choices": list(TEMPLATE_NAMES),
            "help": "synthetic task variant: lexical (label words) or contrastive (same words, order "
            "decides; harder)",
        },
    )
    n_train: int = field(
        default=DEMO_TASK.synthetic["n_train"], metadata={"help": "synthetic training documents"}
    )
    n_test: int = field(default=DEMO_TASK.synthetic["n_test"], metadata={"help": "synthetic test documents"})
    epochs: float = field(default=DEMO_TASK.epochs, metadata={"help": "training epochs of every arm"})
    learning_rate: float = field(
        default=DEMO_TASK.learning_rates[0], metadata={"help": "every arm's learning rate"}
    )
    batch_size: int = field(default=DEMO_TASK.batch_size, metadata={"help": "training batch size"})
    max_length: int = field(default=DEMO_TASK.max_length, metadata={"help": "word pieces per document"})
    sgt_mask_fraction: float = _sgt_option("sgt_mask_fraction")
    sgt_kl_weight: float = _sgt_option("sgt_kl_weight")
    sgt_mask_strategy: str = _sgt_option("sgt_mask_strategy")
    removal: str = field(
        default=DEMO.removals[0],
        metadata={
            "choices": list(REMOVALS),
            "help": "how words are removed for the faithfulness metrics (delete: ERASER's)",
        },
    )
    max_eval_examples: int | None = field(
        default=None, metadata={"help": "evaluate a seeded sample of N test examples (unset: all)"}
    )
    naopc_bounds: str = field(
        default=DEMO.naopc_bounds,
        metadata={
            "choices": ["evaluated", "beam", "exact"],
            "help": "NAOPC's all-order bounds, the verdict's third measure: evaluated (default: not "
            "searched, the verdict says so) or beam (a greedy beam over all orderings of every test "
            "example; the quick demo takes 4 to 5 times as long)",
        },
    )
    no_random_mask: bool = field(default=False, metadata={"help": "leave out the random-mask control arm"})
    quick: bool = field(default=False, metadata={"help": "a tiny run (seconds) that exercises every step"})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "replace a demo with other settings in --output_dir (only the demo's own files and "
            "folders are deleted; anything else there stays)"
        },
    )

    bf16: bool = field(
        default=False,
        metadata={
            "help": "train and evaluate under bf16 autocast (the spec's mixed_precision: bf16; faster on "
            "CPUs with AVX512-BF16 or AMX). Default: fp32"
        },
    )

    def __post_init__(self) -> None:
        check_finite_fields(self)
        parse_seeds("--seeds", self.seeds)
        for name in ("n_train", "n_test", "batch_size", "max_length"):
            check_positive(f"--{name}", getattr(self, name), allow_none=False)
        check_positive("--max_eval_examples", self.max_eval_examples)
        check_number("--epochs", self.epochs, low=0.0, low_open=True)
        check_number("--learning_rate", self.learning_rate, low=0.0, low_open=True)
        for name in ("sgt_mask_fraction", "sgt_kl_weight", "sgt_mask_strategy"):
            check_sgt_setting(name, getattr(self, name), f"--{name}")


def demo_spec(args: DemoSettings) -> ExperimentSpec:
    """The ``demo`` preset with the command line's changes."""
    spec = DEMO
    dataset = DEMO_TASK
    if args.data_dir:
        dataset = DatasetSpec(
            name=re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(args.data_dir).resolve().name).lstrip(".") or "data",
            source="eraser",
            path=str(Path(args.data_dir).resolve()),
            max_length=dataset.max_length,
            epochs=dataset.epochs,
            learning_rates=dataset.learning_rates,
            batch_size=dataset.batch_size,
        )
    else:
        dataset = replace(
            dataset,
            synthetic={
                **dataset.synthetic,
                "templates": args.templates,
                "n_train": args.n_train,
                "n_test": args.n_test,
            },
        )
    dataset = replace(
        dataset,
        epochs=args.epochs,
        learning_rates=(args.learning_rate,),
        batch_size=args.batch_size,
        max_length=args.max_length,
        test_examples=args.max_eval_examples,
    )
    arms: dict[str, dict[str, Any]] = {"plain": {"sgt_mask_fraction": 0.0}}
    sgt = {
        "sgt_mask_fraction": args.sgt_mask_fraction,
        "sgt_kl_weight": args.sgt_kl_weight,
        "sgt_mask_strategy": args.sgt_mask_strategy,
    }
    arms["sgt"] = sgt
    if not args.no_random_mask:
        arms["random_mask"] = {**sgt, "sgt_mask_selection": "random"}
    removals = (args.removal,)  # one removal mode keeps the demo within minutes; the presets evaluate two
    spec = replace(
        spec,
        datasets=(dataset,),
        arms=arms,
        seeds=parse_seeds("--seeds", args.seeds),
        removals=removals,
        model=args.model or "tiny",
        naopc_bounds=args.naopc_bounds,
        bounds_beam_width=1,  # greedy: the bounds are the demo's costliest part when searched
        mixed_precision="bf16" if args.bf16 else spec.mixed_precision,
    )
    if args.quick:
        synthetic = dataset.synthetic if args.data_dir else {**QUICK_SYNTHETIC, "templates": args.templates}
        spec = replace(
            spec,
            datasets=(replace(dataset, epochs=1.0, max_length=96, synthetic=synthetic),),
            ig_steps=4,
            random_draws=2,
            bootstrap_resamples=500,
        )
    return validate_spec(spec, "sgt-nlp demo options")


def method_sentences(result: dict[str, Any], spec: ExperimentSpec) -> list[str]:
    """One line per method with one word for it: SGT ``helped`` / ``hurt`` comprehensiveness when raw AOPC,
    AOPC − Random and NAOPC with all-order bounds all say so beyond their intervals against plain,
    ``depends on normalisation`` when they differ, ``within noise`` when none is called; then the numbers
    (paired 95 % intervals vs plain, the verdict vs random-mask when it ran), NAOPC with evaluated bounds
    labelled as not deciding, and AUPRC against the rationale."""
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
            f"Accuracy: SGT {_signed(accuracy)} vs plain (test, {len(vs_plain['seeds'])} seed(s)); "
            f"faithfulness below is comprehensiveness under removal '{removal}', intervals are paired "
            + (
                "bootstrap 95 % over test examples and seeds."
                if len(vs_plain["seeds"]) > 1
                else "bootstrap 95 % over test examples."
            )
        )
        for method in methods:
            verdict = _verdict(vs_plain, removal, method)
            parts = []
            for metric, title in VERDICT_METRICS:
                row = _row(vs_plain, removal, method, metric)
                if row is not None and not math.isnan(row["difference"]["mean"]):
                    parts.append(f"{title} {_signed(row['difference'])}")
            text = f"{METHOD_TITLES.get(method, method)}: SGT {verdict} (vs plain: {', '.join(parts)}"
            if vs_random is not None:
                text += f"; vs random-mask: {_verdict(vs_random, removal, method)}"
            sentences.append(text + ").")
    return sentences


def _verdict(comparison: dict[str, Any], removal: str, method: str) -> str:
    """``helped`` / ``hurt`` / ``depends on normalisation`` / ``within noise`` from the deciding measures."""
    measures: dict[str, str | None] = {}
    for metric in DECIDING:
        if method == "random" and metric.endswith("_minus_random"):
            continue  # Random minus its own Random AOPC is 0 by definition
        row = _row(comparison, removal, method, metric)
        measures[metric] = None if row is None else row["outcome"]
    combined = normalisation_verdict(measures)
    word, _, note = combined.partition(" (")
    word = WORDS.get(word, "within noise" if word != "no data" else "no data")
    return f"{word} ({NOT_MEASURED})" if NOT_MEASURED in note else word


def _row(comparison: dict[str, Any], removal: str, method: str, metric: str) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in comparison["rows"]
            if r["removal"] == removal and r["method"] == method and r["metric"] == metric
        ),
        None,
    )


def _signed(interval: dict[str, float]) -> str:
    return f"{interval['mean']:+.3f} [{interval['low']:+.3f}, {interval['high']:+.3f}]"


def run_demo(spec: ExperimentSpec, output_dir: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Train, evaluate, compare; writes ``results.{md,json,png}``, ``verdict.md`` and ``report.html``.

    A folder holding this demo with the same settings is resumed; one holding a demo with other settings is
    refused unless ``overwrite``, which deletes only what the demo writes (:func:`remove_demo_outputs`)."""
    from .report import build_report
    from .report.eval_runs import load_eval_dir, merge_methods

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(output_dir)
    started = time.perf_counter()
    logger.info(
        "the demo trains and evaluates %d models per seed: 3.5 to 6 minutes per seed on two CPU "
        "cores (--quick: about a minute)",
        len(spec.arms),
    )
    experiment = Experiment(spec, out, out / "work", keep_models=True)
    try:
        result = experiment.run()
    except SpecError:  # settings changed since the last demo in this folder
        previous = json.loads((out / "spec.json").read_text())
        if previous.get("name") != spec.name:  # never wipe another experiment's records
            raise
        if not overwrite:
            raise UsageError(
                f"{out} holds a demo with other settings (e.g. --quick against a full demo); choose another "
                "--output_dir, or pass --overwrite_output_dir to replace the demo's files (others stay)"
            ) from None
        removed = remove_demo_outputs(out, previous)
        logger.warning("%s held a demo with other settings: removed %s", out, ", ".join(removed))
        experiment = Experiment(spec, out, out / "work", keep_models=True)
        result = experiment.run()
    sentences = method_sentences(result, spec)
    line = bottom_line(result, sentences)
    publish_shortcuts(out, spec, result)
    atomic_write_text(out / "verdict.md", "\n".join(f"- {s}" for s in sentences) + "\n")
    dataset = spec.datasets[0]
    lr = result["datasets"][dataset.name]["learning_rate"]
    seed = spec.seeds[0]
    runs = []
    for arm in spec.arms:
        evaluation = out / "work" / dataset.name / f"{arm}_seed{seed}_lr{lr:g}" / "eval"
        if (evaluation / "main" / "summary.json").is_file():
            run = load_eval_dir(evaluation / "main")
            if (evaluation / "gradient_l2" / "summary.json").is_file():  # the verdict names it: its rows too
                merge_methods(run, load_eval_dir(evaluation / "gradient_l2"), {"gradient": "gradient_l2"})
            runs.append(run)
    report = build_report(runs, out / "report.html", verdict=sentences, bottom_line=line) if runs else None
    return {
        "verdict": sentences,
        "bottom_line": line,
        "report": report,
        "table": experiment.results_path.read_text(),
        "table_path": experiment.results_path,
        "seconds": time.perf_counter() - started,
        "result": result,
    }


def make_parser() -> HfArgumentParser:
    """The parser of ``sgt-nlp demo``, generated from :class:`DemoSettings`."""
    from transformers import HfArgumentParser

    return HfArgumentParser(
        # transformers types this argument as DataClassType, a NewType of Any that no class matches
        DemoSettings,  # type: ignore[arg-type]
        prog="sgt-nlp demo",
        description="Train the same small BERT three times (plain, SGT, random-mask) on a synthetic task "
        "with planted rationales, explain every model on the full test split (Gradient, Integrated "
        "Gradients, Random) and write paired bootstrap comparisons, a one-sentence verdict per method and an "
        "HTML report. Offline; the experiment runner's 'demo' preset (sgt-nlp experiment --preset demo).",
    )


def parse_settings(argv: list[str] | None = None) -> DemoSettings:
    """:class:`DemoSettings` from command-line arguments."""
    (settings,) = make_parser().parse_args_into_dataclasses(args=argv)
    return settings


def main(argv: list[str] | None = None) -> None:
    """Runs the demo and prints the task, the arms, the verdict and where the report is."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = parse_settings(argv)
    try:
        spec = demo_spec(args)
    except SpecError as exc:  # the options made a spec that cannot run: a usage error
        raise UsageError(str(exc)) from None
    result = run_demo(spec, args.output_dir, overwrite=args.overwrite_output_dir)
    if not args.data_dir:
        from .synthetic import SyntheticConfig, describe

        task = spec.datasets[0].synthetic
        print("\n" + describe(SyntheticConfig(**task)))
    print("\n" + arms_table(result["result"]))
    print("\nBottom line: " + result["bottom_line"])
    print("\nVerdict:\n" + "\n".join(f"- {s}" for s in result["verdict"]))
    print(f"\nevery metric with its interval: {result['table_path']}")
    print(f"report: {result['report']}  ({math.ceil(result['seconds'])} s)")


def arms_table(result: dict[str, Any]) -> str:
    """Accuracy and time per epoch of each arm (mean ± sd over seeds)."""
    lines = ["| arm | val accuracy | test accuracy | s/epoch |", "|---|---|---|---|"]
    for data in result["datasets"].values():
        for arm, info in data["arms"].items():
            cells = [
                _mean_sd(info["val_accuracy"]),
                _mean_sd(info["test_accuracy"]),
                _mean_sd(info["seconds_per_epoch"], 0),
            ]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_sd(value: list[float] | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"
