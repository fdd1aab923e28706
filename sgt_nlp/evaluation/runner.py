"""Running an evaluation: over in-memory objects (:func:`evaluate_rationales`) or from folders
(:func:`evaluate_folder`, what ``sgt-nlp evaluate``, the experiment runner and the scripts call).

Examples are grouped into batches of similar length; under ``accelerate launch`` / ``torchrun`` each process
takes every ``world``-th batch and the main process gathers the results, so the numbers do not depend on the
number of processes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..eraser import ERASERSplit, load_split
from ..loading import (
    load_classifier,
    match_label_order,
    model_label_names,
    position_limit,
    read_sgt_settings,
    resolve_device,
)
from ..precision import check_bf16
from ..validation import (
    UsageError,
    check_device,
    check_max_length,
    check_position_limit,
    check_readable_texts,
    input_lengths,
)
from .checkpoint import DoneBatch, EvaluationCheckpoint, fingerprint
from .config import EvaluationConfig
from .evaluator import BatchEvaluator
from .examples import (
    choose_examples,
    make_examples,
    mean_rationale_fraction,
    rationale_coverage,
    truncation_counts,
)
from .outputs import write_evaluation
from .records import EvaluationResult, ExampleOutput

logger = logging.getLogger(__name__)


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), the same for any number of
    processes."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _process_state(config: EvaluationConfig):
    """accelerate's ``PartialState`` when started with several processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    return PartialState(cpu=config.device == "cpu" or not torch.cuda.is_available())


def _model_device(model: torch.nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def evaluate_rationales(
    model: torch.nn.Module,
    tokenizer: Any,
    data: ERASERSplit | str | Path,
    config: EvaluationConfig,
    stats: dict[str, Any] | None = None,
    checkpoint: str | Path | None = None,
) -> EvaluationResult | None:
    """Explain ``model``'s predictions on an ERASER split with every method of ``config`` and score them.

    ``data`` is an :class:`~sgt_nlp.eraser.ERASERSplit` (or an ERASER folder, whose ``config.split`` is
    loaded); the model runs on the device it is on, in eval mode (its mode is restored after). Nothing is
    written: pass the result to :func:`~sgt_nlp.evaluation.write_evaluation`. Under several processes each
    one explains its share and the main process returns the gathered result; the others return None.
    ``stats``, when given, receives the piece lengths of the examples and of every perturbed input this
    process ran, and the explaining time (``scripts/bench_eval.py`` times the bare model passes on them).
    ``checkpoint`` (one process only) names a file that every finished batch is appended to; batches it
    already holds are not run again, so an interrupted evaluation resumes (:mod:`.checkpoint`).
    """
    started = time.perf_counter()
    if config.bf16:
        check_bf16(_model_device(model))  # an emulated bf16 would be slower than fp32: refused, not run
    state = _process_state(config)
    is_main = state is None or state.is_main_process
    split = data if isinstance(data, ERASERSplit) else load_split(data, config.split)
    model_path = config.model or getattr(model, "name_or_path", None) or type(model).__name__
    labels = match_label_order(model_label_names(model.config), split.labels, model_path)
    if list(split.labels) != labels:
        split = dataclasses.replace(split, labels=tuple(labels))
    if is_main:
        logger.info("%s/%s: %s", config.data_dir or split.report.path, split.name, split.report.summary())
    chosen = choose_examples(len(split.annotations), config.max_examples, config.sample, config.seed)
    annotations = [split.annotations[i] for i in chosen]
    examples = make_examples(split, chosen)
    split_file = (Path(config.data_dir) / f"{config.split}.jsonl") if config.data_dir else split.report.path
    check_max_length(
        tokenizer,
        config.max_length,
        [ex.query_words for ex in examples],
        [f"{split_file}, line {ann.line}, field 'query'" for ann in annotations],
    )
    check_readable_texts(
        tokenizer,
        [ex.words for ex in examples],
        lambda i: (
            f"{split_file}, line {annotations[i].line}, field 'docids' ({', '.join(examples[i].docids)})"
        ),
    )
    check_position_limit(
        config.max_length,
        lambda: input_lengths(
            tokenizer, config.max_length, [ex.words for ex in examples], [ex.query_words for ex in examples]
        ),
        lambda i: f"{split_file}, line {annotations[i].line}",
        position_limit(model),
        str(model_path),
    )
    threshold = config.threshold if config.threshold is not None else mean_rationale_fraction(split, chosen)
    threshold = float(round(threshold, 4))
    coverage = rationale_coverage(split, chosen)
    evaluator = BatchEvaluator(config, model, tokenizer, labels, threshold, _model_device(model))

    batches = length_batches([len(ex.words) for ex in examples], config.batch_size)
    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)
    resumed = None
    if checkpoint is not None:
        if world > 1:
            raise UsageError("an evaluation checkpoint needs a single process (it was started with several)")
        ids = [ex.annotation_id for ex in examples]
        resumed = EvaluationCheckpoint(checkpoint, fingerprint(config, model, ids, batches, threshold))
        if resumed.done:
            logger.info("%s: resuming, %d of %d batches done", checkpoint, len(resumed.done), len(batches))
    outputs: list[ExampleOutput] = []
    restored: list[DoneBatch] = []  # batches read back from the checkpoint (their cost counts in the totals)
    loop_started = time.perf_counter()
    methods = ", ".join(config.methods)
    was_training = model.training
    model.eval()  # no dropout in the perturbed passes (the explainers switch to eval mode themselves)
    try:
        mine = list(range(len(batches)))[rank::world]
        for b in tqdm(mine, desc=f"explaining ({methods})", disable=not is_main, unit="batch"):
            if resumed is not None and b in resumed.done:
                restored.append(resumed.done[b])
                outputs.extend(resumed.done[b].outputs)
                continue
            batch_started, passes_before = time.perf_counter(), evaluator.forward_passes
            batch_outputs = evaluator.run_batch([examples[i] for i in batches[b]])
            outputs.extend(batch_outputs)
            if resumed is not None:
                passes = evaluator.forward_passes - passes_before
                resumed.add(DoneBatch(b, batch_outputs, time.perf_counter() - batch_started, passes))
    finally:
        model.train(was_training)
        if resumed is not None:
            resumed.close()
    if stats is not None:
        stats["perturbed_lengths"] = list(evaluator.forward_lengths)
        stats["example_lengths"] = list(evaluator.example_lengths)
        stats["explain_seconds"] = time.perf_counter() - loop_started
    if world > 1:
        from accelerate.utils import gather_object

        outputs = gather_object(outputs)
    if not is_main:
        return None
    outputs.sort(key=lambda o: o.index)
    return EvaluationResult(
        config=config,
        split=split,
        annotations=annotations,
        examples=examples,
        outputs=outputs,
        labels=labels,
        threshold=threshold,
        explainer_params={m: e.params() for m, e in evaluator.explainers.items()},
        truncation=truncation_counts(examples, outputs),
        rationale_coverage=coverage,
        model_name=config.model_name or Path(str(model_path)).name,
        processes=world,
        forward_passes=evaluator.forward_passes + sum(done.forward_passes for done in restored),
        seconds=time.perf_counter() - started + sum(done.seconds for done in restored),
    )


