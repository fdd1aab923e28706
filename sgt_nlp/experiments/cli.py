"""``sgt-nlp experiment``: its options (:class:`ExperimentArguments`, one default each), parser and entry
point."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..validation import check_number, check_positive, parse_seeds
from .data import SHARED_DATA, export_half_precision_model
from .runner import Experiment
from .spec import PRESETS, ExperimentSpec, SpecError, load_spec, validate_spec

if TYPE_CHECKING:
    from transformers import HfArgumentParser

DESCRIPTION = (
    "Train and evaluate arms (plain, SGT, random-mask, ...) x seeds x datasets, with learning-rate selection "
    "on the plain arm, a convergence gate, evaluation on the full test split and paired bootstrap intervals; "
    "resumes after interruption. Presets: " + ", ".join(PRESETS) + "."
)


@dataclass
class ExperimentArguments:
    """The options of ``sgt-nlp experiment``: which spec, where its records and heavy files go, which part."""

    preset: str | None = field(
        default=None, metadata={"help": "a built-in protocol", "choices": list(PRESETS)}
    )
    spec: str | None = field(
        default=None,
        metadata={"help": "a JSON or YAML spec file (may start from a preset with 'preset: <name>')"},
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "small records and results (commit it to resume in another session)"}
    )
    work_dir: str | None = field(
        default=None,
        metadata={"help": "models, checkpoints, raw evaluations (default: runs/experiment_<name>)"},
    )
    data_root: str = field(
        default=str(SHARED_DATA), metadata={"help": "where relative dataset paths are read"}
    )
    datasets: str | None = field(
        default=None,
        metadata={
            "help": "comma-separated subset of the spec's datasets to train and evaluate; the others' "
            "records are read, so the table covers every dataset"
        },
    )
    seeds: str | None = field(
        default=None,
        metadata={
            "help": "the seeds to run, e.g. 0,1; the table covers these and the spec's own seeds (read "
            "where recorded)"
        },
    )
    arms: str | None = field(
        default=None,
        metadata={
            "help": "comma-separated arms to train and evaluate (default: all); the others' records are only "
            "read, so processes with different --arms can share --output_dir and --work_dir. The baseline "
            "(plain) decides the learning rate and the gate: a seed waits until its plain run exists"
        },
    )
    wait_seconds: float = field(
        default=0.0,
        metadata={
            "help": "with --arms but not the baseline: look every this many seconds for the baseline's "
            "learning-rate choice and training record that another process is making, instead of leaving "
            "those seeds out (0: do not wait)"
        },
    )
    eval_processes: int | None = field(
        default=None,
        metadata={
            "help": "evaluate a run's calls (main methods, gradient_l2, each extra random draw) side by side "
            "in this many processes, each with its share of the threads (default: the spec's, 1); the "
            "numbers do not change"
        },
    )
    keep_models: bool = field(default=False, metadata={"help": "keep trained models in work_dir"})
    only_finished: bool = field(
        default=False,
        metadata={
            "help": "train and evaluate nothing: aggregate the finished runs and list the missing ones"
        },
    )
    export_model: str | None = field(
        default=None,
        metadata={
            "nargs": 2,
            "metavar": ("MODEL", "FOLDER"),
            "help": "write an fp16 copy of MODEL (a folder or 'minilm') to FOLDER and exit (for the gpu "
            "preset, whose machine has no hub: carry FOLDER)",
        },
    )


def make_parser() -> HfArgumentParser:
    """The parser of ``sgt-nlp experiment``, generated from :class:`ExperimentArguments`."""
    from transformers import HfArgumentParser

    # transformers types the dataclass argument as DataClassType, a NewType of Any that no class matches
    return HfArgumentParser(ExperimentArguments, prog="sgt-nlp experiment", description=DESCRIPTION)  # type: ignore[arg-type]


def base_spec(args: ExperimentArguments) -> ExperimentSpec:
    """The preset or spec file as it is (its own seeds decide what the table covers)."""
    if args.preset:
        return PRESETS[args.preset]
    if args.spec is not None:
        return load_spec(args.spec)
    raise SpecError("give --preset or --spec")


def selected_spec(args: ExperimentArguments, base: ExperimentSpec | None = None) -> ExperimentSpec:
    """The preset or spec file (``base`` when already read), cut to ``--seeds``, validated (a
    :class:`SpecError` names the option or field). ``--datasets`` does not cut it: the runner runs those and
    reads the others' records."""
    spec = base if base is not None else base_spec(args)
    if args.seeds:
        spec = replace(spec, seeds=parse_seeds("--seeds", args.seeds))
    if args.eval_processes is not None:
        spec = replace(spec, eval_processes=args.eval_processes)
    return validate_spec(spec, args.spec or f"preset {args.preset}")


def main(argv: list[str] | None = None) -> None:
    """Runs (or resumes) an experiment and prints its ``results.md``."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = make_parser()
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    check_number("--wait_seconds", args.wait_seconds, low=0.0, allow_none=False)
    check_positive("--eval_processes", args.eval_processes)
    if args.export_model:
        print(export_half_precision_model(*args.export_model))
        return
    if args.preset and args.spec:
        parser.error("argument --spec: not allowed with argument --preset")
    if not args.preset and not args.spec:
        parser.error("give --preset or --spec")
    if not args.output_dir:
        parser.error("give --output_dir")
    try:
        base = base_spec(args)
        spec = selected_spec(args, base)
        experiment = Experiment(
            spec,
            args.output_dir,
            args.work_dir or f"runs/experiment_{spec.name}",
            data_root=args.data_root,
            keep_models=args.keep_models,
            only_finished=args.only_finished,
            arms=tuple(args.arms.split(",")) if args.arms else None,
            wait_seconds=args.wait_seconds,
            datasets=tuple(args.datasets.split(",")) if args.datasets else None,
            # the spec's own seeds (and --seeds), not those of a wider spec sharing the records
            table_seeds=base.seeds,
        )
    except SpecError as exc:
        parser.error(str(exc))
    experiment.run()
    print(experiment.results_path.read_text())
