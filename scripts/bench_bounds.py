"""Cost of NAOPC's all-order bounds (``evaluate --naopc_bounds beam|exact``) beside the explainers' cost.

    python scripts/bench_bounds.py [--data_dir ../shared/data/eraser_movies] [--split val]
                                   [--lengths 32,256] [--examples 8,2] [--widths 1,2]
                                   [--methods gradient,integrated_gradients,random] [--model minilm]

Per input length (``--max_length`` word pieces: 32 is about an SST-2 sentence, 256 the movies setting) the
same examples are evaluated once with ``--naopc_bounds evaluated`` (the explainers and ERASER's perturbed
inputs only) and once per beam width with ``--naopc_bounds beam`` (and ``exact`` where the input is short
enough, else it falls back to the beam). Printed per row: words seen per example, model passes and seconds
per example of the evaluation without bounds, and of the bound search alone (``run.json``'s
``naopc_bounds.cost``). The model is a classifier head on the pretrained MiniLM (``--model minilm``, the
weights package) or any local folder; the head's training does not change the search's size much (the beam's
passes depend on the words and the width), so an untrained head measures the cost.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def classifier(model: str, data_dir: Path, split: str, folder: Path) -> str:
    """A classifier folder with the split's labels: the given folder, or a head on the MiniLM weights."""
    if model != "minilm":
        return model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from sgt_nlp.eraser import load_split
    from sgt_nlp.loading import resolve_model_path

    labels = list(load_split(data_dir, split).labels)
    source = resolve_model_path("minilm")
    torch.manual_seed(0)
    net = AutoModelForSequenceClassification.from_pretrained(
        source,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    net.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return str(folder)


def run(config) -> dict:
    from sgt_nlp.evaluation import evaluate_folder

    started = time.perf_counter()
    evaluate_folder(config)
    info = json.loads((Path(config.output_dir) / "run.json").read_text())
    info["wall"] = time.perf_counter() - started
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "eraser_movies"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--lengths", default="32,256")
    parser.add_argument("--examples", default="8,2", help="examples per length")
    parser.add_argument("--widths", default="1,2")
    parser.add_argument("--methods", default="gradient,integrated_gradients,random")
    parser.add_argument("--model", default="minilm")
    args = parser.parse_args()
    from sgt_nlp.evaluation import EvaluationConfig

    torch.set_num_threads(1)
    data_dir = Path(args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        model = classifier(args.model, data_dir, args.split, Path(tmp) / "model")
        print(f"model {args.model}, data {data_dir.name}/{args.split}, methods {args.methods}, 1 thread")
        print(
            "| max_length | search | width | examples | words seen (first 6) | passes/ex | s/ex | searches |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for length, examples in zip(
            (int(v) for v in args.lengths.split(",")), (int(v) for v in args.examples.split(",")), strict=True
        ):
            common = dict(
                model=model,
                data_dir=str(data_dir),
                split=args.split,
                methods=tuple(args.methods.split(",")),
                max_length=length,
                max_examples=examples,
                masked_accuracy_curve=False,
                batch_size=32,
                ig_steps=20,
            )
            base = run(EvaluationConfig(output_dir=f"{tmp}/base{length}", **common))
            per_example = [
                len(json.loads(line)["words"]) for line in open(f"{tmp}/base{length}/examples.jsonl")
            ]
            words = f"{np.mean(per_example):.1f}"
            print(
                f"| {length} | evaluated (explainers + ERASER inputs) | - | {examples} | {words} | "
                f"{base['forward_passes'] / examples:.0f} | {base['seconds'] / examples:.2f} | - |"
            )
            searches = [("beam", int(w)) for w in args.widths.split(",")]
            if length <= 64:  # longer inputs would fall back to the beam
                searches.append(("exact", 1))
            for search, width in searches:
                out = f"{tmp}/{search}{width}_{length}"
                info = run(
                    EvaluationConfig(output_dir=out, naopc_bounds=search, bounds_beam_width=width, **common)
                )
                cost = info["naopc_bounds"]["cost"]
                used = ", ".join(
                    f"{k.removesuffix('_examples')} {v}" for k, v in cost.items() if k.endswith("_examples")
                )
                print(
                    f"| {length} | {search} | {width if search == 'beam' else '-'} | {examples} | {words} | "
                    f"{cost['model_passes_per_example']:.0f} | {cost['seconds_per_example']:.2f} | {used} |"
                )


if __name__ == "__main__":
    main()
