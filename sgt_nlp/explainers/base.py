"""The common interface of all explainers and the batched machinery they share.

An explainer maps a padded batch of tokenized examples to one score per word piece. Everything that is not
the method itself lives here: eval mode, gradients under ``no_grad``, which positions are real, the target
class, the unperturbed logits (returned so that nobody runs the prediction again), content-keyed seeding
(so that seeded methods give an example the same scores whatever batch it is in) and the chunked,
length-trimmed passes over perturbed copies of the inputs that IG and SmoothGrad need.
"""

from __future__ import annotations

import contextlib
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sgt_nlp.masking import maskable_positions, special_ids_of
from sgt_nlp.saliency import (
    TARGET_OUTPUTS,
    check_embedding_forward,
    embedding_forward_kwargs,
    forward_from_embeddings,
    select_target_scores,
    word_embedding_layer,
)

Inputs = Mapping[str, torch.Tensor]
MODEL_INPUT_KEYS: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


@dataclass
class Attribution:
    """What an explainer returns for a batch of ``B`` examples padded to ``T`` word pieces.

    - ``scores`` ``[B, T]`` float32: one score per word piece; 0 wherever ``mask`` is False.
    - ``mask`` ``[B, T]`` bool: the real positions (attended, not a special token) that carry a score.
    - ``logits`` ``[B, C]``: the model's logits on the unperturbed input (eval mode).
    - ``target`` ``[B]`` long: the class that was explained (the prediction unless one was given).
    - ``method`` / ``params``: the registry name and settings, for writing next to the scores.
    - ``extras``: method-specific per-example tensors, e.g. IG's ``delta`` ``[B]``.
    """

    scores: torch.Tensor
    mask: torch.Tensor
    logits: torch.Tensor
    target: torch.Tensor
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def per_example(self) -> list[torch.Tensor]:
        """The scores of the real positions of each example, in order (padding and specials left out)."""
        return [row[keep] for row, keep in zip(self.scores, self.mask, strict=True)]


def content_seed(seed: int, token_ids: torch.Tensor, *salt: int) -> int:
    """A 64-bit seed from ``seed``, an example's attended token ids and optional salt (e.g. a sample index).

    Keying random draws on the example's content, not on its row in the batch, makes seeded explainers
    reproducible per example whatever the batch makeup, padding amount or padding side.
    """
    crc = zlib.crc32(token_ids.detach().cpu().to(torch.int64).numpy().tobytes())
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, crc, *(int(s) for s in salt)]).generate_state(2)
    return int(state[0]) << 32 | int(state[1]) >> 1


