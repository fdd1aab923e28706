"""The data and starting models of an experiment: SST-2 as an ERASER folder, generated tasks, a tiny BERT."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from ..sampling import seeded_subset
from .spec import DatasetSpec, ExperimentSpec


def _shared_data() -> Path:
    """``../shared/data`` beside the checkout (the first such folder above the package; a git worktree may sit
    deeper than the main checkout)."""
    checkout = Path(__file__).resolve().parents[2]
    for parent in (checkout, *checkout.parents):
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return checkout.parent / "shared" / "data"


#: where relative dataset paths are read by default
SHARED_DATA = _shared_data()


# ---- data --------------------------------------------------------------------------------------------------


def read_sst2_tsv(path: str | Path) -> list[tuple[int, list[str]]]:
    """``(label, words)`` rows of an SST-2 TSV: label first, a header of any names, CRLF or LF line ends."""
    path = Path(path)
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for line_no, line in enumerate(handle, start=1):
            if line_no == 1:
                continue  # header ("label\tsentence" or "label\tcontent")
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 2 or parts[0] not in ("0", "1"):
                raise ValueError(f"{path}, line {line_no}: expected 'label<TAB>sentence' with label 0 or 1")
            words = parts[1].split()
            if not words:
                raise ValueError(f"{path}, line {line_no}: empty sentence")
            rows.append((int(parts[0]), words))
    return rows


def write_sst2_as_eraser(
    source: str | Path, out: str | Path, train_examples: int | None, seed: int = 0
) -> Path:
    """SST-2 as an ERASER folder (``docs.jsonl`` + ``train/val/test.jsonl``, no evidences) that the trainer
    and the evaluator read like any other: train = a seeded subset of train.tsv, val = dev.tsv,
    test = test.tsv."""
    source, out = Path(source), Path(out)
    marker = out / "sst2.json"
    settings = {"source": str(source.resolve()), "train_examples": train_examples, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return out
    out.mkdir(parents=True, exist_ok=True)
    labels = ("NEG", "POS")
    docs = []
    for split, filename in (("train", "train.tsv"), ("val", "dev.tsv"), ("test", "test.tsv")):
        rows = read_sst2_tsv(source / filename)
        chosen: Sequence[int] = range(len(rows))
        if split == "train" and train_examples is not None and train_examples < len(rows):
            chosen = seeded_subset(len(rows), train_examples, seed)
        lines = []
        for i in chosen:
            label, words = rows[int(i)]
            docid = f"{split}_{int(i)}"
            docs.append(json.dumps({"docid": docid, "document": " ".join(words)}))
            lines.append(
                json.dumps(
                    {
                        "annotation_id": docid,
                        "classification": labels[label],
                        "docids": [docid],
                        "evidences": [],
                        "query": "",
                    }
                )
            )
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (out / "docs.jsonl").write_text("\n".join(docs) + "\n")
    marker.write_text(json.dumps(settings))
    return out


def prepare_data(dataset: DatasetSpec, data_root: Path, work: Path) -> Path:
    """The ERASER folder a dataset is trained and evaluated from (written into ``work`` when generated)."""
    if dataset.source == "synthetic":
        from ..synthetic import make_synthetic_eraser

        return make_synthetic_eraser(work / "data", seed=0, **dataset.synthetic)
    assert dataset.path is not None  # validate_spec: every dataset but a synthetic one has a path
    folder = Path(dataset.path)
    folder = folder if folder.is_absolute() else data_root / folder
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset {dataset.name}: no folder {folder} (give --data_root)")
    if dataset.source == "sst2":
        return write_sst2_as_eraser(folder, work / "data", dataset.train_examples)
    return folder


# ---- models ------------------------------------------------------------------------------------------------


def word_vocabulary(texts: Sequence[str]) -> list[str]:
    """A WordPiece vocabulary: special tokens, every character (alone and as a ``##`` continuation, so that
    any word can be spelled) and every lower-cased whole word of ``texts``, in a fixed order.

    Unlike a trained WordPiece vocabulary (whose merges of equally frequent pairs, and so its tokens, differ
    from run to run), the same texts always give the same vocabulary, so a later session rebuilds the same
    model.

    Words are split off punctuation as BERT's basic tokenizer does, so ``review?`` gives ``review`` and ``?``.

    >>> word_vocabulary(["Ab b?"])[5:]
    ['?', 'a', 'b', '##?', '##a', '##b', 'ab']
    """
    words = sorted({word for text in texts for word in re.findall(r"\w+|[^\w\s]", text.lower())})
    chars = sorted({c for word in words for c in word})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return list(dict.fromkeys([*specials, *chars, *(f"##{c}" for c in chars), *words]))


def tiny_initial_model(
    spec: ExperimentSpec, data_dir: Path, labels: list[str], seed: int, folder: Path
) -> Path:
    """A small random BERT and a WordPiece vocabulary of the task's words (offline, seconds).

    Deterministic for a seed, so that a later session rebuilds exactly the same starting point.
    """
    import torch

    # transformers 5 keeps BertTokenizerFast as a lazily imported alias of BertTokenizer, unknown to its types
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast  # type: ignore[attr-defined]

    from ..eraser import load_split

    if (folder / "config.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    split = load_split(data_dir, "train")
    texts = [" ".join(split.documents[d].tokens) for ann in split.annotations for d in ann.docids]
    texts += [ann.query for ann in split.annotations if ann.query][:1]
    (folder / "vocab.txt").write_text("\n".join(word_vocabulary(texts)) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    hidden = int(spec.tiny_model.get("hidden_size", 64))
    # BertConfig's typed signature omits num_labels, which PreTrainedConfig takes and turns into id2label
    config = BertConfig(  # type: ignore[call-arg]
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=int(spec.tiny_model.get("layers", 2)),
        num_attention_heads=4,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={x: i for i, x in enumerate(labels)},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def export_half_precision_model(source: str, destination: str | Path) -> Path:
    """An fp16 copy of a model folder (MiniLM: about 45 MB), small enough to carry to a machine without a
    hub.

    The config keeps ``dtype: float32`` so the weights load (and train) in fp32; only the file is half size.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    from ..loading import resolve_model_path

    folder = resolve_model_path(source)
    destination = Path(destination)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32, use_safetensors=True)
    model.half().save_pretrained(destination)
    AutoTokenizer.from_pretrained(folder).save_pretrained(destination)
    config_path = destination / "config.json"
    config = json.loads(config_path.read_text())
    config["dtype"] = "float32"
    config_path.write_text(json.dumps(config, indent=2))
    return destination
