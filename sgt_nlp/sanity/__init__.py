"""Sanity checks for token saliency: class sensitivity and model-parameter randomisation.

Why: saliency methods that aggregate gradients positively (``l2``, ``l1``, ``|grad x input|``) produce maps
that look plausible but ignore the explained class and survive randomising the model (Khakzar et al. 2020;
Adebayo et al. 2018). On a two-class softmax with a log-probability target the gradients of the two classes
are exactly antiparallel, so every positive aggregation ranks the words identically for both classes. These
checks measure that on any Hugging Face sequence classifier, for every explainer of ``sgt_nlp.explainers``.

Modules, one job each: :mod:`.measures` (similarities of two maps, summaries, verdict rules), :mod:`.methods`
(which explainer configurations), :mod:`.randomisation` (layer stages and their re-initialisation),
:mod:`.checks` (:func:`run_sanity_checks` → :class:`SanityResult`), :mod:`.io` (inputs, ``sanity.json``),
:mod:`.cli` (``sgt-nlp sanity``). Tables and pages are rendered by :mod:`sgt_nlp.report.sanity_page`.
Similarities are computed per example on the scores of the real tokens (attended, not special).
"""

from .checks import (
    Batch,
    SanityConfig,
    SanityResult,
    class_sensitivity,
    explain,
    precision_check,
    run_sanity_checks,
)
from .io import (
    decode_non_finite,
    dumps_json,
    encode_batches,
    encode_non_finite,
    load_eraser_inputs,
    load_model,
    load_sanity,
    loads_json,
    write_outputs,
)
from .measures import (
    INSENSITIVE_THRESHOLD,
    MEASURES,
    PRECISION_THRESHOLD,
    SENSITIVE_THRESHOLD,
    TOP_FRACTION,
    class_verdict,
    kendall,
    precision_verdict,
    randomization_verdict,
    similarities,
    spearman,
    spearman_abs,
    summarize,
    top_k_overlap,
)
from .methods import DEFAULT_AGGREGATIONS, DEFAULT_METHODS, MethodSpec, is_signed, parse_methods
from .randomisation import (
    Stage,
    UnknownLayoutError,
    merged_adapter,
    randomization_stages,
    randomized_copy,
    reinitialize,
    stage_parameters,
    stage_seed,
)

__all__ = [
    "DEFAULT_AGGREGATIONS",
    "DEFAULT_METHODS",
    "INSENSITIVE_THRESHOLD",
    "MEASURES",
    "PRECISION_THRESHOLD",
    "SENSITIVE_THRESHOLD",
    "TOP_FRACTION",
    "Batch",
    "MethodSpec",
    "SanityConfig",
    "SanityResult",
    "Stage",
    "UnknownLayoutError",
    "class_sensitivity",
    "class_verdict",
    "decode_non_finite",
    "dumps_json",
    "encode_batches",
    "encode_non_finite",
    "explain",
    "is_signed",
    "kendall",
    "load_eraser_inputs",
    "load_model",
    "load_sanity",
    "loads_json",
    "merged_adapter",
    "parse_methods",
    "precision_check",
    "precision_verdict",
    "randomization_stages",
    "randomization_verdict",
    "randomized_copy",
    "reinitialize",
    "run_sanity_checks",
    "similarities",
    "spearman",
    "spearman_abs",
    "stage_parameters",
    "stage_seed",
    "summarize",
    "top_k_overlap",
    "write_outputs",
]