class Explainer(ABC):
    """Base class: ``attribute(inputs, target=None, word_ids=None) -> Attribution`` over a Hugging Face
    classifier.

    ``target_output`` picks the explained scalar: the target's ``logit``, ``log_prob`` or ``prob``. Special
    tokens are recognised from ``special_ids`` or the ``tokenizer`` (else from the model config, which for
    BERT knows only the pad id: pass the tokenizer), and from a ``special_tokens_mask`` in ``inputs``.

    The class attributes below describe a method to the code that uses it (evaluation, sanity checks,
    ``explain``), so that no code outside this package needs to branch on a method's name (captum's
    ``has_convergence_delta`` / ``multiplies_by_inputs`` pattern).
    """

    #: the registry name (``get_explainer(name)``), written next to the scores
    name: ClassVar[str] = "explainer"
    #: the values ``aggregation=`` accepts (how per-dimension values become one score per token); empty when
    #: the method has no aggregation setting
    aggregations: ClassVar[tuple[str, ...]] = ()
    #: the aggregation used when none is given (None without aggregations)
    default_aggregation: ClassVar[str | None] = None
    #: the aggregation variants a sanity check expands a bare method name to (empty: the method as it is)
    default_aggregations: ClassVar[tuple[str, ...]] = ()
    #: the aggregations whose scores carry a sign (a token can speak against the target)
    signed_aggregations: ClassVar[frozenset[str]] = frozenset()
    #: whether the scores carry a sign, for methods without aggregations (see :meth:`scores_signed`)
    signed: ClassVar[bool] = False
    #: ``Attribution.extras["delta"]`` holds a per-example completeness gap (captum's
    #: ``has_convergence_delta``)
    has_convergence_delta: ClassVar[bool] = False
    #: ``attribute(..., word_ids=...)`` scores whole words (all pieces of a word together); explainers without
    #: it score pieces and ignore ``word_ids``
    groups_by_words: ClassVar[bool] = False
    #: the attribution multiplies a gradient by the input (or input minus baseline) before any aggregation
    #: (captum's ``multiplies_by_inputs``); gradient aggregations ``grad_x_input`` / ``abs_grad_x_input`` do
    #: the same afterwards
    multiplies_by_inputs: ClassVar[bool] = False
    #: the run-wide settings (constructor keywords) a command passes on when the explainer takes them:
    #: ``aggregation`` (the embedding-gradient reduction of ``--aggregation``), ``n_steps``, ``n_samples``,
    #: ``noise_std``, ``seed``, ``internal_batch_size``, ``removal``; see :func:`select_settings`
    run_settings: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def scores_signed(cls, aggregation: str | None = None) -> bool:
        """Whether the scores carry a sign under ``aggregation`` (None: the default aggregation)."""
        if not cls.aggregations:
            return cls.signed
        return (aggregation or cls.default_aggregation) in cls.signed_aggregations

    @classmethod
    def select_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of a command's run-wide ``settings`` that this explainer takes
        (:attr:`run_settings`)."""
        return {key: settings[key] for key in cls.run_settings if key in settings}

    def __init__(
        self,
        model: nn.Module,
        target_output: str = "logit",
        *,
        tokenizer: Any = None,
        special_ids: Iterable[int] | None = None,
    ) -> None:
        if target_output not in TARGET_OUTPUTS:
            raise ValueError(f"unknown target_output {target_output!r}; allowed: {', '.join(TARGET_OUTPUTS)}")
        check_embedding_forward(model)
        self.model = model
        self.target_output = target_output
        self.tokenizer = tokenizer
        config = getattr(model, "config", None)
        ids = set(special_ids_of(tokenizer, config))
        if special_ids is not None:
            ids.update(int(i) for i in special_ids)
        self.special_ids: list[int] = sorted(ids)
        self.pad_token_id: int | None = _first_int(
            getattr(tokenizer, "pad_token_id", None), getattr(config, "pad_token_id", None)
        )

    # -- public API ------------------------------------------------------------------------------------

    def attribute(
        self, inputs: Inputs, target: torch.Tensor | None = None, word_ids: torch.Tensor | None = None
    ) -> Attribution:
        """Scores for a padded batch; ``target`` None explains the predicted class of each example.

        ``word_ids`` ``[B, T]`` (negative: no word) groups word pieces into words; explainers that
        :attr:`groups_by_words` score each word as a whole (every piece of it gets the word's score), the
        others ignore it.
        """
        with self._explaining():
            prepared = self._prepare(inputs)
            mask = self.real_positions(prepared)
            if target is not None:
                target = torch.as_tensor(target, device=mask.device).long().view(-1)
                if target.shape[0] != mask.shape[0]:
                    raise ValueError(f"target has {target.shape[0]} entries for a batch of {mask.shape[0]}")
            grouped = word_ids is not None and self.groups_by_words
            if grouped:
                word_ids = torch.as_tensor(word_ids).long().to(mask.device)
                if word_ids.shape != mask.shape:
                    raise ValueError(
                        f"word_ids {tuple(word_ids.shape)} and input_ids {tuple(mask.shape)} differ in shape"
                    )
                prepared["word_ids"] = word_ids
            scores, logits, target, extras = self._attribute(prepared, target, mask)
        scores = scores.float().masked_fill(~mask, 0.0)
        params = self.params()
        if grouped:
            params["unit"] = "word"
        return Attribution(scores, mask, logits, target, self.name, params, extras)

    def real_positions(self, inputs: Inputs) -> torch.Tensor:
        """Boolean ``[B, T]``: attended positions that hold no special token."""
        return maskable_positions(
            inputs["input_ids"],
            inputs.get("attention_mask"),
            self.special_ids,
            inputs.get("special_tokens_mask"),
        )

    def params(self) -> dict[str, Any]:
        """The settings that change the scores, for the record."""
        return {"target_output": self.target_output}

    # -- to implement ----------------------------------------------------------------------------------

    @abstractmethod
    def _attribute(
        self, inputs: dict[str, torch.Tensor], target: torch.Tensor | None, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Return ``(scores [B,T], logits [B,C], target [B], extras)``; runs in eval mode, grad enabled.

        ``inputs`` holds the model inputs on the model's device, and ``word_ids`` when the explainer
        :attr:`groups_by_words` and the caller gave them."""

    # -- shared machinery ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _explaining(self) -> Iterator[None]:
        """Eval mode (no dropout: explanations must be deterministic) and autograd on, both restored after
        (each module's own mode: a model partly in eval mode comes back so)."""
        modes = [(module, module.training) for module in self.model.modules()]
        self.model.eval()
        try:
            with torch.enable_grad():
                yield
        finally:
            for module, training in modes:
                module.training = training

    def _prepare(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        """The model inputs (and a ``special_tokens_mask`` if any) on the model's device."""
        if "input_ids" not in inputs:
            raise KeyError("inputs need 'input_ids' (a padded [B, T] batch)")
        shape = tuple(torch.as_tensor(inputs["input_ids"]).shape)
        if len(shape) != 2 or 0 in shape:
            raise ValueError(f"input_ids must be a non-empty padded [B, T] batch, got shape {shape}")
        device = _device_of(self.model)
        keys = (*MODEL_INPUT_KEYS, "special_tokens_mask")
        return {k: torch.as_tensor(inputs[k]).to(device) for k in keys if inputs.get(k) is not None}

    def _embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings of ``input_ids`` without a graph to the embedding table."""
        with torch.no_grad():
            return word_embedding_layer(self.model)(input_ids)

    def _forward(
        self, embeddings: torch.Tensor, kwargs: Mapping[str, torch.Tensor], input_ids: torch.Tensor
    ) -> torch.Tensor:
        """Logits from embeddings, read where the ``input_ids`` forward reads them (decoders: last token)."""
        return forward_from_embeddings(self.model, embeddings, kwargs, input_ids)

    def _predict(
        self, inputs: dict[str, torch.Tensor], target: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unperturbed logits (one pass, no graph) and the target they imply when none was given."""
        with torch.no_grad():
            ids = inputs["input_ids"]
            logits = self._forward(self._embeddings(ids), embedding_forward_kwargs(self.model, inputs), ids)
        return logits.detach(), (logits.argmax(dim=-1) if target is None else target)

    def _target_values(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return select_target_scores(logits, target, self.target_output).float()

    def _accumulate_gradients(
        self,
        inputs: dict[str, torch.Tensor],
        target: torch.Tensor,
        n_samples: int,
        make_rows: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
        weights: torch.Tensor,
        rows_per_pass: int | None,
    ) -> torch.Tensor:
        """``sum_s weights[s] * d f_target / d e`` over ``n_samples`` perturbed copies of every example.

        The ``B * n_samples`` rows are ordered by example length (longest first) and run through the model
        ``rows_per_pass`` at a time, each pass trimmed to its longest real row, so memory is bounded by
        ``rows_per_pass`` and padding costs no compute. ``make_rows(examples, samples, length)`` builds the
        perturbed embeddings ``[n, length, D]`` of a pass. Returns float32 ``[B, T, D]``.
        """
        ids = inputs["input_ids"]
        batch, length = ids.shape
        kwargs = embedding_forward_kwargs(self.model, inputs)
        lengths = row_lengths(inputs)
        order = torch.argsort(lengths, descending=True, stable=True).cpu()
        examples = order.repeat_interleave(n_samples)
        samples = torch.arange(n_samples).repeat(batch)
        step = max(1, len(examples) if rows_per_pass is None else int(rows_per_pass))
        dim = word_embedding_layer(self.model).embedding_dim
        total = torch.zeros(batch, length, dim, device=ids.device)
        for start in range(0, len(examples), step):
            ex, sa = examples[start : start + step].to(ids.device), samples[start : start + step]
            width = int(lengths[ex].max())
            rows = make_rows(ex, sa, width).detach().requires_grad_(True)
            logits = self._forward(rows, {k: v[ex, :width] for k, v in kwargs.items()}, ids[ex, :width])
            values = select_target_scores(logits, target[ex], self.target_output)
            (grads,) = torch.autograd.grad(values.sum(), rows)
            weighted = grads.float() * weights.to(grads.device)[sa].view(-1, 1, 1)
            total[:, :width].index_add_(0, ex, weighted)
        return total


def row_lengths(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Per row, one past the last attended column: the width a row can be trimmed to at the right."""
    mask = inputs.get("attention_mask")
    ids = inputs["input_ids"]
    if mask is None:
        return torch.full((ids.shape[0],), ids.shape[1], dtype=torch.long, device=ids.device)
    columns = torch.arange(1, ids.shape[1] + 1, device=ids.device)
    return (mask.bool() * columns).amax(dim=1).clamp(min=1)


def _device_of(model: nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def _first_int(*values: Any) -> int | None:
    for value in values:
        if isinstance(value, int):
            return value
    return None
