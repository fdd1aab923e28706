"""sgt_nlp: Saliency Guided Training for Hugging Face text classifiers, and ERASER-style rationale evaluation."""

__version__ = "0.1.0"
