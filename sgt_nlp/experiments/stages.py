"""The two heavy stages of one run: training an arm (with the runner's fixed Trainer settings) and evaluating
the trained model under every ordering and removal mode the spec asks for. The runner decides when they run
(records, resume, gate); these functions only do the work and return the record's content."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data import tiny_initial_model
from .records import RECORD_VERSION, bound_columns, compact_ordering, example_columns
from .spec import DatasetSpec, ExperimentSpec

if TYPE_CHECKING:  # the evaluation package is imported where it runs (it loads torch and transformers)
    from ..evaluation import EvaluationConfig


def train_run(
    spec: ExperimentSpec,
    dataset: DatasetSpec,
    data_dir: Path,
    arm: str,
    seed: int,
    lr: float,
    folder: Path,
    work: Path,
) -> dict[str, Any]:
    """Trains one run of ``arm`` into ``folder`` (resuming from its last checkpoint there) and returns its
    training record; ``work`` holds the dataset's shared work files (the tiny model's initial weights)."""
    import torch

    from ..config import SaliencyGuidedTrainingArguments
    from ..eraser import load_split
    from ..finetune import DataArguments, ModelArguments, RunArguments, run_training, training_precision

    model = spec.model
    if model == "tiny":
        labels = list(load_split(data_dir, "train").labels)
        initial = work / f"tiny_seed{seed}"
        model = str(tiny_initial_model(spec, data_dir, labels, seed, initial))
    cuda = torch.cuda.is_available()
    checkpoints = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    args = SaliencyGuidedTrainingArguments(
        output_dir=str(folder),
        num_train_epochs=dataset.epochs,
        learning_rate=lr,
        per_device_train_batch_size=dataset.batch_size,
        per_device_eval_batch_size=max(32, dataset.batch_size),
        warmup_steps=spec.warmup,
        weight_decay=spec.weight_decay,
        seed=seed,
        data_seed=seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        logging_steps=20,
        report_to=[],
        dataloader_num_workers=0,
        use_cpu=not cuda,
        bf16=spec.mixed_precision == "bf16",  # CPU autocast too (refused where bf16 is not native)
        fp16=cuda and spec.mixed_precision == "fp16",
        resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None,
        **spec.arms[arm],
    )
    data_kwargs: dict[str, Any] = {
        "data_dir": str(data_dir),
        "max_train_samples": None if dataset.source == "sst2" else dataset.train_examples,
        "max_eval_samples": dataset.val_examples,
    }
    if dataset.truncation != "head":  # passed only when set: validate_spec checked that it is supported
        data_kwargs["truncation"] = dataset.truncation
    started = time.perf_counter()
    trainer = run_training(
        ModelArguments(model_name_or_path=model, max_length=dataset.max_length),
        DataArguments(**data_kwargs),
        args,
        # the work folder is the runner's own: a run interrupted before its first
        # checkpoint is trained again from scratch in it
        RunArguments(overwrite_output_dir=True),
    )
    history = trainer.state.log_history
    runtime = next((h["train_runtime"] for h in reversed(history) if "train_runtime" in h), None)
    start_step = int(checkpoints[-1].name.split("-")[1]) if checkpoints else 0
    timed = epochs_timed(dataset.epochs, start_step, trainer.state.max_steps)
    # run_training evaluates the best model once more after training: that is the final accuracy, not a
    # point of the per-epoch curve (it would repeat the last epoch's label)
    end = next((i for i, h in enumerate(history) if "train_runtime" in h), len(history))
    evals = [
        {"epoch": h.get("epoch"), "accuracy": h["eval_accuracy"]}
        for h in history[:end]
        if "eval_accuracy" in h
    ]
    final = [h for h in history[end:] if "eval_accuracy" in h][-1]  # the spec always has a validation split
    return {
        "record_version": RECORD_VERSION,
        "arm": arm,
        "seed": seed,
        "learning_rate": lr,
        "sgt_settings": dict(spec.arms[arm]),
        "model": spec.model,
        "val_accuracy": float(final["eval_accuracy"]),
        "val_curve": evals,
        # transformers types train_dataset as a torch Dataset (no __len__); this one is a datasets.Dataset
        "train_examples": len(trainer.train_dataset),  # type: ignore[arg-type]
        "epochs": dataset.epochs,
        "seconds": time.perf_counter() - started,
        "train_runtime": runtime,
        "epochs_timed": timed,  # train_runtime covers these epochs (fewer when resumed from a checkpoint)
        "seconds_per_epoch": (runtime / timed) if runtime and timed else None,
        "resumed_from": str(checkpoints[-1].name) if checkpoints else None,
        "device": "cuda" if cuda else "cpu",
        "precision": training_precision(args),
    }


def epochs_timed(epochs: float, start_step: int, max_steps: int) -> float:
    """The epochs a training call ran: all of them, or those after the checkpoint it resumed from (the
    Trainer's ``train_runtime`` times only these)."""
    if max_steps <= 0:
        return 0.0
    return epochs * (max_steps - start_step) / max_steps


#: a method's explanation cost in gradients per example at the presets' settings (IG's 20 steps, SmoothGrad's
#: 10 samples; occlusion's one forward per word is about 7 gradients on an SST-2 sentence): it orders the
#: calls that run side by side, the longest first
EXPLANATION_COST = {
    "integrated_gradients": 20.0,
    "smoothgrad": 10.0,
    "occlusion": 7.0,
    "gradient": 1.0,
    "conservative": 1.0,
}


def evaluation_calls(
    spec: ExperimentSpec, dataset: DatasetSpec, model_dir: Path, data_dir: Path, out: Path, name: str
) -> list[tuple[dict[str, str], Any]]:
    """({method: ordering name}, EvaluationConfig) for every ordering the spec asks for: one call for the
    methods that share settings (one per method, costliest first, when ``eval_processes`` > 1), one for
    ``gradient_l2`` and one per extra random draw."""
    from ..evaluation import EvaluationConfig

    common: dict[str, Any] = dict(
        model=str(model_dir),
        data_dir=str(data_dir),
        split="test",
        batch_size=spec.eval_batch_size,
        removal=spec.removals[0],
        extra_removals=tuple(spec.removals[1:]),
        max_length=dataset.max_length,
        max_examples=dataset.test_examples,
        threshold=dataset.threshold,
        ig_steps=spec.ig_steps,
        smoothgrad_samples=spec.smoothgrad_samples,
        seed=0,
        sample="random",
        masked_accuracy_curve=False,
        per_example=True,
        model_name=name,
        bf16=spec.mixed_precision == "bf16",
    )
    if dataset.truncation != "head":
        common["truncation"] = dataset.truncation
    shared = tuple(m for m in spec.methods if m not in ("gradient_l2",))
    # In one process the main methods share a call (one model load, one pass over the unperturbed test set).
    # Side by side that call would be most of the work on one worker while the others idle, so each method
    # gets its own call, and the calls start costliest first. The numbers are the same: seeded methods and
    # random-token replacements are keyed on the example, not on the call.
    split = spec.eval_processes > 1
    groups = {f"main_{m}": (m,) for m in shared} if split else ({"main": shared} if shared else {})
    # NAOPC's searched bounds: once per run, in its first call (its methods' orderings seed the beam)
    bounds: dict[str, Any] = dict(
        naopc_bounds=spec.naopc_bounds,
        bounds_beam_width=spec.bounds_beam_width,
        bounds_max_examples=dataset.bounds_examples,
    )
    calls = [
        (
            {m: m for m in group},
            EvaluationConfig(
                output_dir=str(out / folder),
                methods=group,
                aggregation="grad_x_input",
                **common,
                **(bounds if i == 0 else {}),
            ),
        )
        for i, (folder, group) in enumerate(groups.items())
    ]
    if "gradient_l2" in spec.methods:
        calls.append(
            (
                {"gradient": "gradient_l2"},
                EvaluationConfig(
                    output_dir=str(out / "gradient_l2"), methods=("gradient",), aggregation="l2", **common
                ),
            )
        )
    if "random" in spec.methods:
        for draw in range(1, spec.random_draws):
            calls.append(
                (
                    {"random": f"random_draw{draw}"},
                    EvaluationConfig(
                        output_dir=str(out / f"random_draw{draw}"),
                        methods=("random",),
                        explainer_settings={"random": {"seed": draw}},
                        **common,
                    ),
                )
            )
    if split:  # stable: equal costs keep the order above
        calls.sort(key=lambda call: -sum(EXPLANATION_COST.get(m, 0.0) for m in call[1].methods))
    return calls


def evaluate_call(config: EvaluationConfig, threads: int | None = None) -> None:
    """One evaluation call; its finished batches are kept beside its output folder, so an interrupted run
    resumes at its last batch. Module level, so that a worker process can run it."""
    from ..evaluation import evaluate_folder

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    evaluate_folder(config, checkpoint=Path(f"{config.output_dir}.checkpoint"))


def run_calls(configs: list[EvaluationConfig], processes: int) -> None:
    """The calls in order, or side by side in ``processes`` spawned workers that share this process's threads
    (a worker takes the next call in the list when it is free: :func:`evaluation_calls` puts the costliest
    first)."""
    if processes <= 1 or len(configs) <= 1:
        for config in configs:
            evaluate_call(config)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    workers = min(processes, len(configs))
    threads = max(1, torch.get_num_threads() // workers)
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for future in [pool.submit(evaluate_call, config, threads) for config in configs]:
            future.result()  # a worker's error is raised here


def evaluate_run(
    spec: ExperimentSpec, dataset: DatasetSpec, data_dir: Path, model_dir: Path, out: Path, name: str
) -> dict[str, Any]:
    """Every ordering under every removal mode, as the compact columns of an ``eval.json.gz``, and the
    evaluations' seconds (resumed batches included)."""
    orderings: dict[str, dict[str, dict[str, list]]] = {removal: {} for removal in spec.removals}
    bounds: dict[str, dict[str, list]] = {}
    examples = None
    seconds = 0.0
    calls = evaluation_calls(spec, dataset, model_dir, data_dir, out, name)
    run_calls([config for _, config in calls], spec.eval_processes)
    for names, config in calls:
        # the call's whole cost, batches resumed from an earlier session's checkpoint included
        seconds += json.loads((config.output_dir_for(spec.removals[0]) / "run.json").read_text())["seconds"]
        for removal in spec.removals:
            folder = config.output_dir_for(removal)
            for method, name in names.items():
                text = (folder / method / "per_example.jsonl").read_text()
                lines = [json.loads(line) for line in text.splitlines()]
                examples = examples or example_columns(lines)
                if [e["annotation_id"] for e in lines] != examples["annotation_id"]:
                    raise ValueError(f"{folder / method}: other examples than the first evaluation")
                orderings[removal][name] = compact_ordering(lines)
                columns = bound_columns(lines)
                if columns is not None:
                    bounds[removal] = columns
    precision = "bf16" if spec.mixed_precision == "bf16" else "fp32"
    record: dict[str, Any] = {
        "examples": examples,
        "orderings": orderings,
        "seconds": seconds,
        "precision": precision,
    }
    if bounds:
        record["bounds"] = bounds
    return record
