"""The command lines of ``sgt-nlp evaluate`` and ``sgt-nlp rescore``.

``evaluate``'s options are generated from the fields of :class:`EvaluationConfig` (their help, choices and
defaults live in the field metadata), so a default is written once. Tuples are comma-separated lists;
``--removal`` takes a list too: the first is the main removal, the rest ``extra_removals``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import types
import typing
from pathlib import Path
from typing import Any

from ..distributed import close_process_group
from ..precision import precision_name
from ..validation import UsageError, output_dir_claim, parse_name_list
from .config import REMOVALS, EvaluationConfig
from .rescore import rescore_output
from .runner import evaluate_folder
from .summary import summary_table


def _scalar_type(annotation: Any) -> type:
    """``int`` for ``int`` and ``int | None``, and so on; ``str`` for everything else."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation if annotation in (int, float, str) else str


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One ``--<field>`` per dataclass field whose metadata has a ``help`` (``cli=False`` hides a field).

    Metadata: ``required``; ``choices``; ``flag``: the name of a ``--no_...`` switch that sets a True default
    to False; ``switch``: ``--<field>`` sets a False default to True; ``list``: a comma-separated tuple
    (the allowed names, or ``float`` for numbers), whose default
    is shown joined with commas.
    """
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        meta = f.metadata
        if meta.get("cli") is False or "help" not in meta:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = f.default_factory()  # type: ignore[misc]
        if "flag" in meta:
            parser.add_argument(
                f"--{meta['flag']}", dest=f.name, action="store_false", default=default, help=meta["help"]
            )
            continue
        if meta.get("switch"):
            parser.add_argument(f"--{f.name}", action="store_true", default=default, help=meta["help"])
            continue
        kwargs: dict[str, Any] = {"help": meta["help"]}
        if meta.get("required"):
            kwargs["required"] = True
        elif "list" in meta:
            kwargs["default"] = ",".join(str(v) for v in default)
        else:
            kwargs["default"] = default
        if "list" not in meta:
            kwargs["type"] = _scalar_type(hints[f.name])
        if "choices" in meta:
            kwargs["choices"] = tuple(meta["choices"])
        parser.add_argument(f"--{f.name}", **kwargs)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgt-nlp evaluate",
        description="Explain a classifier's predictions on an ERASER split and score the explanations: "
        "faithfulness (comprehensiveness, sufficiency, AOPC) and agreement with human rationales "
        "(token and IOU F1, AUPRC). Writes <output_dir>/<method>/{results.jsonl,scores.json,curves.json} "
        "and a summary table. Runs under accelerate launch / torchrun with examples split across processes.",
    )
    add_config_arguments(parser, EvaluationConfig)
    parser.add_argument(
        "--overwrite_output_dir",
        action="store_true",
        help="write into an output_dir that already holds files; the earlier evaluation's "
        "method, removal_* and summary files are deleted first (without it such a folder is "
        "refused)",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        metavar="FILE",
        help="append every finished batch to FILE; run again with the same FILE to resume an interrupted "
        "evaluation (the batches it holds are not run again; a FILE made with other settings or another "
        "model is refused). One process only",
    )
    parser.add_argument(
        "--update_model_card",
        action="store_true",
        help="also put the summary table into the model folder's sgt_nlp model card "
        "(README.md), replacing the rationale-evaluation section it has; by default the model "
        "folder is not touched",
    )
    parser.add_argument(
        "--no_model_card", action="store_true", help=argparse.SUPPRESS
    )  # the old default's opt-out
    return parser


def _fractions(option: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a comma-separated list of numbers") from None


def config_from_namespace(args: argparse.Namespace) -> EvaluationConfig:
    """The :class:`EvaluationConfig` of parsed ``evaluate`` arguments (lists split and checked)."""
    removals = parse_name_list("--removal", args.removal, REMOVALS)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(EvaluationConfig):
        if f.metadata.get("cli") is False or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        kind = f.metadata.get("list")
        if kind is float:
            value = _fractions(f"--{f.name}", value)
        elif kind is not None:
            value = parse_name_list(f"--{f.name}", value, kind)
        values[f.name] = value
    values.update(removal=removals[0], extra_removals=tuple(removals[1:]))
    return EvaluationConfig(**values)


def config_from_args(argv: list[str] | None = None) -> EvaluationConfig:
    return config_from_namespace(make_parser().parse_args(argv))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = make_parser().parse_args(argv)
    config = config_from_namespace(args)
    assert config.output_dir is not None  # --output_dir is a required option
    with output_dir_claim(
        config.output_dir,
        overwrite=args.overwrite_output_dir,
        what="files (an earlier evaluation?)",
        command="sgt-nlp evaluate",
    ) as claim:
        rows = evaluate_folder(config, checkpoint=args.checkpoint, claim=claim)
    close_process_group()
    if rows:
        _print_summary(config, rows, args.update_model_card)


def _print_summary(config: EvaluationConfig, rows: list[dict[str, Any]], update_model_card: bool) -> None:
    assert config.output_dir is not None and config.model is not None  # main: required options
    table = summary_table(rows)
    run = json.loads((Path(config.output_dir) / "run.json").read_text())
    cut = run["truncation"]
    print(table)
    print(
        f"\n{run['examples']} examples of {config.data_dir} ({config.split}); threshold {run['threshold']}; "
        f"truncated ({config.truncation}) at {config.max_length} pieces: "
        f"{cut['examples_truncated']} examples, "
        f"{cut['words_truncated']}/{cut['words']} words and {cut['rationale_words_truncated']}/"
        f"{cut['rationale_words']} human-rationale words not seen"
    )
    covered = run["rationale_coverage"]
    if covered["without_rationale"]:
        print(
            f"plausibility (AUPRC, token and IOU F1) covers the {covered['with_rationale']} of "
            f"{covered['examples']} examples that have a human rationale; faithfulness covers all"
        )
    if update_model_card and Path(config.model).is_dir():
        from ..model_card import add_evaluation_to_model_card

        description = (
            f"`sgt-nlp evaluate` on `{config.data_dir}` ({config.split}, {run['examples']} "
            f"examples), removal `{config.removal}`, {precision_name(config.bf16)} model passes, "
            f"max_length {config.max_length} "
            f"({config.truncation} truncation)."
        )
        if add_evaluation_to_model_card(config.model, table, description):
            print(f"added the table to {Path(config.model) / 'README.md'}")
    print(f"\nwritten to {config.output_dir}")


def make_rescore_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgt-nlp rescore",
        description="Score 'sgt-nlp evaluate' output folders again from their results.jsonl files with the "
        "current scorer, without running the model; use it after a scorer fix. Model-dependent parts "
        "(seen-word metrics, masked-accuracy curve, timings) are kept.",
    )
    parser.add_argument("folders", nargs="+", help="evaluation output folders (each with run.json)")
    parser.add_argument(
        "--data_dir", default=None, help="the ERASER folder, if it moved since the evaluation"
    )
    return parser


def rescore_main(argv: list[str] | None = None) -> None:
    args = make_rescore_parser().parse_args(argv)
    for folder in args.folders:
        rows = rescore_output(folder, args.data_dir)
        print(f"{folder}:\n{summary_table(rows)}\n")
