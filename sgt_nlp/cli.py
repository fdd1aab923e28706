"""``sgt-nlp``: one command, one subcommand per job. Argument parsing only; the work lives in the modules."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

Command = Callable[[list[str]], int | None]


def _train(argv: list[str]) -> None:
    from .training import main

    main(argv)


def _evaluate(argv: list[str]) -> None:
    from .evaluation import main

    main(argv)


def _command_table() -> dict[str, tuple[str, Command]]:
    return {
        "train": ("fine-tune a classifier with Saliency Guided Training (HF Trainer options + sgt_*)", _train),
        "evaluate": ("explain a model's predictions on an ERASER split and score them (faithfulness, agreement)", _evaluate),
    }


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _command_table()
    usage = "\n".join(f"  {name:<10} {text}" for name, (text, _) in commands.items())
    parser = argparse.ArgumentParser(
        prog="sgt-nlp",
        description="Saliency Guided Training for Hugging Face text classifiers, and rationale evaluation.",
        epilog=f"subcommands:\n{usage}\n\n'sgt-nlp <subcommand> --help' lists each one's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(commands), metavar="subcommand", help="one of: " + ", ".join(commands))
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    args = parser.parse_args(argv[:1])
    commands[args.command][1](argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
