"""The checks themselves: explain pre-encoded batches with every configured method and compare the maps.

* **Precision**: the map of the predicted class in float32 against the same map in float64. A map that is
  rounding noise (``signed_mean`` on BERT-family models, whose embedding LayerNorm makes the gradient
  zero-mean over dimensions) disagrees with itself; its other verdicts are then ``degenerate``.
* **Class sensitivity**: the map of the predicted class against the map of every other class.
* **Randomisation**: the map of the original prediction on the original model against the map of the same
  class on a deep copy whose layers are re-initialised (:mod:`sgt_nlp.sanity.randomisation`).

:func:`run_sanity_checks` takes a model, its tokenizer and batches in memory and returns a
:class:`SanityResult`; reading inputs and writing the output folder is :mod:`sgt_nlp.sanity.io`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..explainers import Explainer
from ..precision import autocast, check_bf16, device_of, full_precision, precision_name
from ..saliency import TARGET_OUTPUTS
from .measures import (
    INSENSITIVE_THRESHOLD,
    PRECISION_THRESHOLD,
    SENSITIVE_THRESHOLD,
    TOP_FRACTION,
    class_verdict,
    precision_verdict,
    randomization_verdict,
    similarities,
    summarize,
)
from .methods import MethodSpec
from .randomisation import Stage, merged_adapter, randomization_stages, reinitialize

#: One right-padded batch: ``input_ids``, ``attention_mask`` and (BERT-style models) ``token_type_ids``.
Batch = dict[str, torch.Tensor]


def explain(
    explainer: Explainer, batches: Sequence[Batch], targets: Sequence[torch.Tensor] | None = None
) -> tuple[list[np.ndarray], torch.Tensor]:
    """Per example the real-token scores (float64 numpy), and the logits ``[N, C]``, over all batches."""
    maps: list[np.ndarray] = []
    logits = []
    for i, batch in enumerate(batches):
        attribution = explainer.attribute(batch, None if targets is None else targets[i])
        maps.extend(s.double().cpu().numpy() for s in attribution.per_example())
        logits.append(attribution.logits.float().cpu())
    return maps, torch.cat(logits)


def class_sensitivity(
    explainer: Explainer, batches: Sequence[Batch], num_labels: int
) -> tuple[list[dict[str, float]], list[np.ndarray], torch.Tensor]:
    """Per (example, other class) the similarities between the predicted class's map and the other class's
    map.

    Returns the rows, the predicted-class maps (the originals of the randomisation check) and the logits.
    """
    per_class: list[list[np.ndarray]] = []
    logits = None
    for c in range(num_labels):
        targets = [torch.full((b["input_ids"].shape[0],), c, dtype=torch.long) for b in batches]
        maps, class_logits = explain(explainer, batches, targets)
        per_class.append(maps)
        logits = class_logits if logits is None else logits
    assert logits is not None
    predicted = logits.argmax(dim=-1).tolist()
    rows = []
    for i, p in enumerate(predicted):
        for c in range(num_labels):
            if c != p:
                rows.append(similarities(per_class[p][i], per_class[c][i]))
    originals = [per_class[p][i] for i, p in enumerate(predicted)]
    return rows, originals, logits


def precision_check(
    spec: MethodSpec,
    model: nn.Module,
    tokenizer: Any,
    batches: Sequence[Batch],
    target_output: str,
    originals: Sequence[np.ndarray],
    targets: Sequence[torch.Tensor],
) -> dict[str, float | int | str]:
    """Spearman of the float32 map against the float64 map of the same class: rounding noise disagrees."""
    double = copy.deepcopy(model).double().eval()
    with full_precision(double):  # the reference: float64, whatever precision the run's passes use
        maps, _ = explain(spec.build(double, tokenizer, target_output), batches, targets)
    rows = [similarities(a, b) for a, b in zip(originals[: len(maps)], maps, strict=True)]
    mean = summarize(rows)["spearman"]["mean"]
    scale = float(np.median([np.abs(m).max() if m.size else 0.0 for m in originals]))
    return {
        "spearman": mean,
        "examples": len(rows),
        "median_max_abs_score": scale,
        "verdict": precision_verdict(mean),
    }


@dataclass
class SanityResult:
    """Every figure of a sanity run; :meth:`to_dict` is the content of ``sanity.json``.

    ``methods`` holds one record per :class:`MethodSpec`: ``label``, ``method``, ``aggregation``, ``signed``,
    ``params``, ``class_sensitivity`` (per measure ``mean``, ``std``, ``n``, ``excluded``), ``precision``,
    ``class_verdict``, per randomisation mode run (``cascading``, ``independent``) the per-stage summaries,
    and, once the cascade reached the top layer, ``randomization_similarity``, ``randomization_stage`` and
    ``randomization_verdict``. ``randomization`` holds per mode the model's accuracy and agreement with its
    original predictions after each stage; ``original`` the same before any. Undefined similarities are NaN.
    ``inputs`` is what the caller records about where the batches came from (model path, data folder,
    split, ...): written at the top level of ``sanity.json``.
    """

    model_class: str
    model_type: str | None
    num_labels: int
    examples: int
    settings: dict[str, Any]
    original: dict[str, float | None]
    stages: list[dict[str, Any]]
    randomization: dict[str, list[dict[str, Any]]]
    methods: list[dict[str, Any]]
    seconds: float
    inputs: dict[str, Any] = field(default_factory=dict)

    def method(self, label: str) -> dict[str, Any]:
        """The record of the method labelled ``label`` (e.g. ``gradient/l2``)."""
        for record in self.methods:
            if record["label"] == label:
                return record
        raise KeyError(f"no method {label!r}; checked: {', '.join(m['label'] for m in self.methods)}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict (NaN kept as float: :mod:`sgt_nlp.sanity.io` writes it)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "inputs"}
        return {**out, **self.inputs}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SanityResult:
        """The inverse of :meth:`to_dict`: top-level keys that are not fields go to :attr:`inputs`."""
        names = {f.name for f in fields(cls)} - {"inputs"}
        return cls(
            **{k: v for k, v in data.items() if k in names},
            inputs={k: v for k, v in data.items() if k not in names},
        )


@dataclass
class SanityConfig:
    """What decides the numbers of a sanity run (written into ``sanity.json``)."""

    methods: Sequence[MethodSpec]
    target_output: str = "log_prob"
    cascading: bool = True
    independent: bool = True
    seed: int = 0
    precision_examples: int = 16
    max_stages: int | None = None
    #: every model pass under bf16 autocast (the float64 reference of the precision check stays float64)
    bf16: bool = False

    def __post_init__(self) -> None:
        if self.max_stages is not None and self.max_stages < 1:
            raise ValueError(f"max_stages must be positive or None, got {self.max_stages}")
        if self.target_output not in TARGET_OUTPUTS:
            raise ValueError(
                f"unknown target_output {self.target_output!r}; allowed: {', '.join(TARGET_OUTPUTS)}"
            )


def run_sanity_checks(
    model: nn.Module,
    tokenizer: Any,
    batches: Sequence[Batch],
    config: SanityConfig,
    labels: torch.Tensor | None = None,
    progress: bool = True,
) -> SanityResult:
    """All checks for every method on pre-encoded batches (right padded); the model is never changed.

    ``labels`` (gold classes, ``[N]`` over all batches) give the accuracy at each randomisation stage; the
    agreement with the original predictions is always reported. ``config.bf16`` runs every pass under bf16
    autocast (refused on a device without native bf16).
    """
    if config.bf16:
        check_bf16(device_of(model))
    with autocast(model, config.bf16):
        return _run_checks(model, tokenizer, batches, config, labels, progress)


def _run_checks(
    model: nn.Module,
    tokenizer: Any,
    batches: Sequence[Batch],
    config: SanityConfig,
    labels: torch.Tensor | None,
    progress: bool,
) -> SanityResult:
    model = merged_adapter(model).eval()
    # nn.Module.__getattr__ is typed Tensor | Module; the config of a transformers model
    num_labels = int(model.config.num_labels)  # type: ignore[union-attr, arg-type]
    if num_labels < 2:
        raise ValueError(
            f"the class-sensitivity check needs a classifier with at least 2 classes, got {num_labels}"
        )
    if not batches:
        raise ValueError("no examples to explain")
    stages = randomization_stages(model)
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    originals: dict[str, list[np.ndarray]] = {}
    logits = None
    for spec in tqdm(config.methods, desc="class sensitivity", disable=not progress, unit="method"):
        explainer = spec.build(model, tokenizer, config.target_output)
        rows, maps, logits = class_sensitivity(explainer, batches, num_labels)
        originals[spec.label] = maps
        results.append(
            {
                "label": spec.label,
                "method": spec.method,
                "aggregation": spec.aggregation,
                "signed": spec.signed,
                "params": _jsonable(explainer.params()),
                "class_sensitivity": summarize(rows),
            }
        )
    assert logits is not None
    predictions = logits.argmax(dim=-1)
    target_batches = _split_like(predictions, batches)
    n_precision = _examples_prefix(batches, config.precision_examples)
    for spec, result in zip(config.methods, results, strict=True):
        result["precision"] = precision_check(
            spec,
            model,
            tokenizer,
            batches[:n_precision],
            config.target_output,
            originals[spec.label],
            target_batches[:n_precision],
        )
    stage_records: dict[str, list[dict[str, Any]]] = {}
    modes = [m for m, on in (("cascading", config.cascading), ("independent", config.independent)) if on]
    for mode in modes:
        stage_records[mode] = _randomisation(
            mode,
            model,
            tokenizer,
            batches,
            config,
            stages,
            results,
            originals,
            target_batches,
            labels,
            progress,
        )
    _add_verdicts(results, stages)
    return SanityResult(
        model_class=type(model).__name__,
        model_type=getattr(model.config, "model_type", None),
        num_labels=num_labels,
        examples=int(predictions.shape[0]),
        settings={
            "target_output": config.target_output,
            "seed": config.seed,
            "max_stages": config.max_stages,
            "precision": precision_name(config.bf16),
            "precision_examples": _count_examples(batches[:n_precision]),
            "insensitive_threshold": INSENSITIVE_THRESHOLD,
            "sensitive_threshold": SENSITIVE_THRESHOLD,
            "precision_threshold": PRECISION_THRESHOLD,
            "top_fraction": TOP_FRACTION,
            "class_verdict_measure": "spearman",
            "randomization_verdict_measure": "spearman_abs",
        },
        original=_accuracy(logits, predictions, labels),
        stages=[{"stage": s.name, "modules": list(s.modules)} for s in stages],
        randomization=stage_records,
        methods=results,
        seconds=time.perf_counter() - started,
    )


def _randomisation(
    mode: str,
    model: nn.Module,
    tokenizer: Any,
    batches: Sequence[Batch],
    config: SanityConfig,
    stages: Sequence[Stage],
    results: list[dict[str, Any]],
    originals: dict[str, list[np.ndarray]],
    target_batches: Sequence[torch.Tensor],
    labels: torch.Tensor | None,
    progress: bool,
) -> list[dict[str, Any]]:
    """One randomisation mode (``cascading``: cumulative from the top; ``independent``: one stage at a time).

    Appends each method's per-stage similarity summaries to ``results[i][mode]`` and returns the model's
    accuracy and agreement with the original predictions after each stage.
    """
    predictions = torch.cat(list(target_batches))
    records: list[dict[str, Any]] = []
    for result in results:
        result[mode] = []
    cumulative = copy.deepcopy(model) if mode == "cascading" else None
    run = tqdm(stages[: config.max_stages], desc=f"{mode} randomisation", disable=not progress, unit="stage")
    for index, stage in enumerate(run):
        if cumulative is not None:
            changed = reinitialize(cumulative, stage, config.seed)
            randomized = cumulative.eval()
        else:
            randomized = copy.deepcopy(model)
            changed = reinitialize(randomized, stage, config.seed)
            randomized.eval()
        record: dict[str, Any] = {
            "stage": stage.name,
            "modules": list(stage.modules),
            "parameters_changed": changed,
            "randomized": [s.name for s in stages[: index + 1]] if mode == "cascading" else [stage.name],
        }
        stage_logits = None
        for spec, result in zip(config.methods, results, strict=True):
            explainer = spec.build(randomized, tokenizer, config.target_output)
            maps, stage_logits = explain(explainer, batches, target_batches)
            rows = [similarities(a, b) for a, b in zip(originals[spec.label], maps, strict=True)]
            result[mode].append({"stage": stage.name, **summarize(rows)})
        assert stage_logits is not None
        record.update(_accuracy(stage_logits, predictions, labels))
        records.append(record)
        del randomized
    return records


def _add_verdicts(results: list[dict[str, Any]], stages: Sequence[Stage]) -> None:
    """Class verdict on the signed Spearman of the scores as returned (for positive-only maps that is the
    magnitude ranking); randomisation verdict on the magnitude Spearman after head + top layer."""
    top = _top_stage_index(stages)
    for result in results:
        degenerate = result["precision"]["verdict"] == "noise"
        measure = "spearman"
        mean = result["class_sensitivity"][measure]["mean"]
        result["class_verdict"] = class_verdict(mean, degenerate)
        result["class_verdict_measure"] = measure
        if len(result.get("cascading", [])) > top:
            after_top = result["cascading"][top]["spearman_abs"]["mean"]
            result["randomization_similarity"] = after_top
            result["randomization_stage"] = stages[top].name
            result["randomization_verdict"] = randomization_verdict(after_top, degenerate)


def _top_stage_index(stages: Sequence[Stage]) -> int:
    """Index of the cascading stage "head (+ pooler, final norm) + top layer" (else the last stage)."""
    for index, stage in enumerate(stages):
        if stage.name not in ("classifier", "pooler", "final norm"):
            return index
    return len(stages) - 1


def _examples_prefix(batches: Sequence[Batch], n: int) -> int:
    """How many leading batches hold at least ``n`` examples (at least one batch)."""
    total = 0
    for i, batch in enumerate(batches):
        total += batch["input_ids"].shape[0]
        if total >= n:
            return i + 1
    return len(batches)


def _count_examples(batches: Sequence[Batch]) -> int:
    return int(sum(b["input_ids"].shape[0] for b in batches))


def _split_like(values: torch.Tensor, batches: Sequence[Batch]) -> list[torch.Tensor]:
    sizes = [b["input_ids"].shape[0] for b in batches]
    return list(torch.split(values, sizes))


def _accuracy(
    logits: torch.Tensor, predictions: torch.Tensor, labels: torch.Tensor | None
) -> dict[str, float | None]:
    current = logits.argmax(dim=-1)
    return {
        "accuracy": None if labels is None else float((current == labels.cpu()).float().mean()),
        "agreement": float((current == predictions).float().mean()),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
