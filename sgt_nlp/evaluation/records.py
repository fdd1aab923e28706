"""The typed records an evaluation passes around: examples in, per-example results out, the whole result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..eraser import Annotation, ERASERSplit
from .config import EvaluationConfig


@dataclass
class Example:
    """One annotation as the evaluation reads it: the document words (all documents of the annotation, in
    order), the query words, the human rationale per word (0/1), the documents' ids and lengths, the gold
    label id, and ``index``, its position among the evaluated examples."""

    index: int
    annotation_id: str
    words: list[str]
    query_words: list[str]
    rationale: list[int]
    docids: list[str]
    doc_lengths: list[int]
    label: int


@dataclass
class MethodResult:
    """What one explainer and one removal mode give for one example.

    - ``word_scores``: one score per word the model saw (in ``kept_words`` order).
    - ``probs``: class probabilities of the full input.
    - ``comp`` / ``suff``: class probabilities with the top ``threshold`` share of seen words removed / kept.
    - ``thresholded``: per AOPC bin, the ``(comp, suff)`` probabilities.
    - ``masked_correct``: per masked-accuracy fraction, 1 when the prediction is still the gold label.
    - ``tokens_to_flip``: the fewest top words whose removal changes the prediction (n when none does).
    - ``empty``: probabilities with every seen word removed (only with ``per_example``).
    - ``seconds``: this example's share of the batch's time (explaining plus the removal mode's passes).
    - ``convergence_delta``: the explainer's completeness gap when it has one (Integrated Gradients).
    """

    word_scores: np.ndarray
    probs: np.ndarray
    comp: np.ndarray
    suff: np.ndarray
    thresholded: dict[float, tuple[np.ndarray, np.ndarray]]
    masked_correct: list[int]
    tokens_to_flip: int
    empty: np.ndarray | None = None
    seconds: float = 0.0
    convergence_delta: float | None = None


@dataclass
class ExampleOutput:
    """One example's results: which words the model saw (``kept_words``, ``words_kept`` of them),
    ``methods[removal][method]`` and, when searched, ``bounds[removal]``."""

    index: int
    annotation_id: str
    words_kept: int
    kept_words: list[int]
    methods: dict[str, dict[str, MethodResult]] = field(default_factory=dict)
    #: per removal mode, NAOPC's searched bounds (``--naopc_bounds beam|exact``; :mod:`.bounds`)
    bounds: dict[str, dict[str, Any]] = field(default_factory=dict)

    def result(self, removal: str, method: str) -> MethodResult:
        return self.methods[removal][method]


@dataclass
class EvaluationResult:
    """What :func:`~sgt_nlp.evaluation.evaluate_rationales` returns; the output folder is written from it by
    :func:`~sgt_nlp.evaluation.write_evaluation`.

    ``outputs[i]`` belongs to ``examples[i]`` and ``annotations[i]`` (in the split's order). ``threshold`` is
    the share used for the single-point comp/suff and hard rationales; ``truncation`` counts what the
    ``max_length`` cut dropped; ``seconds`` is the wall time so far.
    """

    config: EvaluationConfig
    split: ERASERSplit
    annotations: list[Annotation]
    examples: list[Example]
    outputs: list[ExampleOutput]
    labels: list[str]
    threshold: float
    explainer_params: dict[str, dict[str, Any]]
    truncation: dict[str, int]
    rationale_coverage: dict[str, int]
    model_name: str
    sgt_settings: dict[str, Any] | None = None
    processes: int = 1
    forward_passes: int = 0
    seconds: float = 0.0
