"""The one rule for a faithfulness verdict between two models: no single normaliser decides.

AOPC depends on the model (a less confident model loses less probability), and NAOPC's bounds, when taken
over the orderings evaluated for a model, make the normaliser one of the methods compared: the sign of a
difference between models can flip with the normaliser. A difference is therefore called ``better`` /
``worse`` only when three measures of the metric are each called that way beyond their intervals: raw AOPC,
AOPC minus the same model's Random AOPC on the same example, and NAOPC with method-independent (all-order)
bounds (Edin et al. 2025). Used by the experiment tables, the demo's verdict and ``sgt-nlp report``.
"""

from __future__ import annotations

from collections.abc import Mapping

DEPENDS = "depends on normalisation"
NOT_MEASURED = "NAOPC with all-order bounds not measured"


def normalisation_verdict(outcomes: Mapping[str, str | None]) -> str:
    """One verdict from a metric's measures (``{measure: outcome}``, None for one not measured): ``better``/
    ``worse`` when every measured one says so, ``depends on normalisation`` when one is called and another
    is not (or the other way), ``within noise`` when none is called. A measure not measured is named."""
    measured = {k: v for k, v in outcomes.items() if v is not None and v != "no data"}
    if not measured:
        return "no data"
    calls = {v for v in measured.values() if v in ("better", "worse")}
    if len(calls) > 1 or (calls and len(set(measured.values())) > 1):
        return DEPENDS
    if not calls:
        return "within noise"
    (call,) = calls
    missing = [k for k, v in outcomes.items() if v is None]
    return f"{call} ({NOT_MEASURED})" if any(k.endswith("_naopc_bounds") for k in missing) else call
