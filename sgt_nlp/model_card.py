"""The model card (``README.md`` with YAML front matter) that ``sgt-nlp train`` writes beside a trained model,
and the rationale-evaluation section ``sgt-nlp evaluate --update_model_card`` puts into it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .files import atomic_write_text

EVALUATION_HEADING = "## Rationale evaluation"


def write_model_card(
    output_dir: str | Path,
    *,
    base_model: str,
    data_description: str,
    labels: list[str],
    sgt_settings: dict[str, Any],
    train_metrics: dict[str, float] | None = None,
    eval_metrics: dict[str, float] | None = None,
    evaluation_table: str | None = None,
) -> Path:
    """A Hugging Face model card (README.md with YAML front matter) recording how the model was trained."""
    trained_with = (
        "saliency-guided training" if sgt_settings.get("sgt_mask_fraction", 0) > 0 else "plain fine-tuning"
    )
    lines = [
        "---",
        f"library_name: {'peft' if 'lora_r' in sgt_settings else 'transformers'}",
        "pipeline_tag: text-classification",
        "tags:",
        "- sgt_nlp",
        "- saliency-guided-training" if trained_with != "plain fine-tuning" else "- fine-tuned",
        f"base_model: {json.dumps(base_model)}",
        "---",
        "",
        f"# Text classifier trained with sgt_nlp ({trained_with})",
        "",
        f"Base model: `{base_model}`. Data: {data_description}. "
        f"Labels: {', '.join(f'`{x}`' for x in labels)}.",
        "",
        "## Saliency Guided Training settings",
        "",
        "| setting | value |",
        "|---|---|",
        *[f"| `{k}` | `{v}` |" for k, v in sgt_settings.items()],
        "",
    ]
    for title, metrics in (("Training", train_metrics), ("Validation", eval_metrics)):
        if metrics:
            lines += [f"## {title} metrics", "", "| metric | value |", "|---|---|"]
            lines += [
                f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()
            ]
            lines.append("")
    if evaluation_table:
        lines += [EVALUATION_HEADING, "", evaluation_table.strip(), ""]
    lines += [
        "## How it was trained",
        "",
        "With `sgt_nlp.SaliencyGuidedTrainer` (Ismail, Corrada Bravo & Feizi, NeurIPS 2021): each step the "
        "lowest-saliency real tokens are masked in embedding space and KL(p(x) || p(masked x)) is added to "
        "the task loss. With `sgt_mask_fraction = 0` this is plain fine-tuning.",
        "",
    ]
    if "lora_r" in sgt_settings:
        lines += [
            "This folder holds a LoRA adapter (PEFT) and the classifier's config, not full weights: "
            "`sgt-nlp evaluate/explain/sanity --model <this folder>` load the base model named in "
            "`adapter_config.json` and apply the adapter.",
            "",
        ]
    path = Path(output_dir) / "README.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def add_evaluation_to_model_card(model_dir: str | Path, table: str, description: str) -> bool:
    """Put (or replace) the rationale-evaluation section of an sgt_nlp model card; False if there is none."""
    path = Path(model_dir) / "README.md"
    if not path.is_file():
        return False
    text = path.read_text()
    if "- sgt_nlp" not in text.split("---")[1 if text.startswith("---") else 0]:
        return False  # not a card this package wrote: leave it alone
    section = f"{EVALUATION_HEADING}\n\n{description}\n\n{table.strip()}\n"
    if EVALUATION_HEADING in text:
        before, after = text.split(EVALUATION_HEADING, 1)
        rest = after.split("\n## ", 1)
        text = before + section + ("\n## " + rest[1] if len(rest) > 1 else "")
    else:
        marker = "## How it was trained"
        text = text.replace(marker, section + "\n" + marker) if marker in text else text + "\n" + section
    atomic_write_text(path, text)
    return True
