"""Which explainer configurations a sanity run checks: ``--methods`` text → :class:`MethodSpec`, and which
of their scores carry a sign the reader uses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..explainers import EXPLAINERS, Explainer, explainer_class, get_explainer

#: The aggregation variants a method name without ``:aggregations`` expands to (each explainer class's
#: ``default_aggregations``; methods without aggregations are absent).
DEFAULT_AGGREGATIONS: dict[str, tuple[str, ...]] = {
    name: cls.default_aggregations for name, cls in EXPLAINERS.items() if cls.default_aggregations
}
DEFAULT_METHODS = "gradient,integrated_gradients,smoothgrad:l2+grad_x_input,random"


@dataclass(frozen=True)
class MethodSpec:
    """One explainer configuration to check. ``factory`` (optional) builds a custom explainer from a model.

    ``signed``: whether the scores carry a sign the reader uses (positive-only maps rank by magnitude, and for
    them the signed Spearman *is* the magnitude Spearman since every score is ≥ 0).
    """

    label: str
    method: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    signed: bool = True
    factory: Callable[[nn.Module], Explainer] | None = field(default=None, compare=False)

    def build(self, model: nn.Module, tokenizer: Any, target_output: str) -> Explainer:
        if self.factory is not None:
            return self.factory(model)
        return get_explainer(
            self.method, model, tokenizer=tokenizer, target_output=target_output, **self.settings
        )

    @property
    def aggregation(self) -> str | None:
        return self.settings.get("aggregation")


def is_signed(method: str, aggregation: str | None) -> bool:
    """Whether ``method`` with ``aggregation`` gives signed scores (the explainer class's ``scores_signed``):
    signed gradient aggregations, IG ``sum`` and occlusion; random is U(0, 1), positive."""
    return explainer_class(method).scores_signed(aggregation)


def parse_methods(text: str, settings: Mapping[str, Mapping[str, Any]] | None = None) -> list[MethodSpec]:
    """``"gradient,smoothgrad:l2+grad_x_input,random"`` → specs; a bare method with aggregations expands to
    its class's ``default_aggregations``. ``settings[method]`` adds explainer settings (e.g. ``n_steps``)."""
    specs: list[MethodSpec] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, aggs = item.partition(":")
        if name not in EXPLAINERS:
            raise ValueError(f"unknown method {name!r}; allowed: {', '.join(EXPLAINERS)}")
        cls = explainer_class(name)
        extra = dict((settings or {}).get(name, {}))
        if cls.aggregations:
            allowed = cls.aggregations
            chosen = tuple(a for a in aggs.split("+") if a) if aggs else cls.default_aggregations
            for agg in chosen:
                if agg not in allowed:
                    raise ValueError(f"unknown aggregation {agg!r} for {name}; allowed: {', '.join(allowed)}")
                settings_ = {**extra, "aggregation": agg}
                specs.append(MethodSpec(f"{name}/{agg}", name, settings_, is_signed(name, agg)))
        elif aggs:
            raise ValueError(f"{name} has no aggregations (got {item!r})")
        else:
            specs.append(MethodSpec(name, name, extra, is_signed(name, None)))
    if not specs:
        raise ValueError("no methods given")
    return specs
