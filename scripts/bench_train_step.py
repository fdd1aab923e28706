"""Time and peak memory of one training step: plain Trainer vs SaliencyGuidedTrainer (saliency selection with
either saliency pass, ranked by the gradient or by conservative propagation, and the random-selection
control), side by side.

    python scripts/bench_train_step.py [--steps 5] [--sizes tiny,minilm] [--device cpu|cuda] [--variants ...]

Each variant runs in its own subprocess so that its peak memory is its own: on CUDA the allocator's peak
(``torch.cuda.max_memory_allocated``), on CPU the growth of the process's peak resident set over its
resident set before the first step (model and batch built; gradients, optimiser state and activations not
yet). A step is ``Trainer.training_step`` (forward, SGT work, backward) plus the optimiser step, timed after
warm-up; the table gives the median. Ratios are against the plain Trainer measured in the same run.
``--interleave`` builds the variants in one process and steps them in turn (time only), for a machine whose
load drifts between the separate processes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SIZES = {
    # name: (layers, hidden, heads, intermediate, batch, seq_len)
    "tiny": (2, 128, 2, 512, 8, 128),
    "minilm": (6, 384, 12, 1536, 8, 256),
}
# sgt_reuse / sgt_eval: saliency selection with either saliency pass; sgt_random: sgt_mask_selection="random",
# the masked-consistency control (no saliency pass at all: clean and masked forwards only).
# sgt_cons_reuse / sgt_cons_eval: the same with sgt_saliency_method="conservative".
VARIANTS = ("plain", "sgt_reuse", "sgt_eval", "sgt_random", "sgt_cons_reuse", "sgt_cons_eval")
SGT_VARIANT_ARGS = {
    "sgt_reuse": {"sgt_saliency_pass": "reuse"},
    "sgt_eval": {"sgt_saliency_pass": "eval"},
    "sgt_random": {"sgt_mask_selection": "random"},
    "sgt_cons_reuse": {"sgt_saliency_pass": "reuse", "sgt_saliency_method": "conservative"},
    "sgt_cons_eval": {"sgt_saliency_pass": "eval", "sgt_saliency_method": "conservative"},
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_variant(size: str, variant: str, steps: int, device: str) -> dict[str, float]:
    step, cuda, _ = build_step(size, variant, device, steps)
    import torch

    # The memory baseline is taken before the first step: weights and batch are in, gradients, optimiser
    # state and activations are not, so the peak covers everything a step adds.
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    step()  # warm-up: allocator, kernels, optimiser state
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"median_s": statistics.median(times), "peak_mb": peak / 2**20}


def run_interleaved(size: str, variants: list[str], steps: int, device: str) -> dict[str, float]:
    """Median step seconds of several variants built in one process and stepped in turn (A, B, A, B, ...):
    a machine whose load drifts slows every variant alike, which separate processes run one after the
    other cannot promise. No memory figure (the variants share the process)."""
    import torch

    built = {variant: build_step(size, variant, device, steps * len(variants)) for variant in variants}
    for step, _, _ in built.values():
        step()  # warm-up
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    for _ in range(steps):
        for variant, (step, cuda, _) in built.items():
            start = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize()
            times[variant].append(time.perf_counter() - start)
    return {variant: statistics.median(t) for variant, t in times.items()}


def build_step(size: str, variant: str, device: str, steps: int):
    """A training step of ``variant`` on a fresh seeded model: ``(step, cuda, device)``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from sgt_nlp import SaliencyGuidedTrainer, SaliencyGuidedTrainingArguments

    layers, hidden, heads, inter, batch, seq = SIZES[size]
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inter,
        max_position_embeddings=512,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)
    common = dict(
        output_dir="/tmp/bench_train_step", report_to=[], use_cpu=device == "cpu", disable_tqdm=True
    )
    if variant == "plain":
        trainer = Trainer(model=model, args=TrainingArguments(**common))
    else:
        args = SaliencyGuidedTrainingArguments(**common, **SGT_VARIANT_ARGS[variant])
        trainer = SaliencyGuidedTrainer(model=model, args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=steps + 2)
    trainer.current_gradient_accumulation_steps = (
        1  # set by train(); the loop below calls training_step directly
    )
    model = trainer.model.to(trainer.args.device)
    ids = torch.randint(1000, 30000, (batch, seq))
    ids[:, 0], ids[:, -1] = 101, 102
    lengths = torch.linspace(seq // 2, seq, batch).long()
    attention = (torch.arange(seq).unsqueeze(0) < lengths.unsqueeze(1)).long()
    ids = ids * attention
    inputs = {
        "input_ids": ids.to(trainer.args.device),
        "attention_mask": attention.to(trainer.args.device),
        "labels": torch.randint(0, 2, (batch,)).to(trainer.args.device),
    }

    def step() -> None:
        trainer.training_step(model, dict(inputs))
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)

    return step, trainer.args.device.type == "cuda", trainer.args.device


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--sizes", default="tiny,minilm")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated subset (plain is always measured)"
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="time the variants in one process, stepping them in turn (robust to a drifting load; no memory)",
    )
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        print(json.dumps(run_variant(args._child[0], args._child[1], args.steps, args.device)))
        return

    variants = ["plain", *(v for v in args.variants.split(",") if v and v != "plain")]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; allowed: {', '.join(VARIANTS)}")
    if args.interleave:
        print(f"device={args.device}; steps={args.steps} (median), variants stepped in turn in one process")
        print(f"| {'size':<6} | {'variant':<14} | {'step s':>7} | {'x plain':>7} |")
        print(f"|{'-' * 8}|{'-' * 16}|{'-' * 9}|{'-' * 9}|")
        for size in args.sizes.split(","):
            medians = run_interleaved(size, variants, args.steps, args.device)
            for variant, sec in medians.items():
                print(f"| {size:<6} | {variant:<14} | {sec:7.3f} | {sec / medians['plain']:7.2f} |")
        return
    rows = []
    for size in args.sizes.split(","):
        results = {}
        for variant in variants:
            cmd = [
                sys.executable,
                __file__,
                "--steps",
                str(args.steps),
                "--device",
                args.device,
                "--_child",
                size,
                variant,
            ]
            out = (
                subprocess.run(cmd, capture_output=True, text=True, check=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            results[variant] = json.loads(out)
            print(f"  measured {size}/{variant}: {results[variant]}", file=sys.stderr)
        plain = results["plain"]
        for variant in variants:
            r = results[variant]
            rows.append(
                (
                    size,
                    variant,
                    r["median_s"],
                    r["median_s"] / plain["median_s"],
                    r["peak_mb"],
                    r["peak_mb"] / max(plain["peak_mb"], 1e-9),
                )
            )

    layers = {s: SIZES[s] for s in args.sizes.split(",")}
    print(
        f"device={args.device}; steps={args.steps} (median); "
        f"shapes (layers, hidden, heads, ffn, batch, seq): {layers}"
    )
    print(
        f"| {'size':<6} | {'variant':<14} | {'step s':>7} | {'x plain':>7} | "
        f"{'peak MB':>8} | {'x plain':>7} |"
    )
    print(f"|{'-' * 8}|{'-' * 16}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 9}|")
    for size, variant, sec, ratio, mb, mem_ratio in rows:
        print(f"| {size:<6} | {variant:<14} | {sec:7.3f} | {ratio:7.2f} | {mb:8.1f} | {mem_ratio:7.2f} |")


if __name__ == "__main__":
    main()
