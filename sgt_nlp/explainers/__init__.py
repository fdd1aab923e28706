"""Batched token-level explainers for Hugging Face classifiers, one module per method.

Every explainer is ``Explainer(model, target_output=..., **settings)`` with
``attribute(inputs, target=None) -> Attribution``; see ``docs/explainers.md``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sgt_nlp.explainers.base import Attribution, Explainer
from sgt_nlp.explainers.gradient import Gradient
from sgt_nlp.explainers.integrated_gradients import IntegratedGradients
from sgt_nlp.explainers.occlusion import Occlusion
from sgt_nlp.explainers.random import Random
from sgt_nlp.explainers.smoothgrad import SmoothGrad

EXPLAINERS: dict[str, type[Explainer]] = {
    "gradient": Gradient,
    "integrated_gradients": IntegratedGradients,
    "smoothgrad": SmoothGrad,
    "occlusion": Occlusion,
    "random": Random,
}


def get_explainer(name: str, model: nn.Module, **kwargs: Any) -> Explainer:
    """Build the explainer registered as ``name`` with its settings; unknown names list the allowed ones."""
    try:
        cls = EXPLAINERS[name]
    except KeyError:
        raise ValueError(f"unknown explainer {name!r}; allowed: {', '.join(EXPLAINERS)}") from None
    return cls(model, **kwargs)


__all__ = [
    "EXPLAINERS",
    "Attribution",
    "Explainer",
    "Gradient",
    "IntegratedGradients",
    "Occlusion",
    "Random",
    "SmoothGrad",
    "get_explainer",
]
