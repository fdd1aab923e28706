"""Batched token-level explainers for Hugging Face classifiers, one module per method.

Every explainer is ``Explainer(model, target_output=..., **settings)`` with
``attribute(inputs, target=None, word_ids=None) -> Attribution``, and describes itself to the code that uses
it through class attributes (``aggregations``, ``scores_signed()``, ``has_convergence_delta``,
``groups_by_words``, ``multiplies_by_inputs``, ``run_settings``); see ``docs/explainers.md``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sgt_nlp.explainers.base import Attribution, Explainer
from sgt_nlp.explainers.conservative import Conservative
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
    "conservative": Conservative,
}


def explainer_class(name: str) -> type[Explainer]:
    """The class registered as ``name`` (its capabilities are class attributes); unknown names list the
    allowed ones."""
    try:
        return EXPLAINERS[name]
    except KeyError:
        raise ValueError(f"unknown explainer {name!r}; allowed: {', '.join(EXPLAINERS)}") from None


def get_explainer(name: str, model: nn.Module, **kwargs: Any) -> Explainer:
    """Build the explainer registered as ``name`` with its settings; unknown names list the allowed ones."""
    return explainer_class(name)(model, **kwargs)


__all__ = [
    "EXPLAINERS",
    "Attribution",
    "Conservative",
    "Explainer",
    "Gradient",
    "IntegratedGradients",
    "Occlusion",
    "Random",
    "SmoothGrad",
    "explainer_class",
    "get_explainer",
]
