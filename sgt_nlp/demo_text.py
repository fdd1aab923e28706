"""The demo's bottom line: the verdict sentences of :func:`sgt_nlp.demo.method_sentences` read back into one
paragraph of plain words, for the top of the report and the terminal (never recomputed from the numbers)."""

from __future__ import annotations

from typing import Any

from .report.experiment import METHOD_TITLES

#: what a method's verdict sentence (:func:`method_sentences`) can say SGT did, as :func:`bottom_line`
#: reads it (in the order the bottom line lists them)
VERDICT_WORDS = {
    "depends on normalisation": "the measures disagree: the answer depends on how AOPC is normalised",
    "helped": "more faithful on every measure, beyond noise",
    "hurt": "less faithful on every measure, beyond noise",
    "noise": "no difference beyond noise",
}


def method_outcome(sentence_body: str) -> str:
    """The key of :data:`VERDICT_WORDS` that a method's verdict sentence states against plain (the word after
    "SGT ", before the numbers; ``unclear`` if none)."""
    word = sentence_body.removeprefix("SGT ").split(" (", 1)[0].strip()
    if word.startswith("depends on") and "normali" in word:  # -isation or -ization
        return "depends on normalisation"
    if word in ("helped", "hurt"):
        return word
    return "noise" if word == "within noise" else "unclear"


def bottom_line(result: dict[str, Any], sentences: list[str]) -> str:
    """The verdict in one paragraph of plain words, for the top of the report and the terminal.

    It is read from ``sentences``, the output of :func:`method_sentences` (the demo's verdict rule), never
    recomputed, so that it says what the verdict says. Random is left out (its scores are noise by design:
    the floor, not an explanation). Accuracy is quoted with its interval, from the same comparison.
    """
    groups: dict[str, list[str]] = {}
    for sentence in sentences:
        name, _, body = sentence.partition(": ")
        if (
            name == "Accuracy"
            or not body
            or name == METHOD_TITLES["random"]
            or body.startswith("no comparison")
        ):
            continue
        groups.setdefault(method_outcome(body), []).append(name)
    if not groups:
        return (
            "No comparison could be made (no seed passed the accuracy gate or finished); see the table below."
        )
    order = [*VERDICT_WORDS, "unclear"]
    parts = "; ".join(
        f"for {_and(groups[o])}, {VERDICT_WORDS.get(o, 'see its verdict line')}" for o in order if o in groups
    )
    text = (
        "Did saliency-guided training (SGT) make the explanations more faithful than plain fine-tuning "
        "(comprehensiveness: raw AOPC, AOPC minus the same model's Random AOPC and NAOPC with all-order "
        "bounds must all agree, beyond a paired interval)? "
        f"{parts[0].upper()}{parts[1:]}."
    )
    for data in result["datasets"].values():
        vs_plain = next(
            (c for c in data["comparisons"] if (c["treatment"], c["control"]) == ("sgt", "plain")), None
        )
        if vs_plain is not None and vs_plain.get("accuracy"):
            accuracy = vs_plain["accuracy"]
            text += (
                f" Test accuracy: SGT minus plain {100 * accuracy['mean']:+.1f} points (95 % interval "
                f"{100 * accuracy['low']:+.1f} to {100 * accuracy['high']:+.1f})."
            )
            break
    return text + (
        " Each line of the verdict below gives the numbers, against plain and against random-mask (the same "
        "share of words masked at random): a gain that random-mask shares comes from masking in general, not "
        "from the saliency ranking."
    )


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
