"""sgt_nlp: Saliency Guided Training for Hugging Face text classifiers, and ERASER-style rationale
evaluation."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import SaliencyGuidedTrainingArguments
    from .evaluation import EvaluationConfig, EvaluationResult, evaluate_rationales, write_evaluation
    from .explainers import get_explainer
    from .sanity.checks import SanityConfig, SanityResult, run_sanity_checks
    from .trainer import SaliencyGuidedTrainer

__version__ = "0.1.0"

#: Public names imported on first use, so that ``import sgt_nlp`` (run by every submodule's import, e.g. the
#: pure metric functions) loads neither transformers (seconds, with peft installed) nor the evaluation stack
#: (captum, scikit-learn) that training does not need: name -> module that defines it.
_LAZY_EXPORTS: dict[str, str] = {
    "SaliencyGuidedTrainer": "sgt_nlp.trainer",
    "SaliencyGuidedTrainingArguments": "sgt_nlp.config",
    "EvaluationConfig": "sgt_nlp.evaluation",
    "EvaluationResult": "sgt_nlp.evaluation",
    "evaluate_rationales": "sgt_nlp.evaluation",
    "write_evaluation": "sgt_nlp.evaluation",
    "get_explainer": "sgt_nlp.explainers",
    # sanity checks: run_sanity_checks(model, tokenizer, batches, config) -> SanityResult
    "run_sanity_checks": "sgt_nlp.sanity.checks",
    "SanityConfig": "sgt_nlp.sanity.checks",
    "SanityResult": "sgt_nlp.sanity.checks",
}


def __getattr__(name: str) -> Any:
    """The lazy exports of :data:`_LAZY_EXPORTS`, imported when first asked for."""
    if name in _LAZY_EXPORTS:
        value = getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sgt_nlp' has no attribute {name!r}")


__all__ = [
    "EvaluationConfig",
    "EvaluationResult",
    "SaliencyGuidedTrainer",
    "SaliencyGuidedTrainingArguments",
    "SanityConfig",
    "SanityResult",
    "__version__",
    "evaluate_rationales",
    "get_explainer",
    "run_sanity_checks",
    "write_evaluation",
]