def evaluate_folder(
    config: EvaluationConfig,
    stats: dict[str, Any] | None = None,
    checkpoint: str | Path | None = None,
    claim: str | None = None,
) -> list[dict[str, Any]]:
    """Load ``config.model`` and ``config.data_dir``, evaluate (resuming from ``checkpoint``, see
    :func:`evaluate_rationales`), write ``config.output_dir``; returns the summary rows (one per method and
    removal mode; empty on all processes but the main one). ``claim`` is the token of
    :func:`~sgt_nlp.validation.claim_output_dir`: the folder is written only while this run still holds it."""

    started = time.perf_counter()
    if config.model is None or config.data_dir is None:
        raise UsageError("evaluate_folder needs config.model and config.data_dir (folders)")
    check_device(config.device)
    state = _process_state(config)
    if config.bf16:
        check_bf16(resolve_device(config.device, state))  # before the model is loaded
    split = load_split(config.data_dir, config.split)  # bad data fails here, before the model is loaded
    model, tokenizer, folder = load_classifier(config.model, resolve_device(config.device, state))
    loading = time.perf_counter() - started
    result = evaluate_rationales(model, tokenizer, split, config, stats, checkpoint)
    if result is None:
        return []
    result = dataclasses.replace(
        result,
        model_name=config.model_name or Path(folder).name,
        sgt_settings=read_sgt_settings(folder),  # JSON only: training_args.bin is never read
        seconds=loading + result.seconds,  # result.seconds counts the batches resumed from the checkpoint
    )
    return write_evaluation(result, claim=claim)
