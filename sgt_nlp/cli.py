"""``sgt-nlp``: one command, one subcommand per job. Argument parsing only; the work lives in the modules."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

Command = Callable[[list[str]], int | None]


def _train(argv: list[str]) -> None:
    from .finetune import main

    main(argv)


def _evaluate(argv: list[str]) -> None:
    from .evaluation import main

    main(argv)


def _demo(argv: list[str]) -> None:
    from .demo import main

    main(argv)


def _experiment(argv: list[str]) -> None:
    from .experiments.cli import main

    main(argv)


def _explain(argv: list[str]) -> None:
    from .explain import main

    main(argv)


def _report(argv: list[str]) -> None:
    from .report import build_report

    parser = argparse.ArgumentParser(
        prog="sgt-nlp report",
        description="Turn one or more 'sgt-nlp evaluate' output folders into one standalone HTML page "
        "(metrics table, AOPC and masked-accuracy curves, per-word heatmaps beside the human rationale) plus "
        "PNG plots.",
    )
    parser.add_argument(
        "folders",
        nargs="+",
        help="output folders of sgt-nlp evaluate (one per model); "
        "folders of sgt-nlp sanity (with sanity.json) are added as a sanity-check section",
    )
    parser.add_argument("--output", default="report.html", help="the HTML file to write (PNGs go beside it)")
    parser.add_argument("--max_examples", type=int, default=6, help="examples shown as heatmaps")
    args = parser.parse_args(argv)
    from .validation import check_number

    check_number("--max_examples", args.max_examples, low=0)
    sanity = [
        f
        for f in args.folders
        if (Path(f) / "sanity.json").is_file() and not (Path(f) / "summary.json").is_file()
    ]
    evaluations = [f for f in args.folders if f not in sanity]
    if not evaluations:
        parser.error("give at least one sgt-nlp evaluate output folder")
    from .sanity.io import load_sanity

    results: dict[str, object] = {}
    for folder in sanity:  # titled by folder name; the whole path where two names are equal
        results[Path(folder).name if Path(folder).name not in results else str(folder)] = load_sanity(folder)
    print(build_report(evaluations, args.output, max_examples=args.max_examples, sanity=results))


def _rescore(argv: list[str]) -> None:
    from .evaluation import rescore_main

    rescore_main(argv)


def _sanity(argv: list[str]) -> None:
    from .sanity.cli import main

    main(argv)


def _command_table() -> dict[str, tuple[str, Command]]:
    return {
        "demo": (
            "plain vs saliency-guided training on a synthetic task, evaluated, with an HTML report",
            _demo,
        ),
        "experiment": (
            "arms x seeds x datasets: train, gate, evaluate, paired bootstrap intervals (resumable)",
            _experiment,
        ),
        "train": (
            "fine-tune a classifier with Saliency Guided Training (HF Trainer options + sgt_*)",
            _train,
        ),
        "evaluate": (
            "explain a model's predictions on an ERASER split and score them (faithfulness, agreement)",
            _evaluate,
        ),
        "explain": ("per-word saliency heatmap of a prediction, in the terminal and as HTML", _explain),
        "report": ("one HTML report (tables, curves, heatmaps) from evaluation folders", _report),
        "rescore": ("score evaluation folders again from their results files (after a scorer fix)", _rescore),
        "sanity": ("class-sensitivity and model-randomisation checks of the explainers", _sanity),
    }


def main(argv: list[str] | None = None) -> int:
    """Runs a subcommand. Errors print one line on stderr (no traceback unless ``--debug``) and give exit
    status 2 for a bad option or output folder (:class:`~sgt_nlp.validation.UsageError`, as argparse) and 1
    otherwise."""
    from .validation import run_reporting_errors

    argv = list(sys.argv[1:] if argv is None else argv)
    name = f"sgt-nlp {argv[0]}" if argv and not argv[0].startswith("-") else "sgt-nlp"
    return run_reporting_errors(name, _dispatch, argv)


def _dispatch(argv: list[str]) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    commands = _command_table()
    usage = "\n".join(f"  {name:<10} {text}" for name, (text, _) in commands.items())
    parser = argparse.ArgumentParser(
        prog="sgt-nlp",
        description="Saliency Guided Training for Hugging Face text classifiers, and rationale evaluation.",
        epilog=f"subcommands:\n{usage}\n\n'sgt-nlp <subcommand> --help' lists each one's options. Errors are "
        "one line on stderr (exit status 2: a bad option, 1: anything else); add --debug for the traceback.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command", choices=list(commands), metavar="subcommand", help="one of: " + ", ".join(commands)
    )
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    args = parser.parse_args(argv[:1])
    commands[args.command][1](argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
