"""Why ``--bf16`` runs attention in float32 on a CPU: one model pass three ways, side by side.

    python scripts/bench_bf16_attention.py [--shapes 32x64,16x256] [--repeats 5] [--threads N]

A MiniLM-shaped BERT (6 layers, hidden 384, 12 heads of 32; random init, eval mode, half the rows padded to
half length), on random ids, timed as

- ``fp32``: no autocast (torch's sdpa picks its CPU flash kernel);
- ``bf16 stock``: ``torch.autocast("cpu", dtype=torch.bfloat16)`` alone, so sdpa runs in bf16, as the
  stock Trainer's ``bf16=True`` does;
- ``bf16 sgt_nlp``: :func:`sgt_nlp.precision.autocast`, the context every ``--bf16`` model pass of sgt_nlp
  runs in: linear layers in bf16, sdpa attention in float32;

for a forward pass and for a forward plus the gradient with respect to the input embeddings (the pass of the
gradient explainers and of SGT's saliency). The three are alternated per repeat (median; speed-up = fp32 /
each) so that other work on the machine slows them alike. The gradient's relative error against fp32 is
printed beside each bf16 row.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sgt_nlp.precision import autocast  # noqa: E402


def build_model() -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        num_labels=2,
    )
    return BertForSequenceClassification(config).eval()


def one_pass(model, mode: str, embeddings, mask, gradient: bool) -> torch.Tensor:
    """Logits of one pass in ``mode``, or their gradient with respect to the embeddings."""
    context = {
        "fp32": contextlib.nullcontext,
        "bf16 stock": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
        "bf16 sgt_nlp": lambda: autocast(model, True),
    }[mode]
    leaf = embeddings.detach().requires_grad_(gradient)
    with torch.set_grad_enabled(gradient), context():
        logits = model(inputs_embeds=leaf, attention_mask=mask).logits.float()
    if not gradient:
        return logits.detach()
    (grad,) = torch.autograd.grad(logits[:, 0].sum(), leaf)
    return grad.float()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default="32x64,16x256", help="batch x length, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model()
    modes = ("fp32", "bf16 stock", "bf16 sgt_nlp")
    print(
        f"MiniLM-shaped BERT (6 x 384, 12 heads), eval mode; median of {args.repeats}, modes alternated; "
        f"torch threads={torch.get_num_threads()}"
    )
    print("| shape | pass | fp32 s | bf16 stock s | x | bf16 sgt_nlp s | x | rel. error stock / sgt_nlp |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        batch, length = (int(n) for n in shape.split("x"))
        ids = torch.randint(1000, 30000, (batch, length))
        mask = torch.ones(batch, length, dtype=torch.long)
        mask[: batch // 2, length // 2 :] = 0
        embeddings = model.bert.embeddings.word_embeddings(ids).detach()
        for gradient in (False, True):
            times: dict[str, list[float]] = {m: [] for m in modes}
            outputs: dict[str, torch.Tensor] = {}
            for repeat in range(args.repeats + 1):  # the first round warms up
                for mode in modes if repeat % 2 == 0 else modes[::-1]:
                    start = time.perf_counter()
                    outputs[mode] = one_pass(model, mode, embeddings, mask, gradient)
                    if repeat:
                        times[mode].append(time.perf_counter() - start)
            median = {m: statistics.median(t) for m, t in times.items()}
            reference = outputs["fp32"]
            error = [float((outputs[m] - reference).norm() / reference.norm()) for m in modes[1:]]
            print(
                f"| {batch} x {length} | {'forward + input gradient' if gradient else 'forward'} | "
                f"{median['fp32']:.3f} | {median['bf16 stock']:.3f} | "
                f"{median['fp32'] / median['bf16 stock']:.2f} | {median['bf16 sgt_nlp']:.3f} | "
                f"{median['fp32'] / median['bf16 sgt_nlp']:.2f} | {error[0]:.4f} / {error[1]:.4f} |"
            )


if __name__ == "__main__":
    main()
