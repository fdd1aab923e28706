"""sgt_nlp: Saliency Guided Training for Hugging Face text classifiers, and ERASER-style rationale
evaluation."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import SaliencyGuidedTrainingArguments
from .trainer import SaliencyGuidedTrainer

if TYPE_CHECKING:
    from .evaluation import EvaluationConfig, EvaluationResult, evaluate_rationales, write_evaluation
    from .explainers import get_explainer

__version__ = "0.1.0"

#: names imported on first use, so that ``import sgt_nlp`` does not load the evaluation stack (captum,
#: scikit-learn) that training does not need
_LAZY = {
    "EvaluationConfig": ".evaluation",
    "EvaluationResult": ".evaluation",
    "evaluate_rationales": ".evaluation",
    "write_evaluation": ".evaluation",
    "get_explainer": ".explainers",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EvaluationConfig",
    "EvaluationResult",
    "SaliencyGuidedTrainer",
    "SaliencyGuidedTrainingArguments",
    "__version__",
    "evaluate_rationales",
    "get_explainer",
    "write_evaluation",
]
