"""``sgt-nlp explain``: per-word saliency of a model's prediction for a text, in the terminal and as HTML."""

from __future__ import annotations

import html
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .eraser.align import TRUNCATIONS, WORD_AGGREGATIONS, align_words
from .explainers import EXPLAINERS, explainer_class, get_explainer
from .files import atomic_write_text
from .saliency import AGGREGATIONS

if TYPE_CHECKING:
    from transformers import HfArgumentParser


def explain_texts(
    model_path: str,
    texts: list[str],
    method: str = "gradient",
    aggregation: str = "grad_x_input",
    word_aggregation: str = "first",
    max_length: int = 512,
    device: str = "cpu",
    truncation: str = "head",
    bf16: bool = False,
) -> list[dict]:
    """Per text: the words the model saw (``truncation`` picks them when the text exceeds ``max_length``), the
    predicted label and its probability, and one score per seen word for the prediction. ``bf16``: the
    model's passes under bf16 autocast (refused where the device has no native bf16)."""
    from .loading import load_classifier, position_limit, resolve_device
    from .precision import autocast, check_bf16
    from .validation import check_position_limit, check_readable_texts

    target_device = resolve_device(device)
    if bf16:
        check_bf16(target_device)
    model, tokenizer, _ = load_classifier(model_path, target_device)
    settings = explainer_class(method).select_settings({"aggregation": aggregation})
    explainer = get_explainer(method, model, tokenizer=tokenizer, **settings)
    words = [text.split() for text in texts]
    check_readable_texts(tokenizer, words, lambda i: f"text {i + 1}")  # empty, [SEP] only, zero-width only
    alignment = align_words(tokenizer, words, max_length=max_length, truncation=truncation)
    check_position_limit(
        max_length,
        lambda: [int(row.sum()) for row in alignment.encoding["attention_mask"]],
        lambda i: f"text {i + 1}",
        position_limit(model),
        model_path,
    )
    encoding = {k: v.to(target_device) for k, v in alignment.encoding.items()}
    with autocast(model, bf16):
        attribution = explainer.attribute(encoding)
    scores = alignment.aggregate_to_lists(attribution.scores, word_aggregation)
    probs = torch.softmax(attribution.logits.float(), dim=-1)
    # nn.Module.__getattr__ is typed Tensor | Module; load_classifier gives a transformers model with a config
    labels: dict[int, str] = model.config.id2label  # type: ignore[union-attr, assignment]
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
        "<!doctype html><html><head><meta charset='utf-8'><title>sgt-nlp explain</title><style>"
        f"body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto}}{HEATMAP_CSS}</style>"
        f"</head><body><h1>Word saliency ({html.escape(method)})</h1><p>{render_heatmap_legend(signed)}</p>"
        + "".join(blocks)
        + "</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, page)
    return path


@dataclass
class ExplainArguments:
    """The options of ``sgt-nlp explain`` (each default lives here; the parser is made from the fields)."""

    model: str = field(metadata={"help": "model folder (or 'minilm'); required"})
    text: str | None = field(default=None, metadata={"help": "the text to explain (or --file)"})
    file: str | None = field(
        default=None, metadata={"help": "a UTF-8 file with one text per line (or --text)"}
    )
    method: str = field(default="gradient", metadata={"help": "the explainer", "choices": list(EXPLAINERS)})
    aggregation: str = field(
        default="grad_x_input",
        metadata={
            "help": "token score for gradient/smoothgrad (grad_x_input is signed)",
            "choices": list(AGGREGATIONS),
        },
    )
    word_aggregation: str = field(
        default="first", metadata={"help": "word pieces -> word score", "choices": list(WORD_AGGREGATIONS)}
    )
    max_length: int = field(default=512, metadata={"help": "word pieces per input; longer texts are cut"})
    truncation: str = field(
        default="head",
        metadata={
            "help": "which words of a long text the model sees: head, tail or head_tail",
            "choices": list(TRUNCATIONS),
        },
    )
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, cuda:1 or auto"})
    bf16: bool = field(
        default=False,
        metadata={
            "help": "run the model's passes under bf16 autocast (faster on CPUs with AVX512-BF16 or AMX and "
            "on GPUs; scores accumulate in float32). Default: fp32"
        },
    )
    html: str = field(default="explanation.html", metadata={"help": "where to write the HTML page"})


def make_parser() -> HfArgumentParser:
    """``sgt-nlp explain``'s parser, generated from :class:`ExplainArguments`."""
    from transformers import HfArgumentParser

    return HfArgumentParser(
        # transformers types this argument as DataClassType, a NewType of Any that no class matches
        ExplainArguments,  # type: ignore[arg-type]
        prog="sgt-nlp explain",
        description="Explain a classifier's prediction for one text or a file of texts (one per line): a "
        "per-word heatmap in the terminal and an HTML page.",
    )


def main(argv: list[str] | None = None) -> None:
    """``sgt-nlp explain``: explain each text, print its heatmap and write the HTML page."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = make_parser()
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    from .validation import UsageError, check_device, check_positive

    if (args.text is None) == (args.file is None):
        parser.error("give exactly one of --text or --file")
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

    results = explain_texts(
        args.model,
        texts,
        args.method,
        args.aggregation,
        args.word_aggregation,
        args.max_length,
        args.device,
        args.truncation,
        args.bf16,
    )
    colour = sys.stdout.isatty() or os.environ.get("FORCE_COLOR")
    for r in results:
        print(f"prediction: {r['prediction']} (p = {r['probability']:.3f})")
        if colour:
            print(render_terminal_heatmap(r["words"], r["scores"]))
        else:
            print(" ".join(f"{w}[{s:+.3g}]" for w, s in zip(r["words"], r["scores"], strict=True)))
        print()
    print(f"HTML: {write_html(results, Path(args.html), args.method)}")
