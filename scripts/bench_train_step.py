"""Time and peak memory of one training step: plain Trainer vs SaliencyGuidedTrainer (saliency selection with
either saliency pass, ranked by the gradient or by conservative propagation, and the random-selection
control), side by side; with ``--bf16``, fp32 against bf16.

    python scripts/bench_train_step.py [--steps 5] [--sizes tiny,minilm] [--device cpu|cuda] [--variants ...]
    python scripts/bench_train_step.py --bf16 [--bf16_variants plain,sgt_reuse,sgt_eval] [--sizes minilm]

Each variant runs in its own subprocess so that its peak memory is its own: on CUDA the allocator's peak
(``torch.cuda.max_memory_allocated``), on CPU the growth of the process's peak resident set over its
resident set before the first step (model and batch built; gradients, optimiser state and activations not
yet). A step is ``Trainer.training_step`` (forward, SGT work, backward) plus the optimiser step, timed after
warm-up; the table gives the median. Ratios are against the plain Trainer measured in the same run.

``--bf16`` measures each variant's step in fp32 and in bf16 (``TrainingArguments(bf16=True)``: accelerate's
autocast around the model's forward, as ``sgt-nlp train --bf16`` runs it) in ONE process, alternating fp32 and
bf16 steps on two copies of the same model, so that other work on the machine slows both alike; the speed-up
is the median of the per-pair ratios. No memory column there (the two copies share one process).
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
    # the same model on SST-2-like short inputs (as many tokens per batch as minilm's 8 x 256)
    "minilm_short": (6, 384, 12, 1536, 32, 64),
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


def build_step(size: str, variant: str, steps: int, device: str, bf16: bool = False):
    """The step function of one variant (a trainer on a fresh seeded model) and whether it runs on CUDA."""
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
        output_dir="/tmp/bench_train_step",
        report_to=[],
        use_cpu=device == "cpu",
        disable_tqdm=True,
        bf16=bf16,
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
    if bf16:  # what Trainer.train() does: accelerate wraps the forward in its autocast (the stock bf16 path)
        model = trainer.accelerator.prepare_model(model)
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

    return step, trainer.args.device.type == "cuda"


def run_interleaved(size: str, variants: list[str], steps: int, device: str) -> dict[str, float]:
    """Median step seconds of several variants built in one process and stepped in turn (A, B, A, B, ...):
    a machine whose load drifts slows every variant alike, which separate processes run one after the
    other cannot promise. No memory figure (the variants share the process). ``--interleave``."""
    import torch

    built = {variant: build_step(size, variant, steps * len(variants), device) for variant in variants}
    for step, _ in built.values():
        step()  # warm-up
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    for _ in range(steps):
        for variant, (step, cuda) in built.items():
            start = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize()
            times[variant].append(time.perf_counter() - start)
    return {variant: statistics.median(t) for variant, t in times.items()}


def run_variant(size: str, variant: str, steps: int, device: str) -> dict[str, float]:
    import torch

    step, cuda = build_step(size, variant, steps, device)
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


def run_pair(size: str, variant: str, steps: int, device: str) -> dict[str, float]:
    """fp32 and bf16 steps of one variant alternated in this process (two copies of the same seeded model)."""
    import torch

    fp32, cuda = build_step(size, variant, steps, device)
    bf16, _ = build_step(size, variant, steps, device, bf16=True)
    fp32(), bf16()  # warm-up
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for i in range(steps):
        # alternate which goes first, so that neither always follows the other
        for name, step in (
            (("fp32", fp32), ("bf16", bf16)) if i % 2 == 0 else (("bf16", bf16), ("fp32", fp32))
        ):
            start = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(times["fp32"], times["bf16"], strict=True)]
    return {
        "fp32_s": statistics.median(times["fp32"]),
        "bf16_s": statistics.median(times["bf16"]),
        "speedup": statistics.median(ratios),
        "speedup_min": min(ratios),
        "speedup_max": max(ratios),
    }


#: op groups of the ``--profile`` table: which parts of a step bf16 speeds up (first match wins)
OP_GROUPS = (
    ("embedding backward", ("embedding_dense_backward", "embedding_backward")),
    ("attention (sdpa/softmax)", ("scaled_dot_product", "softmax", "_flash_attention")),
    ("matmul (linear/bmm)", ("addmm", "aten::mm", "bmm", "matmul", "linear", "mkldnn")),
    ("layer_norm", ("layer_norm",)),
    ("gelu/tanh", ("gelu", "tanh")),
    ("optimizer", ("_foreach", "adam", "lerp", "addcdiv", "addcmul", "sqrt")),
    ("dtype casts", ("aten::to", "_to_copy", "copy_")),
)


def profile_pair(size: str, variant: str, device: str) -> dict[str, dict[str, float]]:
    """Self CPU seconds of two fp32 and two bf16 steps, summed per :data:`OP_GROUPS` group."""
    from torch.profiler import ProfilerActivity, profile

    out: dict[str, dict[str, float]] = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        step, _ = build_step(size, variant, 2, device, bf16=bf16)
        step()  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
            step()
        groups: dict[str, float] = {}
        for event in prof.key_averages():
            key = event.key.lower()
            group = next((g for g, names in OP_GROUPS if any(n.lower() in key for n in names)), "other")
            groups[group] = groups.get(group, 0.0) + event.self_cpu_time_total / 1e6
            if group == "other":  # the largest of them are listed under the table
                groups[f"other: {event.key}"] = event.self_cpu_time_total / 1e6
        out[name] = groups
    return out


def profile_table(args: argparse.Namespace) -> None:
    for size in args.sizes.split(","):
        for variant in args.bf16_variants.split(","):
            cmd = [sys.executable, __file__, "--device", args.device, "--_profile", size, variant]
            cmd += ["--threads", str(args.threads)] if args.threads else []
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
            r = json.loads(out.splitlines()[-1])
            print(f"{size}/{variant}: self CPU seconds of two steps per op group (torch.profiler)")
            print(f"| {'op group':<26} | {'fp32 s':>7} | {'bf16 s':>7} | {'speed-up':>8} |")
            print(f"|{'-' * 28}|{'-' * 9}|{'-' * 9}|{'-' * 10}|")
            names = [g for g, _ in OP_GROUPS] + ["other"]
            for g in names:
                a, b = r["fp32"].get(g, 0.0), r["bf16"].get(g, 0.0)
                ratio = f"{a / b:8.2f}" if b > 0 else "       -"
                print(f"| {g:<26} | {a:7.3f} | {b:7.3f} | {ratio} |")
            total = {p: sum(v for k, v in r[p].items() if not k.startswith("other: ")) for p in r}
            a, b = total["fp32"], total["bf16"]
            print(f"| {'total':<26} | {a:7.3f} | {b:7.3f} | {a / b:8.2f} |")
            others = sorted((k for k in r["fp32"] if k.startswith("other: ")), key=lambda k: -r["fp32"][k])
            print(
                "largest 'other' ops (fp32 s / bf16 s): "
                + ", ".join(f"{k[7:]} {r['fp32'][k]:.3f}/{r['bf16'].get(k, 0.0):.3f}" for k in others[:6])
            )


def bf16_table(args: argparse.Namespace) -> None:
    rows = []
    for size in args.sizes.split(","):
        for variant in args.bf16_variants.split(","):
            cmd = [sys.executable, __file__, "--steps", str(args.steps), "--device", args.device]
            cmd += ["--_pair", size, variant] + (["--threads", str(args.threads)] if args.threads else [])
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
            result = json.loads(out.splitlines()[-1])
            print(f"  measured {size}/{variant}: {result}", file=sys.stderr)
            rows.append((size, variant, result))
    layers = {s: SIZES[s] for s in args.sizes.split(",")}
    print(
        f"device={args.device}; steps={args.steps} per precision, fp32 and bf16 alternated in one process "
        f"(median); torch threads={args.threads or 'default'} of {os.cpu_count()} cores; "
        f"shapes (layers, hidden, heads, ffn, batch, seq): {layers}"
    )
    print(f"| {'size':<6} | {'variant':<10} | {'fp32 s':>7} | {'bf16 s':>7} | {'speed-up (min-max)':>18} |")
    print(f"|{'-' * 8}|{'-' * 12}|{'-' * 9}|{'-' * 9}|{'-' * 20}|")
    for size, variant, r in rows:
        spread = f"{r['speedup']:.2f} ({r['speedup_min']:.2f}-{r['speedup_max']:.2f})"
        print(f"| {size:<6} | {variant:<10} | {r['fp32_s']:7.3f} | {r['bf16_s']:7.3f} | {spread:>18} |")


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
    parser.add_argument("--bf16", action="store_true", help="fp32 against bf16 steps, interleaved")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--bf16_variants", default="plain,sgt_reuse,sgt_eval")
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_pair", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help="with --bf16: op-group times of one step each")
    parser.add_argument("--_profile", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args._child:
        print(json.dumps(run_variant(args._child[0], args._child[1], args.steps, args.device)))
        return
    if args._pair:
        print(json.dumps(run_pair(args._pair[0], args._pair[1], args.steps, args.device)))
        return
    if args._profile:
        print(json.dumps(profile_pair(args._profile[0], args._profile[1], args.device)))
        return
    if args.bf16 and args.profile:
        profile_table(args)
        return
    if args.bf16:
        bf16_table(args)
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
