"""Model surgery for the randomisation check: a Hugging Face classifier's layers as stages (head, pooler,
final norm, encoder layers top-down, embeddings) and their re-initialisation with the model's own
initialiser, on a copy, cascading (cumulative) or independent (one stage at a time)."""

from __future__ import annotations

import copy
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

HEAD_NAMES = ("classifier", "score", "classification_head")
#: ``head`` is ModernBERT's dense + norm between the pooled token and the classifier.
POOLER_NAMES = ("pooler", "pre_classifier", "head")
#: The norm after the last layer of pre-norm stacks (GPT-2 ``ln_f``, Llama ``norm``, ModernBERT
#: ``final_norm``).
FINAL_NORM_NAMES = ("ln_f", "norm", "final_norm", "final_layernorm")
#: Where encoders and decoders keep their repeated blocks, relative to the base model.
LAYER_PATHS = (
    "encoder.layer",
    "transformer.layer",
    "encoder.albert_layer_groups",
    "encoder.layers",
    "layers",
    "h",
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
        raise UnknownLayoutError(
            f"{type(model).__name__} has no base_model; expected a *ForSequenceClassification"
        )
    names = {module: name for name, module in model.named_modules()}
    base_name = names[base]
    stages: list[Stage] = []
    children = dict(model.named_children())
    head = [n for n in HEAD_NAMES if n in children and _has_parameters(children[n])]
    if not head:
        raise UnknownLayoutError(
            f"{type(model).__name__}: no classifier head among its children {list(children)} "
            f"(looked for {HEAD_NAMES})"
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
            f"{type(model).__name__}: no encoder layer list under {base_name!r} "
            f"(looked for {', '.join(LAYER_PATHS)})"
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
                f"{type(model).__name__}: parameter {name!r} is outside the base model, the head and the "
                "pooler"
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
    # nn.Module.__getattr__ is typed Tensor | Module; merge_and_unload was found callable above
    return copy.deepcopy(model).merge_and_unload()  # type: ignore[operator]


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
    before = {n: p.detach().clone() for n, p in stage_parameters(model, stage)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stage_seed(seed, stage))
        for path, recursive in zip(stage.modules, stage.recursive, strict=True):
            root = model.get_submodule(path)
            for module in root.modules() if recursive else (root,):
                for tensor in (*module.parameters(recurse=False), *module.buffers(recurse=False)):
                    # transformers' own flag on tensors and modules, unknown to torch's types
                    if getattr(tensor, "_is_hf_initialized", False):
                        tensor._is_hf_initialized = False  # type: ignore[attr-defined]
                if getattr(module, "_is_hf_initialized", False):
                    module._is_hf_initialized = False  # type: ignore[assignment]
                if callable(init):
                    init(module)
                elif hasattr(module, "reset_parameters"):
                    module.reset_parameters()  # type: ignore[operator]
    changed = sum(not torch.equal(before[n], p) for n, p in stage_parameters(model, stage))
    if before and not changed:
        raise RuntimeError(
            f"re-initialising stage {stage.name!r} changed none of its {len(before)} parameters"
        )
    return changed


def stage_parameters(model: nn.Module, stage: Stage) -> list[tuple[str, nn.Parameter]]:
    """The qualified names and parameters a stage owns (only their own ones for non-recursive modules)."""
    out: list[tuple[str, nn.Parameter]] = []
    for path, recursive in zip(stage.modules, stage.recursive, strict=True):
        out.extend(
            (f"{path}.{n}", p) for n, p in model.get_submodule(path).named_parameters(recurse=recursive)
        )
    return out


def randomized_copy(model: nn.Module, stages: Sequence[Stage], seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with ``stages`` re-initialised; the original is never touched."""
    clone = copy.deepcopy(model)
    for stage in stages:
        reinitialize(clone, stage, seed)
    return clone.eval()
