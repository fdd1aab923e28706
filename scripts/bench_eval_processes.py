"""Wall time of one run's evaluation (every call an experiment preset makes: the main methods,
``gradient_l2``, the extra random draws) with its calls in turn in one process against side by side in
``--eval_processes`` spawned workers (there each main method is a call of its own, the costliest started
first), on the same model, data and threads, measured in one run.

    python scripts/bench_eval_processes.py [--preset cpu] [--dataset sst2] [--test_examples 32]
                                           [--processes 1,2] [--repeats 2]

A short plain run (``--train_examples`` sentences, one epoch) makes the model: timing does not depend on how
well it is trained. Each measurement evaluates into a fresh folder (no checkpoint to resume); the order of the
process counts alternates between repeats so that a slow moment of a shared machine does not always fall on
the same one. The table gives the number of calls, the median wall time, the calls' summed seconds (what
``eval.json.gz`` records as ``seconds``) and the ratio to the first process count; it also checks that every
process count wrote the same orderings (the side-by-side calls must not change a number).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="cpu", help="an experiment preset (methods, draws, model)")
    parser.add_argument("--dataset", default="sst2", help="one of the preset's datasets")
    parser.add_argument("--test_examples", type=int, default=32)
    parser.add_argument("--train_examples", type=int, default=64)
    parser.add_argument("--processes", default="1,2", help="process counts to compare, comma-separated")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data_root", default=None, help="the data folders (../shared/data)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from sgt_nlp.experiments import PRESETS
    from sgt_nlp.experiments.data import SHARED_DATA

    spec = PRESETS[args.preset]
    dataset = next((d for d in spec.datasets if d.name == args.dataset), None)
    if dataset is None:
        parser.error(f"--dataset: preset {args.preset} has {[d.name for d in spec.datasets]}")
    dataset = replace(
        dataset,
        train_examples=args.train_examples,
        val_examples=min(args.train_examples, 32),
        test_examples=args.test_examples,
        epochs=1,
    )
    spec = replace(spec, datasets=(dataset,), seeds=(0,))
    data_root = Path(args.data_root) if args.data_root else SHARED_DATA
    with tempfile.TemporaryDirectory(prefix="bench_eval_processes_") as tmp:
        measure(args, spec, dataset, data_root, Path(tmp))


def measure(args: argparse.Namespace, spec: Any, dataset: Any, data_root: Path, work: Path) -> None:
    """Trains the model into ``work``, evaluates it under every process count, prints the table."""
    import torch

    from sgt_nlp.experiments.data import prepare_data
    from sgt_nlp.experiments.stages import evaluate_run, train_run

    counts = [int(p) for p in args.processes.split(",")]
    data_dir = prepare_data(dataset, data_root, work)
    lr = dataset.learning_rates[-1]
    print(f"training the model ({args.train_examples} examples, 1 epoch) in {work}", file=sys.stderr)
    train_run(spec, dataset, data_dir, "plain", 0, lr, work / "model", work)

    walls: dict[int, list[float]] = {p: [] for p in counts}
    summed: dict[int, list[float]] = {p: [] for p in counts}
    orderings: dict[int, dict[str, Any]] = {}
    for repeat in range(args.repeats):
        for processes in counts if repeat % 2 == 0 else counts[::-1]:
            out = work / f"eval_p{processes}_r{repeat}"
            started = time.perf_counter()
            raw = evaluate_run(
                replace(spec, eval_processes=processes), dataset, data_dir, work / "model", out, "x"
            )
            walls[processes].append(time.perf_counter() - started)
            summed[processes].append(raw["seconds"])
            orderings.setdefault(processes, raw["orderings"])
            print(
                f"  {processes} process(es), repeat {repeat}: {walls[processes][-1]:.1f} s", file=sys.stderr
            )

    calls = {p: len(list((work / f"eval_p{p}_r0").glob("*/run.json"))) for p in counts}
    same = all(orderings[p] == orderings[counts[0]] for p in counts)
    print(
        f"\n{args.preset}/{args.dataset}: {args.test_examples} test examples, "
        f"methods {', '.join(spec.methods)}, "
        f"{spec.random_draws} random draws, removals {', '.join(spec.removals)}; "
        f"{torch.get_num_threads()} torch threads shared by the processes; median of {args.repeats}\n"
    )
    print("| processes | calls | wall s | calls' summed s | wall ratio |")
    print("|---|---|---|---|---|")
    base = statistics.median(walls[counts[0]])
    for p in counts:
        wall = statistics.median(walls[p])
        print(f"| {p} | {calls[p]} | {wall:.1f} | {statistics.median(summed[p]):.1f} | {wall / base:.2f} |")
    print(f"\nsame orderings for every process count: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
