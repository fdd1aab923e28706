"""sgt_nlp: Saliency Guided Training for Hugging Face text classifiers, and ERASER-style rationale evaluation."""

from .config import SaliencyGuidedTrainingArguments
from .trainer import SaliencyGuidedTrainer

__version__ = "0.1.0"

__all__ = ["SaliencyGuidedTrainer", "SaliencyGuidedTrainingArguments", "__version__"]
