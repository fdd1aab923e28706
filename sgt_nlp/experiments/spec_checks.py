"""The type and range checks of an experiment spec's fields (a JSON or YAML file is untrusted input): every
value has its annotated type, every number is finite and in its range, and each arm's ``sgt_*`` settings are
values the trainer takes. Errors are :class:`SpecError` naming the file and the field."""

from __future__ import annotations

import math
import types
import typing
from dataclasses import fields
from typing import Any, Union


class SpecError(ValueError):
    """A spec that cannot run; names the file and the field."""


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as read from JSON/YAML, lists for tuples) has the type ``hint``."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args, strict=True))
    if origin is dict:
        key, item = typing.get_args(hint)
        return isinstance(value, dict) and all(matches(k, key) and matches(v, item) for k, v in value.items())
    return isinstance(value, hint) if isinstance(hint, type) else True


def check_types(obj: Any, prefix: str) -> None:
    """Every field of the dataclass ``obj`` has its annotated type and every float in it is finite; errors
    name ``prefix + field``."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        if not matches(value, hints[f.name]):
            expected = str(hints[f.name]).replace("typing.", "").replace("<class '", "").replace("'>", "")
            raise SpecError(f"{prefix}{f.name}: {value!r} is not of type {expected}")
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, float) and not math.isfinite(item):
                raise SpecError(f"{prefix}{f.name}: a finite number is needed, got {value!r}")


def check_range(
    where: str,
    value: float | None,
    low: float,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """``value`` (None: not given, allowed) within ``low``..``high`` (open ends where asked)."""
    if value is None:
        return
    too_low = value <= low if low_open else value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        span = f"{left}{low}, {'inf' if high is None else high}{right}"
        raise SpecError(f"{where}: must be in {span}, got {value!r}")


def check_dataset_ranges(d: Any, where: str) -> None:
    """The numbers of one :class:`~sgt_nlp.experiments.spec.DatasetSpec` that have a range."""
    for name in ("train_examples", "val_examples", "test_examples", "batch_size"):
        check_range(f"{where}.{name}", getattr(d, name), 1)
    check_range(f"{where}.max_length", d.max_length, 8)
    check_range(f"{where}.epochs", d.epochs, 0, low_open=True)
    for lr in d.learning_rates:
        check_range(f"{where}.learning_rates", lr, 0, low_open=True)
    check_range(f"{where}.threshold", d.threshold, 0, 1, low_open=True, high_open=True)
    check_range(f"{where}.gate", d.gate, 0, 1.01)
    if d.source == "synthetic":
        check_synthetic(d.synthetic, f"{where}.synthetic")


def check_spec_ranges(spec: Any, source: str) -> None:
    """The numbers of an :class:`~sgt_nlp.experiments.spec.ExperimentSpec` that have a range, and the values
    of each arm's ``sgt_*`` settings."""
    from ..config import check_sgt_setting
    from ..validation import UsageError

    for seed in spec.seeds:
        check_range(f"{source}: seeds", seed, 0)
    for name in ("random_draws", "ig_steps", "smoothgrad_samples", "eval_batch_size", "eval_processes"):
        check_range(f"{source}: {name}", getattr(spec, name), 1)
    check_range(f"{source}: bootstrap_resamples", spec.bootstrap_resamples, 1)
    check_range(f"{source}: warmup", spec.warmup, 0, 1, high_open=True)
    check_range(f"{source}: weight_decay", spec.weight_decay, 0)
    for name, value in spec.tiny_model.items():
        check_range(f"{source}: tiny_model.{name}", value, 1)
    for arm, settings in spec.arms.items():
        for key, value in settings.items():
            try:
                check_sgt_setting(key, value, f"{source}: arms.{arm}.{key}")
            except UsageError as exc:
                raise SpecError(str(exc)) from None


def check_synthetic(settings: dict[str, Any], where: str) -> None:
    """A synthetic dataset's settings: known names (``make_synthetic_eraser``'s keywords), each of its type,
    finite, and a task :class:`~sgt_nlp.synthetic.SyntheticConfig` accepts."""
    import inspect

    from ..synthetic import SyntheticConfig, make_synthetic_eraser

    allowed = [n for n in inspect.signature(make_synthetic_eraser).parameters if n not in ("out_dir", "seed")]
    hints = typing.get_type_hints(SyntheticConfig)
    for key, value in settings.items():
        if key not in allowed:
            raise SpecError(f"{where}.{key}: unknown setting (allowed: {', '.join(allowed)})")
        if not matches(value, hints[key]) or (isinstance(value, float) and not math.isfinite(value)):
            raise SpecError(f"{where}.{key}: {value!r} is not a finite value of type {hints[key]}")
    try:
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
        SyntheticConfig(**values)
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from None
