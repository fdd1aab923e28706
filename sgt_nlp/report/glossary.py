"""The report's "How to read this" glossary: one line per metric, normalisation and method on the page.

Every column head of the report's tables carries ``data-term`` (a key of :data:`TERMS`), and the verdict's
metrics are named here too, so a reader never meets a number the page does not define (a test checks it in
the rendered page). Only the terms a page uses are listed, in :data:`TERMS` order.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

#: key -> (the name as the page shows it, its one-line definition)
TERMS: dict[str, tuple[str, str]] = {
    "accuracy": ("Accuracy ↑", "share of test examples whose predicted class is the gold class."),
    "macro_f1": ("Macro F1 ↑", "F1 of the predictions per class, averaged over the classes."),
    "comprehensiveness": (
        "Comprehensiveness ↑",
        "how much the predicted class's probability drops when the words the explanation ranks highest "
        "(as many as the human rationale usually has) are removed: a faithful explanation's top words "
        "matter.",
    ),
    "sufficiency": (
        "Sufficiency ↓",
        "how much that probability drops when only those top words are kept: small means they suffice.",
    ),
    "comprehensiveness_aopc": (
        "AOPC comp. ↑",
        "comprehensiveness averaged over removing the top 1, 5, 10, 20 and 50 % of the words (Area Over "
        "the Perturbation Curve); the first plot below shows each step.",
    ),
    "sufficiency_aopc": (
        "AOPC suff. ↓",
        "sufficiency averaged over keeping the top 1, 5, 10, 20 and 50 % of the words.",
    ),
    "naopc": (
        "NAOPC ↑ (normalised AOPC)",
        "AOPC rescaled per example between the worst (0) and best (1) word ordering: of all orderings "
        "(all-order bounds; Edin et al. 2025) or, labelled and never deciding, of the evaluated methods'.",
    ),
    "aopc_minus_random": (
        "AOPC − Random",
        "a method's AOPC minus the same model's Random AOPC: what the explanation adds over chance.",
    ),
    "depends": (
        "depends on normalisation",
        "raw AOPC, AOPC − Random and NAOPC disagree, so no better or worse is called (the verdict's rule).",
    ),
    "auprc": (
        "AUPRC ↑",
        "area under the precision–recall curve of the word scores against the human (here: planted) "
        "rationale: 1 when every rationale word is ranked above every other word.",
    ),
    "token_f1": (
        "Token F1 ↑",
        "word-level F1 between the explanation's top words (the rationale's usual size) and the rationale.",
    ),
    "iou_f1": ("IOU F1 ↑", "F1 of span matches (overlap at least 0.5) with the human rationale."),
    "masked_accuracy_auc": (
        "Masked-acc. mean ↓",
        "accuracy averaged over removing each example's top 0–90 % of words: falls fast for a faithful "
        "explanation.",
    ),
    "removal": (
        "Removal",
        "how a removed word is replaced in the measures above: delete (ERASER's), [MASK] or a random token.",
    ),
    "interval": (
        "95 % interval [low, high]",
        "paired bootstrap over the test examples (and seeds): a difference counts only when its interval "
        "excludes 0.",
    ),
    "noise": (
        "≈ within noise",
        "a difference whose interval covers 0 (or, unpaired, below 0.02): no difference.",
    ),
    "method": ("Method", "the explanation method that ranked the words (definitions below)."),
    "gradient_l2": (
        "Gradient (l2, the trained score)",
        "size (L2 norm) of the gradient at each word's embedding: the score SGT ranks words by in training.",
    ),
    "gradient": ("Gradient × input", "gradient times the word's embedding, summed: signed, for or against."),
    "integrated_gradients": (
        "Integrated Gradients",
        "gradient × input averaged along a path from an empty input to the text.",
    ),
    "smoothgrad": ("SmoothGrad", "the gradient averaged over noisy copies of the embeddings."),
    "occlusion": (
        "Occlusion",
        "the drop in the predicted class's probability when that one word is removed.",
    ),
    "random": ("Random", "random word scores: the floor every method should clear."),
}

#: the verdict's metrics and the terms that define them
VERDICT_TERMS = (
    "comprehensiveness_aopc",
    "naopc",
    "aopc_minus_random",
    "depends",
    "auprc",
    "interval",
    "noise",
)


def glossary_html(terms: Iterable[str]) -> str:
    """A definition list of ``terms`` (unknown keys are left out), in :data:`TERMS` order."""
    wanted = set(terms)
    items = [
        f'<dt id="def-{key}" data-term="{key}">{html.escape(name)}</dt><dd>{html.escape(text)}</dd>'
        for key, (name, text) in TERMS.items()
        if key in wanted
    ]
    return f'<dl class="glossary">{"".join(items)}</dl>'
