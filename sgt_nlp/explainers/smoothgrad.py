"""SmoothGrad: the gradient averaged over Gaussian-noised copies of the word embeddings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from sgt_nlp.explainers.base import Explainer, content_seed
from sgt_nlp.explainers.gradient import check_aggregation
from sgt_nlp.saliency import AGGREGATIONS, SIGNED_AGGREGATIONS, aggregate_token_saliency

NOISE_SCALES: tuple[str, ...] = ("range", "absolute")


class SmoothGrad(Explainer):
    """``agg(mean_s d f_target(e + eps_s) / d e, e)`` with ``eps_s ~ N(0, sigma^2)`` (Smilkov et al. 2017).

    The gradient is averaged first and then aggregated per token with the clean embeddings ``e``; this is
    exactly captum ``NoiseTunnel(Saliency(abs=False)).attribute(nt_type='smoothgrad')`` followed by the
    Gradient explainer's aggregation, and with ``noise_std=0`` it equals ``Gradient``.

    ``noise_scale='range'`` (default): ``sigma = noise_std * (max - min)`` of the example's attended embedding
    values, the paper's noise level, portable across models. ``'absolute'``: ``sigma = noise_std``, captum's
    ``stdevs``. Noise is added at every attended position (special tokens too, as captum does), never at
    padding. It is drawn per example from a generator keyed on ``seed``, the example's token ids and the
    sample index, so an example gets the same noise in any batch, padding or chunking.
    ``internal_batch_size`` bounds the rows (examples x samples) of one model pass.
    """

    name = "smoothgrad"
    aggregations = AGGREGATIONS
    default_aggregation = "l2"
    default_aggregations = AGGREGATIONS
    signed_aggregations = SIGNED_AGGREGATIONS
    run_settings = ("aggregation", "n_samples", "noise_std", "seed", "internal_batch_size")

    def __init__(
        self,
        model: nn.Module,
        target_output: str = "logit",
        *,
        n_samples: int = 20,
        noise_std: float = 0.1,
        noise_scale: str = "range",
        aggregation: str = "l2",
        seed: int = 0,
        internal_batch_size: int | None = 64,
        tokenizer: Any = None,
        special_ids: Iterable[int] | None = None,
    ) -> None:
        super().__init__(model, target_output, tokenizer=tokenizer, special_ids=special_ids)
        if n_samples < 1:
            raise ValueError(f"n_samples must be positive, got {n_samples}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be non-negative, got {noise_std}")
        if noise_scale not in NOISE_SCALES:
            raise ValueError(f"unknown noise_scale {noise_scale!r}; allowed: {', '.join(NOISE_SCALES)}")
        if internal_batch_size is not None and internal_batch_size < 1:
            raise ValueError(f"internal_batch_size must be positive or None, got {internal_batch_size}")
        self.n_samples = int(n_samples)
        self.noise_std = float(noise_std)
        self.noise_scale = noise_scale
        self.aggregation = check_aggregation(aggregation)
        self.seed = int(seed)
        self.internal_batch_size = internal_batch_size

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "n_samples": self.n_samples,
            "noise_std": self.noise_std,
            "noise_scale": self.noise_scale,
            "aggregation": self.aggregation,
            "seed": self.seed,
        }

    def sample_noise(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The noise ``[B, n_samples, T, D]`` that ``attribute`` adds to this batch (for checks)."""
        prepared = self._prepare(inputs)
        embeddings = self._embeddings(prepared["input_ids"])
        noise = _NoisePlan(self, prepared, embeddings)
        batch, length = prepared["input_ids"].shape
        samples = torch.arange(self.n_samples)
        return torch.stack([noise.rows(torch.full_like(samples, i), samples, length) for i in range(batch)])

    def _attribute(
        self, inputs: dict[str, torch.Tensor], target: torch.Tensor | None, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        logits, target = self._predict(inputs, target)
        embeddings = self._embeddings(inputs["input_ids"])
        noise = _NoisePlan(self, inputs, embeddings)

        def make_rows(examples: torch.Tensor, samples: torch.Tensor, width: int) -> torch.Tensor:
            return embeddings[examples, :width] + noise.rows(examples.cpu(), samples, width)

        weights = torch.full((self.n_samples,), 1.0 / self.n_samples)
        mean_grads = self._accumulate_gradients(
            inputs, target, self.n_samples, make_rows, weights, self.internal_batch_size
        )
        scores = aggregate_token_saliency(mean_grads, embeddings, self.aggregation)
        return scores, logits, target, {"sigma": noise.sigma}


class _NoisePlan:
    """Per-example noise, drawn on the CPU from content-keyed generators so that it is device independent."""

    def __init__(self, owner: SmoothGrad, inputs: dict[str, torch.Tensor], embeddings: torch.Tensor) -> None:
        ids = inputs["input_ids"]
        attended = inputs.get("attention_mask")
        attended = torch.ones_like(ids, dtype=torch.bool) if attended is None else attended.bool()
        self.positions = [row.nonzero().squeeze(-1).cpu() for row in attended]
        self.ids = [row[keep] for row, keep in zip(ids.cpu(), self.positions, strict=True)]
        self.seed, self.std = owner.seed, owner.noise_std
        self.dim, self.dtype, self.device = embeddings.shape[-1], embeddings.dtype, embeddings.device
        if owner.noise_scale == "absolute":
            sigma = torch.full((ids.shape[0],), self.std)
        else:
            values = embeddings.detach().float().cpu()
            sigma = torch.stack(
                [
                    self.std * (v[p].max() - v[p].min()) if len(p) else torch.tensor(0.0)
                    for v, p in zip(values, self.positions, strict=True)
                ]
            )
        self.sigma = sigma.to(self.device)

    def rows(self, examples: torch.Tensor, samples: torch.Tensor, width: int) -> torch.Tensor:
        """Noise ``[n, width, D]`` for the given (example, sample) pairs; zero at padding."""
        out = torch.zeros(len(examples), width, self.dim)
        if self.std > 0:
            for r, (i, s) in enumerate(zip(examples.tolist(), samples.tolist(), strict=True)):
                generator = torch.Generator().manual_seed(content_seed(self.seed, self.ids[i], s))
                positions = self.positions[i]
                draws = torch.randn(len(positions), self.dim, generator=generator)
                out[r, positions] = draws * float(self.sigma[i])
        return out.to(device=self.device, dtype=self.dtype)
