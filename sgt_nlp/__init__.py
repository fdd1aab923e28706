"""sgt_nlp: Saliency Guided Training for Hugging Face text classifiers, and ERASER-style rationale evaluation."""

from typing import Any

from .config import SaliencyGuidedTrainingArguments
from .trainer import SaliencyGuidedTrainer

__version__ = "0.1.0"

#: Public names imported on first use (``import sgt_nlp`` stays light): name -> module that defines it.
_LAZY_EXPORTS: dict[str, str] = {
    # sanity checks: run_sanity_checks(model, tokenizer, batches, config) -> SanityResult
    "run_sanity_checks": "sgt_nlp.sanity.checks",
    "SanityConfig": "sgt_nlp.sanity.checks",
    "SanityResult": "sgt_nlp.sanity.checks",
}


def __getattr__(name: str) -> Any:
    """The lazy exports of :data:`_LAZY_EXPORTS`, imported when first asked for."""
    if name in _LAZY_EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sgt_nlp' has no attribute {name!r}")


__all__ = [
    "SaliencyGuidedTrainer",
    "SaliencyGuidedTrainingArguments",
    "SanityConfig",
    "SanityResult",
    "__version__",
    "run_sanity_checks",
]
