"""``sgt-nlp explain``: per-word saliency of a model's prediction for a text, in the terminal and as HTML."""

from __future__ import annotations

import argparse
import html
import os
import sys
from pathlib import Path

import torch

from .eraser.align import TRUNCATIONS, WORD_AGGREGATIONS, align_words
from .explainers import EXPLAINERS, get_explainer


def explain_texts(
    model_path: str,
    texts: list[str],
    method: str = "gradient",
    aggregation: str = "grad_x_input",
    word_aggregation: str = "first",
    max_length: int = 512,
    device: str = "cpu",
    truncation: str = "head",
) -> list[dict]:
    """Per text: the words the model saw (``truncation`` picks them when the text exceeds ``max_length``), the
    predicted label and its probability, and one score per seen word for the prediction."""
    from .loading import load_classifier

    model, tokenizer, _ = load_classifier(model_path, torch.device(device))
    kwargs = {"aggregation": aggregation} if method in ("gradient", "smoothgrad") else {}
    explainer = get_explainer(method, model, tokenizer=tokenizer, **kwargs)
    words = [text.split() for text in texts]
    empty = [i for i, w in enumerate(words) if not w]
    if empty:
        raise ValueError(f"text {empty[0] + 1} is empty")
    alignment = align_words(tokenizer, words, max_length=max_length, truncation=truncation)
    encoding = {k: v.to(device) for k, v in alignment.encoding.items()}
    attribution = explainer.attribute(encoding)
    scores = alignment.aggregate_to_lists(attribution.scores, word_aggregation)
    probs = torch.softmax(attribution.logits.float(), dim=-1)
    labels = model.config.id2label
    return [
        {
            "text": texts[i],
            "words": [words[i][j] for j in alignment.kept_words[i]],
            "scores": [float(scores[i][j]) for j in alignment.kept_words[i]],
            "prediction": labels.get(int(attribution.target[i]), str(int(attribution.target[i]))),
            "probability": float(probs[i, attribution.target[i]]),
            "truncated_words": len(words[i]) - alignment.words_kept[i],
        }
        for i in range(len(texts))
    ]


def write_html(results: list[dict], path: Path, method: str) -> Path:
    from .report import HEATMAP_CSS, render_heatmap_legend, render_html_heatmap

    blocks = []
    for r in results:
        title = f"prediction: {r['prediction']} (p = {r['probability']:.3f})"
        if r["truncated_words"]:
            title += f"; {r['truncated_words']} words cut by max_length not shown"
        blocks.append(f"<section>{render_html_heatmap(r['words'], r['scores'], title=title)}</section>")
    signed = any(s < 0 for r in results for s in r["scores"])
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>sgt-nlp explain</title>"
        f"<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto}}{HEATMAP_CSS}</style>"
        f"</head><body><h1>Word saliency ({html.escape(method)})</h1><p>{render_heatmap_legend(signed)}</p>"
        + "".join(blocks)
        + "</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(
        prog="sgt-nlp explain",
        description="Explain a classifier's prediction for one text or a file of texts (one per line): a per-word "
        "heatmap in the terminal and an HTML page.",
    )
    parser.add_argument("--model", required=True, help="model folder (or 'minilm')")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the text to explain")
    source.add_argument("--file", help="a UTF-8 file with one text per line")
    parser.add_argument("--method", default="gradient", choices=list(EXPLAINERS))
    parser.add_argument("--aggregation", default="grad_x_input",
                        choices=("l2", "l1", "signed_mean", "grad_x_input", "abs_grad_x_input"),
                        help="token score for gradient/smoothgrad (default: grad_x_input, signed)")
    parser.add_argument("--word_aggregation", default="first", choices=WORD_AGGREGATIONS)
    parser.add_argument("--max_length", type=int, default=512)
    parser.add_argument("--truncation", default="head", choices=TRUNCATIONS,
                        help="which words of a long text the model sees: head (default), tail or head_tail")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--html", default="explanation.html", help="where to write the HTML page")
    args = parser.parse_args(argv)
    from .validation import UsageError, check_device, check_positive

    check_positive("--max_length", args.max_length, allow_none=False)
    check_device(args.device)
    if Path(args.html).is_dir():
        raise UsageError(f"--html {args.html} is a folder; give the HTML file to write")
    if args.text is not None:
        texts = [args.text]
    else:
        path = Path(args.file)
        if not path.is_file():
            parser.error(f"--file {path} does not exist")
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            parser.error(f"--file {path} has no non-empty line")
    from .report import render_terminal_heatmap

    results = explain_texts(args.model, texts, args.method, args.aggregation, args.word_aggregation,
                            args.max_length, args.device, args.truncation)
    colour = sys.stdout.isatty() or os.environ.get("FORCE_COLOR")
    for r in results:
        print(f"prediction: {r['prediction']} (p = {r['probability']:.3f})")
        if colour:
            print(render_terminal_heatmap(r["words"], r["scores"]))
        else:
            print(" ".join(f"{w}[{s:+.3g}]" for w, s in zip(r["words"], r["scores"], strict=True)))
        print()
    print(f"HTML: {write_html(results, Path(args.html), args.method)}")
