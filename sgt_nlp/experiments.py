"""``sgt-nlp experiment``: arms x seeds x datasets, trained, gated, evaluated and compared with paired intervals.

One runner for every comparison the project publishes (the demo, the movies reproduction, the CPU/GPU
protocols and the ablation). For each dataset:

1. **Learning rate** -- the *plain* arm is trained on the first seed with every candidate rate; the rate with the
   best validation accuracy is frozen for every arm and seed (the other arms never see the candidates).
2. **Training** -- every arm x seed from the same pretrained weights, model selection on validation. The
   **convergence gate**: a seed whose plain run ends below ``DatasetSpec.gate`` validation accuracy is failed;
   its other arms are not trained and its paired comparisons are dropped (the table says so).
3. **Evaluation** -- every arm on the same full test split, with every method under every removal mode, via
   :func:`sgt_nlp.evaluation.evaluate_folder` with ``per_example=True``.
4. **Aggregation** -- per-example scores are paired by test example within a seed, seeds pooled, and a paired
   bootstrap over examples gives 95 % intervals of treatment - control (:func:`paired_bootstrap`).

Resume across sessions: small records go to ``output_dir`` (meant to be committed), heavy things (models,
checkpoints, raw evaluation folders) to ``work_dir`` (deleted after a run is evaluated, unless
``keep_models``). A stage whose record exists is never run again. Record layout (``RECORD_VERSION``)::

    output_dir/spec.json                                the spec the records were made with
    output_dir/<dataset>/<arm>_seed<s>_lr<lr>/train.json  training: val accuracy, s/epoch, gate outcome
    output_dir/<dataset>/<arm>_seed<s>_lr<lr>/eval.json.gz  per-example scores (see ``per_example_metrics``)
    output_dir/results.{md,json,png}                    the aggregated table, verdicts and plot
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import os
import re
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .sampling import seeded_subset

logger = logging.getLogger(__name__)

RECORD_VERSION = 1


def _shared_data() -> Path:
    """``../shared/data`` beside the checkout (the first such folder above the package; a git worktree may sit
    deeper than the main checkout)."""
    for parent in Path(__file__).resolve().parents[1:]:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


SHARED_DATA = _shared_data()

#: the explanation methods a spec can ask for; ``gradient_l2`` is the score the trainer shapes (``l2``),
#: ``gradient`` is grad x input (the evaluation default), ``random`` is averaged over ``random_draws`` seeds
METHODS = ("gradient_l2", "gradient", "integrated_gradients", "smoothgrad", "occlusion", "random")
REMOVALS = ("delete", "mask_token", "random_token")
SOURCES = ("eraser", "sst2", "synthetic")
TRUNCATIONS = ("head", "tail", "head_tail")
MIXED_PRECISION = ("no", "bf16", "fp16")

#: per-example metrics: (key, title, +1 when higher is better / -1 when lower is better)
FAITHFULNESS_METRICS = (
    ("comprehensiveness", "comp", +1), ("sufficiency", "suff", -1),
    ("comprehensiveness_aopc", "comp AOPC", +1), ("sufficiency_aopc", "suff AOPC", -1),
    ("comprehensiveness_aopc_vs_empty", "comp AOPC / empty drop", +1),
    ("sufficiency_aopc_vs_empty", "suff AOPC / empty drop", -1),
    ("comprehensiveness_naopc", "comp NAOPC (evaluated bounds)", +1),
    ("sufficiency_naopc", "suff NAOPC (evaluated bounds)", -1),
)
AGREEMENT_METRICS = (("auprc_visible", "AUPRC seen", +1), ("token_f1_visible", "token F1 seen", +1))
ALL_METRICS = FAITHFULNESS_METRICS + AGREEMENT_METRICS
#: metrics the one-line verdict per method is read from
VERDICT_METRICS = ("comprehensiveness_aopc", "sufficiency_aopc", "comprehensiveness_naopc", "sufficiency_naopc",
                   "auprc_visible")
#: a difference whose interval excludes 0 but whose size is below this is called negligible (not better/worse)
NEGLIGIBLE = 0.0005
#: an empty-input drop below this makes the "/ empty drop" normalisation undefined for that example
MIN_EMPTY_DROP = 0.05

DEFAULT_ARMS: dict[str, dict[str, Any]] = {
    "plain": {"sgt_mask_fraction": 0.0},
    "sgt": {"sgt_mask_fraction": 0.5},
    "random_mask": {"sgt_mask_fraction": 0.5, "sgt_mask_selection": "random"},
}


# ---- the spec ------------------------------------------------------------------------------------------------


@dataclass
class DatasetSpec:
    """One dataset of an experiment: where it comes from, how it is cut, trained and gated."""

    name: str
    source: str = "eraser"  # eraser (a folder), sst2 (the GLUE TSVs), synthetic (generated, planted rationales)
    path: str | None = None  # relative paths are read under --data_root
    max_length: int = 256
    truncation: str = "head"
    train_examples: int | None = None  # a seeded random subset (None: all)
    val_examples: int | None = None
    test_examples: int | None = None  # None: the FULL test split (what every preset but smoke uses)
    epochs: float = 3.0
    learning_rates: tuple[float, ...] = (5e-5,)
    batch_size: int = 16
    gate: float = 0.0  # plain validation accuracy every seed must reach
    threshold: float | None = None  # comp/suff fraction (None: the mean human-rationale fraction)
    agreement: bool = True  # human rationales exist: report agreement metrics
    synthetic: dict[str, Any] = field(default_factory=dict)  # make_synthetic_eraser settings


@dataclass
class ExperimentSpec:
    """Arms x seeds x datasets and how they are evaluated and compared."""

    name: str
    datasets: tuple[DatasetSpec, ...]
    arms: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_ARMS))
    seeds: tuple[int, ...] = (0, 1, 2)
    model: str = "minilm"  # a folder, 'minilm', or 'tiny' (a small random BERT + a WordPiece vocabulary)
    tiny_model: dict[str, int] = field(default_factory=lambda: {"hidden_size": 64, "layers": 2})
    methods: tuple[str, ...] = METHODS
    random_draws: int = 5
    removals: tuple[str, ...] = ("delete", "random_token")
    ig_steps: int = 20
    smoothgrad_samples: int = 10
    eval_batch_size: int = 32
    warmup: float = 0.1
    weight_decay: float = 0.01
    mixed_precision: str = "no"  # bf16/fp16 autocast in training (cuda only)
    bootstrap_resamples: int = 2000
    #: (treatment, control) pairs; empty: every arm but the baseline and random_mask against both
    comparisons: tuple[tuple[str, str], ...] = ()
    baseline: str = "plain"

    def compared_pairs(self) -> list[tuple[str, str]]:
        if self.comparisons:
            return [tuple(pair) for pair in self.comparisons]
        controls = [a for a in (self.baseline, "random_mask") if a in self.arms]
        return [(arm, control) for arm in self.arms if arm not in controls for control in controls]


class SpecError(ValueError):
    """A spec that cannot run; names the file and the field."""


def _check_choice(where: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise SpecError(f"{where}: {value!r} is not one of: {', '.join(allowed)}")


def validate_spec(spec: ExperimentSpec, source: str = "spec") -> ExperimentSpec:
    """Check every field a run depends on; the error names ``source`` and the field."""
    from .config import SaliencyGuidedTrainingArguments

    if not spec.datasets:
        raise SpecError(f"{source}: datasets: at least one dataset is needed")
    names = [d.name for d in spec.datasets]
    if len(set(names)) != len(names):
        raise SpecError(f"{source}: datasets: names repeat ({names})")
    for i, d in enumerate(spec.datasets):
        where = f"{source}: datasets[{i}] ({d.name})"
        _check_choice(f"{where}.source", d.source, SOURCES)
        _check_choice(f"{where}.truncation", d.truncation, TRUNCATIONS)
        if d.source != "synthetic" and not d.path:
            raise SpecError(f"{where}.path: a {d.source} dataset needs a path")
        if not d.learning_rates or any(not isinstance(lr, (int, float)) or lr <= 0 for lr in d.learning_rates):
            raise SpecError(f"{where}.learning_rates: positive numbers needed, got {d.learning_rates!r}")
        if not 0.0 <= d.gate <= 1.01:
            raise SpecError(f"{where}.gate: an accuracy in [0, 1] (1.01 fails every run), got {d.gate!r}")
        if d.epochs <= 0 or d.batch_size < 1 or d.max_length < 8:
            raise SpecError(f"{where}: epochs, batch_size and max_length must be positive (max_length >= 8)")
        if d.source == "sst2" and d.agreement:
            raise SpecError(f"{where}.agreement: SST-2 has no human rationales; set it to false")
    sgt_fields = {f.name for f in fields(SaliencyGuidedTrainingArguments) if f.name.startswith("sgt_")}
    if spec.baseline not in spec.arms:
        raise SpecError(f"{source}: baseline: {spec.baseline!r} is not an arm ({', '.join(spec.arms)})")
    for arm, settings in spec.arms.items():
        for key in settings:
            if key not in sgt_fields:
                raise SpecError(f"{source}: arms.{arm}.{key}: not an sgt_* setting ({', '.join(sorted(sgt_fields))})")
    for i, pair in enumerate(spec.compared_pairs()):
        for arm in pair:
            if arm not in spec.arms:
                raise SpecError(f"{source}: comparisons[{i}]: {arm!r} is not an arm")
    for method in spec.methods:
        _check_choice(f"{source}: methods", method, METHODS)
    for removal in spec.removals:
        _check_choice(f"{source}: removals", removal, REMOVALS)
    _check_choice(f"{source}: mixed_precision", spec.mixed_precision, MIXED_PRECISION)
    if not spec.seeds:
        raise SpecError(f"{source}: seeds: at least one seed is needed")
    if spec.random_draws < 1:
        raise SpecError(f"{source}: random_draws must be >= 1")
    return spec


def truncation_supported() -> bool:
    """Whether training and evaluation both accept a ``truncation`` setting (head/tail/head_tail)."""
    from .evaluation import EvaluationConfig
    from .finetune_data import DataArguments

    return all("truncation" in {f.name for f in fields(cls)} for cls in (DataArguments, EvaluationConfig))


def _from_mapping(cls, raw: Any, where: str):
    """``cls(**raw)`` for a dataclass, naming an unknown or missing field and ``where`` it was."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SpecError(f"{where}.{unknown[0]}: unknown field (allowed: {', '.join(known)})")
    values = dict(raw)
    for name in ("learning_rates", "seeds", "methods", "removals"):
        if name in values and isinstance(values[name], list):
            values[name] = tuple(values[name])
    if "comparisons" in values:
        values["comparisons"] = tuple(tuple(p) for p in values["comparisons"])
    try:
        return cls(**values)
    except TypeError as exc:
        raise SpecError(f"{where}: {exc}") from None


def spec_from_dict(raw: dict[str, Any], source: str = "spec") -> ExperimentSpec:
    """An :class:`ExperimentSpec` from plain data (a parsed JSON/YAML file).

    ``preset: <name>`` starts from a preset and overrides the fields given (datasets by name, field by field).
    """
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: the top level must be a mapping")
    raw = dict(raw)
    base_name = raw.pop("preset", None)
    if base_name is not None:
        if base_name not in PRESETS:
            raise SpecError(f"{source}: preset: {base_name!r} is not one of: {', '.join(PRESETS)}")
        base = PRESETS[base_name]
        datasets = list(base.datasets)
        for i, d in enumerate(raw.pop("datasets", []) or []):
            if not isinstance(d, dict) or "name" not in d:
                raise SpecError(f"{source}: datasets[{i}]: a mapping with a name is needed")
            match = next((j for j, x in enumerate(datasets) if x.name == d["name"]), None)
            merged = {**asdict(datasets[match]), **d} if match is not None else d
            dataset = _from_mapping(DatasetSpec, merged, f"{source}: datasets[{i}]")
            if match is None:
                datasets.append(dataset)
            else:
                datasets[match] = dataset
        merged = {**{f.name: getattr(base, f.name) for f in fields(ExperimentSpec) if f.name != "datasets"}, **raw}
        spec = _from_mapping(ExperimentSpec, {**merged, "datasets": ()}, source)
        spec.datasets = tuple(datasets)
    else:
        raw_datasets = raw.pop("datasets", None)
        if not isinstance(raw_datasets, list):
            raise SpecError(f"{source}: datasets: a list of datasets is needed")
        datasets = tuple(_from_mapping(DatasetSpec, d, f"{source}: datasets[{i}]") for i, d in enumerate(raw_datasets))
        if "name" not in raw:
            raise SpecError(f"{source}: name: missing")
        spec = _from_mapping(ExperimentSpec, {**raw, "datasets": datasets}, source)
    return validate_spec(spec, source)


def spec_to_dict(spec: ExperimentSpec) -> dict[str, Any]:
    """Plain data for a spec file (``load_spec`` reads it back to an equal spec)."""
    return json.loads(json.dumps(asdict(spec), default=list))


def load_spec(path: str | Path) -> ExperimentSpec:
    """A spec from a ``.json`` or ``.yaml``/``.yml`` file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: invalid YAML ({exc})") from None
    elif path.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
    else:
        raise SpecError(f"{path}: a spec must be .json, .yaml or .yml")
    return spec_from_dict(raw, str(path))


# ---- presets --------------------------------------------------------------------------------------------------

SST2 = DatasetSpec(
    name="sst2", source="sst2", path="sst2", max_length=64, train_examples=8000, epochs=3,
    learning_rates=(2e-5, 5e-5, 1e-4), batch_size=32, gate=0.85, threshold=0.2, agreement=False,
)
MOVIES_CPU = DatasetSpec(
    name="movies", source="eraser", path="eraser_movies", max_length=256, truncation="head_tail", epochs=3,
    learning_rates=(5e-5, 1e-4), batch_size=16, gate=0.80,
)
SYNTHETIC_TASK = {"n_train": 1600, "n_val": 200, "n_test": 200, "min_words": 40, "max_words": 100,
                  "templates": "lexical"}

#: the ablation's variants of SGT, each compared with plain, random-mask and default SGT
ABLATION_VARIANTS = ("sgt_eval_pass", "sgt_mask_token", "sgt_detach_kl", "sgt_fraction0.2", "sgt_kl0.3",
                     "sgt_signed_mean")

PRESETS: dict[str, ExperimentSpec] = {
    # seconds: a tiny random BERT on a tiny synthetic task, for the test suite
    "smoke": ExperimentSpec(
        name="smoke",
        datasets=(DatasetSpec(name="synthetic", source="synthetic", max_length=64, epochs=1, learning_rates=(1e-3,),
                              batch_size=16, synthetic={"n_train": 48, "n_val": 16, "n_test": 12,
                                                        "min_words": 12, "max_words": 24}),),
        seeds=(0, 1), model="tiny", tiny_model={"hidden_size": 32, "layers": 1}, random_draws=2, ig_steps=4,
        smoothgrad_samples=2, eval_batch_size=16, bootstrap_resamples=200,
    ),
    # the demo: plain / SGT / random-mask on the synthetic task with planted rationales
    "demo": ExperimentSpec(
        name="demo",
        datasets=(DatasetSpec(name="synthetic", source="synthetic", max_length=128, epochs=4, learning_rates=(1e-3,),
                              batch_size=32, synthetic=dict(SYNTHETIC_TASK)),),
        seeds=(0,), model="tiny", tiny_model={"hidden_size": 64, "layers": 2},
        methods=("gradient_l2", "gradient", "integrated_gradients", "random"), ig_steps=10, eval_batch_size=32,
        removals=("delete",),  # one removal mode: the demo must stay within minutes on two cores
    ),
    # a 2-core CPU, over several sessions: SST-2 (faithfulness) and ERASER movies (faithfulness + agreement)
    "cpu": ExperimentSpec(name="cpu", datasets=(SST2, MOVIES_CPU), seeds=(0, 1, 2), ig_steps=20,
                          smoothgrad_samples=10),
    # one H200, one command under 10 minutes (an estimate: not run here): movies at 512 pieces, one learning rate,
    # bf16 training; the model is an fp16 MiniLM folder carried to the machine (``--export_model``). Occlusion
    # (about 450 passes of 512 pieces per review) is left out to fit; add it with a spec when time allows.
    "gpu": ExperimentSpec(
        name="gpu",
        datasets=(replace(MOVIES_CPU, max_length=512, learning_rates=(5e-5,), batch_size=32),),
        seeds=(0, 1, 2), model="runs/minilm_fp16", mixed_precision="bf16", eval_batch_size=64,
        methods=tuple(m for m in METHODS if m != "occlusion"),
    ),
    # which SGT choices matter, on SST-2: each variant against plain and random-mask
    "ablation": ExperimentSpec(
        name="ablation",
        datasets=(SST2,),
        arms={
            **DEFAULT_ARMS,
            "sgt_eval_pass": {"sgt_mask_fraction": 0.5, "sgt_saliency_pass": "eval"},
            "sgt_mask_token": {"sgt_mask_fraction": 0.5, "sgt_mask_strategy": "mask_token"},
            "sgt_detach_kl": {"sgt_mask_fraction": 0.5, "sgt_detach_kl_target": True},
            "sgt_fraction0.2": {"sgt_mask_fraction": 0.2},
            "sgt_kl0.3": {"sgt_mask_fraction": 0.5, "sgt_kl_weight": 0.3},
            "sgt_signed_mean": {"sgt_mask_fraction": 0.5, "sgt_saliency_aggregation": "signed_mean"},
        },
        seeds=(0, 1), methods=("gradient_l2", "gradient", "integrated_gradients", "random"),
        comparisons=(("sgt", "plain"), ("sgt", "random_mask"), *(
            (variant, control) for variant in ABLATION_VARIANTS for control in ("plain", "random_mask", "sgt"))),
    ),
}


# ---- data ------------------------------------------------------------------------------------------------------


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


def write_sst2_as_eraser(source: str | Path, out: str | Path, train_examples: int | None, seed: int = 0) -> Path:
    """SST-2 as an ERASER folder (``docs.jsonl`` + ``train/val/test.jsonl``, no evidences) that the trainer and
    the evaluator read like any other: train = a seeded subset of train.tsv, val = dev.tsv, test = test.tsv."""
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
        chosen = range(len(rows))
        if split == "train" and train_examples is not None and train_examples < len(rows):
            chosen = seeded_subset(len(rows), train_examples, seed)
        lines = []
        for i in chosen:
            label, words = rows[int(i)]
            docid = f"{split}_{int(i)}"
            docs.append(json.dumps({"docid": docid, "document": " ".join(words)}))
            lines.append(json.dumps({"annotation_id": docid, "classification": labels[label], "docids": [docid],
                                     "evidences": [], "query": ""}))
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (out / "docs.jsonl").write_text("\n".join(docs) + "\n")
    marker.write_text(json.dumps(settings))
    return out


def prepare_data(dataset: DatasetSpec, data_root: Path, work: Path) -> Path:
    """The ERASER folder a dataset is trained and evaluated from (written into ``work`` when generated)."""
    if dataset.source == "synthetic":
        from .synthetic import make_synthetic_eraser

        return make_synthetic_eraser(work / "data", seed=0, **dataset.synthetic)
    folder = Path(dataset.path)
    folder = folder if folder.is_absolute() else data_root / folder
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset {dataset.name}: no folder {folder} (give --data_root)")
    if dataset.source == "sst2":
        return write_sst2_as_eraser(folder, work / "data", dataset.train_examples)
    return folder


# ---- models ----------------------------------------------------------------------------------------------------


def word_vocabulary(texts: Sequence[str]) -> list[str]:
    """A WordPiece vocabulary: special tokens, every character (alone and as a ``##`` continuation, so that any
    word can be spelled) and every lower-cased whole word of ``texts``, in a fixed order.

    Unlike a trained WordPiece vocabulary (whose merges of equally frequent pairs, and so its tokens, differ from
    run to run), the same texts always give the same vocabulary, so a later session rebuilds the same model.

    Words are split off punctuation as BERT's basic tokenizer does, so ``review?`` gives ``review`` and ``?``.

    >>> word_vocabulary(["Ab b?"])[5:]
    ['?', 'a', 'b', '##?', '##a', '##b', 'ab']
    """
    words = sorted({word for text in texts for word in re.findall(r"\w+|[^\w\s]", text.lower())})
    chars = sorted({c for word in words for c in word})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return list(dict.fromkeys([*specials, *chars, *(f"##{c}" for c in chars), *words]))


def tiny_initial_model(spec: ExperimentSpec, data_dir: Path, labels: list[str], seed: int, folder: Path) -> Path:
    """A small random BERT and a WordPiece vocabulary of the task's words (offline, seconds).

    Deterministic for a seed, so that a later session rebuilds exactly the same starting point.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from .eraser import load_split

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
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=int(spec.tiny_model.get("layers", 2)),
        num_attention_heads=4, intermediate_size=hidden * 2, max_position_embeddings=512, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def export_half_precision_model(source: str, destination: str | Path) -> Path:
    """An fp16 copy of a model folder (MiniLM: about 45 MB), small enough to carry to a machine without a hub.

    The config keeps ``dtype: float32`` so the weights load (and train) in fp32; only the file is half size.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    from .loading import resolve_model_path

    folder = resolve_model_path(source)
    destination = Path(destination)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32)
    model.half().save_pretrained(destination)
    AutoTokenizer.from_pretrained(folder).save_pretrained(destination)
    config_path = destination / "config.json"
    config = json.loads(config_path.read_text())
    config["dtype"] = "float32"
    config_path.write_text(json.dumps(config, indent=2))
    return destination


# ---- records ---------------------------------------------------------------------------------------------------


def run_id(arm: str, seed: int, learning_rate: float) -> str:
    return f"{arm}_seed{seed}_lr{learning_rate:g}"


def read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return json.load(handle)
    return json.loads(path.read_text())


def write_json(path: Path, data: Any) -> None:
    """Written to a temporary name first, so an interrupted write never leaves a record that looks finished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".gz":
        with gzip.open(tmp, "wt", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"))
    else:
        tmp.write_text(json.dumps(data, indent=2, default=list))
    os.replace(tmp, path)


@dataclass
class Stage:
    """Progress lines: stage, dataset, arm, seed and the time since the experiment started."""

    started: float = field(default_factory=time.perf_counter)

    def log(self, stage: str, dataset: str, arm: str = "-", seed: int | str = "-", detail: str = "") -> None:
        elapsed = time.perf_counter() - self.started
        logger.info("[%s] %-9s dataset=%s arm=%s seed=%s elapsed=%.0fs %s", time.strftime("%H:%M:%S"), stage,
                    dataset, arm, seed, elapsed, detail)


#: settings that change no record: seeds may be added, the gate is re-read, intervals recomputed
FREE_FIELDS = ("name", "seeds", "bootstrap_resamples", "comparisons", "eval_batch_size", "record_version")
FREE_DATASET_FIELDS = ("gate", "learning_rates")


def spec_changes(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The fields whose change would make the records of ``previous`` (a spec.json) wrong for ``current``.

    Datasets and arms are compared where both specs have them (a spec may add or leave out some)."""
    changed = [key for key in current if key not in (*FREE_FIELDS, "datasets", "arms")
               and previous.get(key) != current[key]]
    for arm, settings in current["arms"].items():
        if arm in previous.get("arms", {}) and previous["arms"][arm] != settings:
            changed.append(f"arms.{arm}")
    old_datasets = {d["name"]: d for d in previous.get("datasets", [])}
    for dataset in current["datasets"]:
        old = old_datasets.get(dataset["name"])
        if old is None:
            continue
        changed += [f"datasets.{dataset['name']}.{key}" for key in dataset
                    if key not in FREE_DATASET_FIELDS and old.get(key) != dataset[key]]
    return changed


class Experiment:
    """Runs (or resumes) a spec: ``run()`` trains and evaluates what is missing, then aggregates."""

    def __init__(self, spec: ExperimentSpec, output_dir: str | Path, work_dir: str | Path,
                 data_root: str | Path = SHARED_DATA, keep_models: bool = False, only_finished: bool = False):
        self.spec, self.out, self.work = spec, Path(output_dir), Path(work_dir)
        self.data_root, self.keep_models, self.only_finished = Path(data_root), keep_models, only_finished
        self.progress = Stage()
        self.trained_runs: list[str] = []  # run ids trained by this invocation (tests check resume with it)
        self.evaluated_runs: list[str] = []

    # -- paths ---------------------------------------------------------------------------------------------

    def record_dir(self, dataset: DatasetSpec, rid: str) -> Path:
        return self.out / dataset.name / rid

    def work_run(self, dataset: DatasetSpec, rid: str) -> Path:
        return self.work / dataset.name / rid

    # -- the whole experiment ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        import torch

        if torch.cuda.is_available():  # TF32 matmuls for the fp32 evaluation passes
            torch.backends.cuda.matmul.allow_tf32 = True
        self.out.mkdir(parents=True, exist_ok=True)
        spec_path = self.out / "spec.json"
        current = {"record_version": RECORD_VERSION, **asdict(self.spec)}
        previous = read_json(spec_path)
        if previous is not None:
            changed = spec_changes(previous, json.loads(json.dumps(current, default=list)))
            if changed:
                raise SpecError(f"{spec_path}: the records there were made with other settings ({', '.join(changed)}); "
                                "use another --output_dir (or delete that one) to run this spec")
        if not self.only_finished:
            if previous is not None:  # a run of some datasets or arms keeps what the file says of the others
                names = {d["name"] for d in current["datasets"]}
                current["datasets"] = [*current["datasets"], *(d for d in previous["datasets"] if d["name"] not in names)]
                current["arms"] = {**previous.get("arms", {}), **current["arms"]}
            write_json(spec_path, current)
        runs: dict[str, list[dict[str, Any]]] = {}
        skipped: dict[str, str] = {}
        for dataset in self.spec.datasets:
            if dataset.truncation != "head" and not truncation_supported():
                skipped[dataset.name] = (f"truncation={dataset.truncation!r} needs DataArguments.truncation and "
                                         "EvaluationConfig.truncation, which this version of sgt_nlp lacks")
                logger.error("dataset %s left out: %s", dataset.name, skipped[dataset.name])
                continue
            runs[dataset.name] = self.run_dataset(dataset)
        result = aggregate(self.spec, runs)
        for name, reason in skipped.items():
            result["datasets"][name]["skipped"] = reason
        write_results(self.spec, result, self.out)
        return result

    def run_dataset(self, dataset: DatasetSpec) -> list[dict[str, Any]]:
        """Learning rate, then every arm x seed: train (gated), evaluate; returns the records found."""
        work = self.work / dataset.name
        data_dir = None if self.only_finished else prepare_data(dataset, self.data_root, work)
        lr = self.select_learning_rate(dataset, data_dir)
        records = []
        for seed in self.spec.seeds:
            if lr is None:
                break
            plain = self.train(dataset, data_dir, self.spec.baseline, seed, lr)
            gate_passed = plain is not None and plain["val_accuracy"] >= dataset.gate  # the spec's gate, now
            for arm in self.spec.arms:
                rid = run_id(arm, seed, lr)
                record = {"dataset": dataset.name, "arm": arm, "seed": seed, "learning_rate": lr, "run": rid}
                training = plain if arm == self.spec.baseline else None
                if arm != self.spec.baseline and gate_passed:
                    training = self.train(dataset, data_dir, arm, seed, lr)
                record["training"] = training
                record["gate_passed"] = gate_passed
                if training is not None and gate_passed:
                    record["evaluation"] = self.evaluate(dataset, data_dir, arm, seed, lr)
                elif plain is not None and not gate_passed:
                    self.progress.log("gate", dataset.name, arm, seed, "plain run below the gate: seed left out")
                records.append(record)
        return records

    # -- learning rate -------------------------------------------------------------------------------------

    def select_learning_rate(self, dataset: DatasetSpec, data_dir: Path | None) -> float | None:
        """The candidate with the best plain validation accuracy on the first seed (the first on a tie)."""
        seed = self.spec.seeds[0]
        recorded = read_json(self.out / dataset.name / "lr_selection.json")
        if recorded and recorded["candidates"] == list(dataset.learning_rates) and recorded["seed"] == seed:
            return recorded["chosen"]  # frozen once made: a retrained candidate must not move it
        accuracies = {}
        for lr in dataset.learning_rates:
            training = self.train(dataset, data_dir, self.spec.baseline, seed, lr, selecting=True)
            if training is None:
                return None  # only_finished and not trained yet
            accuracies[lr] = training["val_accuracy"]
        chosen = max(dataset.learning_rates, key=lambda lr: (accuracies[lr], -dataset.learning_rates.index(lr)))
        selection = {"candidates": list(dataset.learning_rates), "seed": seed, "arm": self.spec.baseline,
                     "val_accuracy": {f"{lr:g}": accuracies[lr] for lr in dataset.learning_rates},
                     "chosen": chosen}
        if not self.only_finished:
            write_json(self.out / dataset.name / "lr_selection.json", selection)
            for lr in dataset.learning_rates:  # the losing candidates' models are not needed again
                if lr != chosen and not self.keep_models:
                    shutil.rmtree(self.work_run(dataset, run_id(self.spec.baseline, seed, lr)), ignore_errors=True)
        self.progress.log("lr", dataset.name, self.spec.baseline, seed, f"chose {chosen:g} from {selection['val_accuracy']}")
        return chosen

    # -- training ------------------------------------------------------------------------------------------

    def train(self, dataset: DatasetSpec, data_dir: Path | None, arm: str, seed: int, lr: float,
              selecting: bool = False) -> dict[str, Any] | None:
        """The run's training record: read if it exists, else trained now (None under ``only_finished``)."""
        rid = run_id(arm, seed, lr)
        path = self.record_dir(dataset, rid) / "train.json"
        record = read_json(path)
        if record is not None or self.only_finished:
            return record
        self.progress.log("train", dataset.name, arm, seed, f"lr {lr:g}" + (" (learning-rate candidate)" if selecting else ""))
        record = self._train_model(dataset, data_dir, arm, seed, lr, self.work_run(dataset, rid) / "model")
        record["gate"] = dataset.gate
        record["gate_passed"] = bool(record["val_accuracy"] is not None and record["val_accuracy"] >= dataset.gate)
        write_json(path, record)
        self.trained_runs.append(f"{dataset.name}/{rid}")
        self.progress.log("trained", dataset.name, arm, seed, f"val acc {record['val_accuracy']:.3f} "
                          f"({'passes' if record['gate_passed'] else 'FAILS'} gate {dataset.gate}), "
                          f"{record['seconds_per_epoch']:.0f} s/epoch")
        return record

    def _train_model(self, dataset: DatasetSpec, data_dir: Path, arm: str, seed: int, lr: float,
                     folder: Path) -> dict[str, Any]:
        import torch

        from .config import SaliencyGuidedTrainingArguments
        from .eraser import load_split
        from .finetune import DataArguments, ModelArguments, RunArguments, run_training

        model = self.spec.model
        if model == "tiny":
            labels = list(load_split(data_dir, "train").labels)
            model = str(tiny_initial_model(self.spec, data_dir, labels, seed, self.work / dataset.name / f"tiny_seed{seed}"))
        cuda = torch.cuda.is_available()
        checkpoints = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        args = SaliencyGuidedTrainingArguments(
            output_dir=str(folder), num_train_epochs=dataset.epochs, learning_rate=lr,
            per_device_train_batch_size=dataset.batch_size, per_device_eval_batch_size=max(32, dataset.batch_size),
            warmup_steps=self.spec.warmup, weight_decay=self.spec.weight_decay, seed=seed, data_seed=seed,
            eval_strategy="epoch", save_strategy="epoch", save_total_limit=1, load_best_model_at_end=True,
            metric_for_best_model="accuracy", logging_steps=20, report_to=[], dataloader_num_workers=0,
            use_cpu=not cuda, bf16=cuda and self.spec.mixed_precision == "bf16",
            fp16=cuda and self.spec.mixed_precision == "fp16",
            resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None, **self.spec.arms[arm],
        )
        data_kwargs: dict[str, Any] = {"data_dir": str(data_dir), "max_train_samples":
                                       None if dataset.source == "sst2" else dataset.train_examples,
                                       "max_eval_samples": dataset.val_examples}
        if dataset.truncation != "head":  # passed only when set: validate_spec checked that it is supported
            data_kwargs["truncation"] = dataset.truncation
        started = time.perf_counter()
        trainer = run_training(ModelArguments(model_name_or_path=model, max_length=dataset.max_length),
                               DataArguments(**data_kwargs), args,
                               # the work folder is the runner's own: a run interrupted before its first
                               # checkpoint is trained again from scratch in it
                               RunArguments(overwrite_output_dir=True))
        history = trainer.state.log_history
        runtime = next((h["train_runtime"] for h in reversed(history) if "train_runtime" in h), None)
        evals = [{"epoch": h.get("epoch"), "accuracy": h["eval_accuracy"]} for h in history
                 if "eval_accuracy" in h]
        final = trainer.evaluate()
        return {
            "record_version": RECORD_VERSION, "arm": arm, "seed": seed, "learning_rate": lr,
            "sgt_settings": dict(self.spec.arms[arm]), "model": self.spec.model,
            "val_accuracy": float(final["eval_accuracy"]), "val_curve": evals,
            "train_examples": len(trainer.train_dataset), "epochs": dataset.epochs,
            "seconds": time.perf_counter() - started, "train_runtime": runtime,
            "seconds_per_epoch": (runtime / dataset.epochs) if runtime else None,
            "resumed_from": str(checkpoints[-1].name) if checkpoints else None,
            "device": "cuda" if cuda else "cpu",
        }

    # -- evaluation ----------------------------------------------------------------------------------------

    def evaluate(self, dataset: DatasetSpec, data_dir: Path | None, arm: str, seed: int,
                 lr: float) -> dict[str, Any] | None:
        """The run's per-example scores on the full test split: read if recorded, else computed now."""
        rid = run_id(arm, seed, lr)
        path = self.record_dir(dataset, rid) / "eval.json.gz"
        record = read_json(path)
        if record is not None or self.only_finished:
            return record
        model_dir = self.work_run(dataset, rid) / "model"
        if not (model_dir / "config.json").is_file():
            # trained in an earlier session whose work_dir is gone: the seeded run is trained again
            self.progress.log("retrain", dataset.name, arm, seed, "model missing (work_dir of another session)")
            (self.record_dir(dataset, rid) / "train.json").unlink()
            self.train(dataset, data_dir, arm, seed, lr)
        self.progress.log("evaluate", dataset.name, arm, seed)
        started = time.perf_counter()
        raw = self._evaluate_model(dataset, data_dir, model_dir, self.work_run(dataset, rid) / "eval", arm)
        record = {"record_version": RECORD_VERSION, "arm": arm, "seed": seed, "learning_rate": lr,
                  "seconds": time.perf_counter() - started, **raw}
        write_json(path, record)
        self.evaluated_runs.append(f"{dataset.name}/{rid}")
        if not self.keep_models:
            shutil.rmtree(self.work_run(dataset, rid), ignore_errors=True)
        self.progress.log("evaluated", dataset.name, arm, seed, f"{time.perf_counter() - started:.0f} s")
        return record

    def evaluation_calls(self, dataset: DatasetSpec, model_dir: Path, data_dir: Path, out: Path, name: str):
        """(ordering name, EvaluationConfig) for every ordering the spec asks for: one call for the methods that
        share settings, one for ``gradient_l2`` and one per extra random draw."""
        from .evaluation import EvaluationConfig

        common = dict(
            model=str(model_dir), data_dir=str(data_dir), split="test", batch_size=self.spec.eval_batch_size,
            removal=self.spec.removals[0], extra_removals=tuple(self.spec.removals[1:]),
            max_length=dataset.max_length, max_examples=dataset.test_examples, threshold=dataset.threshold,
            ig_steps=self.spec.ig_steps, smoothgrad_samples=self.spec.smoothgrad_samples, seed=0,
            sample="random", masked_accuracy_curve=False, per_example=True, model_name=name,
        )
        if dataset.truncation != "head":
            common["truncation"] = dataset.truncation
        shared = tuple(m for m in self.spec.methods if m not in ("gradient_l2",))
        calls = []
        if shared:
            calls.append(({m: m for m in shared}, EvaluationConfig(output_dir=str(out / "main"), methods=shared,
                                                                    aggregation="grad_x_input", **common)))
        if "gradient_l2" in self.spec.methods:
            calls.append(({"gradient": "gradient_l2"}, EvaluationConfig(
                output_dir=str(out / "gradient_l2"), methods=("gradient",), aggregation="l2", **common)))
        if "random" in self.spec.methods:
            for draw in range(1, self.spec.random_draws):
                calls.append(({"random": f"random_draw{draw}"}, EvaluationConfig(
                    output_dir=str(out / f"random_draw{draw}"), methods=("random",),
                    explainer_settings={"random": {"seed": draw}}, **common)))
        return calls

    def _evaluate_model(self, dataset: DatasetSpec, data_dir: Path, model_dir: Path, out: Path,
                        name: str) -> dict[str, Any]:
        from .evaluation import evaluate_folder

        orderings: dict[str, dict[str, dict[str, list]]] = {removal: {} for removal in self.spec.removals}
        examples = None
        for names, config in self.evaluation_calls(dataset, model_dir, data_dir, out, name):
            evaluate_folder(config)
            for removal in self.spec.removals:
                folder = config.output_dir_for(removal)
                for method, name in names.items():
                    lines = [json.loads(line) for line in (folder / method / "per_example.jsonl").read_text().splitlines()]
                    examples = examples or example_columns(lines)
                    if [e["annotation_id"] for e in lines] != examples["annotation_id"]:
                        raise ValueError(f"{folder / method}: other examples than the first evaluation")
                    orderings[removal][name] = compact_ordering(lines)
        return {"examples": examples, "orderings": orderings}


def example_columns(lines: list[dict[str, Any]]) -> dict[str, list]:
    """What an evaluation record holds once per example (the same for every ordering)."""
    return {"annotation_id": [e["annotation_id"] for e in lines], "label": [int(e["label"]) for e in lines],
            "words_kept": [int(e["words_kept"]) for e in lines],
            "aopc_thresholds": lines[0]["aopc_thresholds"] if lines else []}


def compact_ordering(lines: list[dict[str, Any]]) -> dict[str, list]:
    """One ordering's ``per_example.jsonl`` lines as columns of p(ŷ), ŷ the prediction on the full input, rounded
    to 6 decimals: everything the metrics need, a few MB gzipped for thousands of examples."""

    def at_prediction(probs: list[float], e: dict[str, Any]) -> float:
        return round(float(probs[int(np.argmax(e["probs"]))]), 6)

    return {
        "predicted": [int(np.argmax(e["probs"])) for e in lines],
        "p_full": [at_prediction(e["probs"], e) for e in lines],
        "p_empty": [at_prediction(e["empty_probs"], e) for e in lines],
        "p_comp": [at_prediction(e["comp_probs"], e) for e in lines],
        "p_suff": [at_prediction(e["suff_probs"], e) for e in lines],
        "p_comp_aopc": [[at_prediction(p, e) for p in e["comp_aopc_probs"]] for e in lines],
        "p_suff_aopc": [[at_prediction(p, e) for p in e["suff_aopc_probs"]] for e in lines],
        "tokens_to_flip": [int(e["tokens_to_flip"]) for e in lines],
        "auprc_visible": [e["auprc_visible"] for e in lines],
        "token_f1_visible": [e["token_f1_visible"] for e in lines],
    }


# ---- per-example metrics ----------------------------------------------------------------------------------------


def per_example_metrics(ordering: dict[str, list], labels: Sequence[int]) -> dict[str, np.ndarray]:
    """Raw per-example metrics of one ordering (one method's ranking), from its compact record.

    With ŷ the prediction on the full input and p = p(ŷ|x): comprehensiveness = p - p(ŷ | top words removed),
    sufficiency = p - p(ŷ | only the top words kept) at the threshold; the AOPC versions average the drops over
    the bins (ERASER). ``*_vs_empty`` divide the AOPC by the drop of the empty input, d0 = p - p(ŷ | every seen
    word removed) (Carton et al. 2020's null-input normalisation), NaN where d0 < ``MIN_EMPTY_DROP``.
    """
    p = np.asarray(ordering["p_full"], dtype=float)

    def column(key: str) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in ordering[key]], dtype=float)

    empty_drop = p - column("p_empty")
    usable = empty_drop >= MIN_EMPTY_DROP
    safe = np.where(usable, empty_drop, 1.0)
    comp_aopc = (p[:, None] - np.asarray(ordering["p_comp_aopc"], dtype=float)).mean(axis=1)
    suff_aopc = (p[:, None] - np.asarray(ordering["p_suff_aopc"], dtype=float)).mean(axis=1)
    return {
        "correct": (np.asarray(ordering["predicted"]) == np.asarray(labels)).astype(float),
        "comprehensiveness": p - column("p_comp"),
        "sufficiency": p - column("p_suff"),
        "comprehensiveness_aopc": comp_aopc,
        "sufficiency_aopc": suff_aopc,
        "comprehensiveness_aopc_vs_empty": np.where(usable, comp_aopc / safe, np.nan),
        "sufficiency_aopc_vs_empty": np.where(usable, suff_aopc / safe, np.nan),
        "auprc_visible": column("auprc_visible"),
        "token_f1_visible": column("token_f1_visible"),
    }


def min_max_normalise(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``(values - low) / (high - low)`` per example; NaN where the range is (numerically) empty.

    >>> min_max_normalise(np.array([0.2, 0.5]), np.array([0.0, 0.5]), np.array([0.4, 0.5])).tolist()
    [0.5, nan]
    """
    span = high - low
    ok = span > 1e-9
    return np.where(ok, (values - low) / np.where(ok, span, 1.0), np.nan)


def method_metrics(orderings: dict[str, dict[str, list]], labels: Sequence[int]) -> dict[str, dict[str, np.ndarray]]:
    """Per-example metrics per reported method, for one run and one removal mode.

    ``random`` is the per-example mean over its draws (``random``, ``random_draw1``, ...). NAOPC (Edin et al.
    2025) normalises each example's AOPC by the lowest and highest AOPC of that example *among the orderings
    evaluated for this model* (every method and every random draw): ``(AOPC - min) / (max - min)``, the same for
    sufficiency (0 = the best ordering found, lower is better). The paper's bounds are the extremes over all
    orderings (exact or by beam search); ours are those of the evaluated orderings, an inner approximation.
    """
    raw = {name: per_example_metrics(columns, labels) for name, columns in orderings.items()}
    for key in ("comprehensiveness_aopc", "sufficiency_aopc"):
        stacked = np.stack([m[key] for m in raw.values()])
        low, high = stacked.min(axis=0), stacked.max(axis=0)
        normalised_key = key.replace("_aopc", "_naopc")
        for metrics in raw.values():
            metrics[normalised_key] = min_max_normalise(metrics[key], low, high)
    draws = [name for name in raw if name == "random" or name.startswith("random_draw")]
    methods = {name: metrics for name, metrics in raw.items() if name not in draws}
    if draws:
        with warnings.catch_warnings():  # an example without a value in every draw stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            methods["random"] = {key: np.nanmean(np.stack([raw[d][key] for d in draws]), axis=0)
                                 for key in raw[draws[0]]}
    return methods


# ---- paired bootstrap ---------------------------------------------------------------------------------------------


def paired_bootstrap(differences: np.ndarray, resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict[str, float]:
    """Mean of paired differences and its percentile bootstrap interval, resampling test examples.

    ``differences[s, i]`` = treatment - control on test example ``i`` in seed ``s`` (the two models of a seed
    scored on the same example); NaN marks a pair without a value (left out). The statistic is the mean over all
    (seed, example) pairs. Each resample draws examples with replacement and keeps every seed's pair of each
    drawn example together (seeds are pooled, examples are the resampled unit: the test set is the sample).

    >>> paired_bootstrap(np.array([[0.1, 0.1, 0.1]]), resamples=50)["low"]
    0.1
    """
    d = np.atleast_2d(np.asarray(differences, dtype=float))
    valid = ~np.isnan(d)
    n_examples = d.shape[1]
    if not valid.any():
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "pairs": 0, "examples": n_examples}
    values = np.where(valid, d, 0.0)
    sums, counts = values.sum(axis=0), valid.sum(axis=0)  # per example, over seeds
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_examples, size=(resamples, n_examples))
    boot_counts = counts[draws].sum(axis=1)
    boot = sums[draws].sum(axis=1) / np.where(boot_counts > 0, boot_counts, 1)
    boot = boot[boot_counts > 0]
    alpha = (1.0 - level) / 2.0
    return {
        "mean": float(sums.sum() / counts.sum()),
        "low": float(np.quantile(boot, alpha)),
        "high": float(np.quantile(boot, 1.0 - alpha)),
        "pairs": int(counts.sum()),
        "examples": int((counts > 0).sum()),
    }


def verdict_words(interval: dict[str, float], direction: int) -> str:
    """``better`` / ``worse`` when the whole interval lies on one side of 0 (in the metric's good direction),
    ``negligible`` when it does but the mean difference is below ``NEGLIGIBLE`` (the table's precision), else
    ``within noise``."""
    if any(math.isnan(interval[k]) for k in ("low", "high")):
        return "no data"
    if abs(interval["mean"]) < NEGLIGIBLE and (interval["low"] > 0 or interval["high"] < 0):
        return "negligible"
    if direction * interval["low"] > 0 and direction * interval["high"] > 0:
        return "better"
    if direction * interval["low"] < 0 and direction * interval["high"] < 0:
        return "worse"
    return "within noise"


def method_verdict(vs_baseline: str, vs_random_mask: str | None, treatment: str, baseline: str) -> str:
    """One phrase from the two comparisons of a treatment (e.g. SGT vs plain and vs random-mask)."""
    if vs_random_mask is None:
        return {"better": f"{treatment} beats {baseline} beyond the interval",
                "worse": f"{treatment} is worse than {baseline}"}.get(vs_baseline, "within noise")
    if vs_baseline == "better" and vs_random_mask == "better":
        return f"{treatment} beats {baseline} and random-mask beyond the interval"
    if vs_baseline == "better":
        return (f"{treatment} beats {baseline} but not random-mask (" + vs_random_mask
                + "): masking in general explains the gain")
    if "worse" in (vs_baseline, vs_random_mask):
        which = [name for name, v in ((baseline, vs_baseline), ("random-mask", vs_random_mask)) if v == "worse"]
        return f"{treatment} is worse than {' and '.join(which)}"
    return "within noise"


# ---- aggregation ----------------------------------------------------------------------------------------------------


def _run_metrics(record: dict[str, Any]) -> dict[str, dict[str, dict[str, np.ndarray]]] | None:
    evaluation = record.get("evaluation")
    if not evaluation:
        return None
    labels = evaluation["examples"]["label"]
    return {removal: method_metrics(orderings, labels) for removal, orderings in evaluation["orderings"].items()}


def _correct(run_metrics: dict[str, dict[str, dict[str, np.ndarray]]]) -> np.ndarray:
    """Per test example, 1 when the model's prediction is right (the same in every removal mode and method)."""
    first_removal = next(iter(run_metrics.values()))
    return next(iter(first_removal.values()))["correct"]


def _mean_sd(values: list[float]) -> list[float] | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    return [float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0]


def aggregate(spec: ExperimentSpec, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Arm summaries, paired comparisons with bootstrap intervals, and verdicts, from the run records."""
    result: dict[str, Any] = {"spec": spec.name, "datasets": {}}
    for dataset in spec.datasets:
        records = runs.get(dataset.name, [])
        metric_keys = FAITHFULNESS_METRICS + (AGREEMENT_METRICS if dataset.agreement else ())
        by_run = {(r["arm"], r["seed"]): r for r in records}
        computed = {key: _run_metrics(r) for key, r in by_run.items()}
        seeds_evaluated = sorted({s for (a, s), m in computed.items() if m is not None})
        failed = sorted({r["seed"] for r in records if r.get("training") and not r["gate_passed"]})
        arms = {}
        for arm in spec.arms:
            trained = [by_run[(arm, s)]["training"] for s in spec.seeds if (arm, s) in by_run
                       and by_run[(arm, s)].get("training")]
            accuracy = [float(np.mean(_correct(computed[(arm, s)]))) for s in seeds_evaluated if computed.get((arm, s))]
            arms[arm] = {
                "settings": spec.arms[arm],
                "val_accuracy": _mean_sd([t["val_accuracy"] for t in trained]),
                "test_accuracy": _mean_sd(accuracy),
                "seconds_per_epoch": _mean_sd([t.get("seconds_per_epoch") for t in trained]),
                "seeds_trained": [t["seed"] for t in trained],
                "seeds_evaluated": [s for s in seeds_evaluated if computed.get((arm, s))],
            }
        comparisons = []
        for treatment, control in spec.compared_pairs():
            seeds = [s for s in seeds_evaluated if computed.get((treatment, s)) and computed.get((control, s))]
            if not seeds:
                continue
            first = computed[(treatment, seeds[0])]
            accuracy_diff = np.stack([_correct(computed[(treatment, s)]) - _correct(computed[(control, s)])
                                      for s in seeds])
            entry = {"treatment": treatment, "control": control, "seeds": seeds,
                     "accuracy": paired_bootstrap(accuracy_diff, spec.bootstrap_resamples), "rows": []}
            for removal, methods in first.items():
                for method in methods:
                    for key, title, direction in metric_keys:
                        t = np.stack([computed[(treatment, s)][removal][method][key] for s in seeds])
                        c = np.stack([computed[(control, s)][removal][method][key] for s in seeds])
                        interval = paired_bootstrap(t - c, spec.bootstrap_resamples)
                        entry["rows"].append({
                            "removal": removal, "method": method, "metric": key, "title": title,
                            "direction": direction, "treatment_mean": float(np.nanmean(t)) if np.isfinite(t).any()
                            else None, "control_mean": float(np.nanmean(c)) if np.isfinite(c).any() else None,
                            "difference": interval, "outcome": verdict_words(interval, direction),
                        })
            comparisons.append(entry)
        result["datasets"][dataset.name] = {
            "settings": asdict(dataset),
            "learning_rate": next((r["learning_rate"] for r in records), None),
            "seeds": list(spec.seeds), "seeds_failed_gate": failed, "seeds_evaluated": seeds_evaluated,
            "arms": arms, "comparisons": comparisons,
            "verdicts": verdicts(spec, comparisons),
            "missing": [f"{arm}_seed{seed}" for seed in spec.seeds if seed not in failed for arm in spec.arms
                        if not computed.get((arm, seed))],
        }
    return result


def verdicts(spec: ExperimentSpec, comparisons: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Per treatment, method, removal and verdict metric: the phrase from its two comparisons."""
    out = []
    outcome = {(c["treatment"], c["control"], r["removal"], r["method"], r["metric"]): r["outcome"]
               for c in comparisons for r in c["rows"]}
    treatments = list(dict.fromkeys(c["treatment"] for c in comparisons))
    for treatment in treatments:
        for (t, control, removal, method, metric), vs_baseline in outcome.items():
            if t != treatment or control != spec.baseline or metric not in VERDICT_METRICS:
                continue
            vs_random = outcome.get((treatment, "random_mask", removal, method, metric))
            out.append({"treatment": treatment, "removal": removal, "method": method, "metric": metric,
                        "verdict": method_verdict(vs_baseline, vs_random, treatment, spec.baseline)})
    return out


# ---- output -----------------------------------------------------------------------------------------------------------


def _fmt(value: list[float] | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"


def _interval(d: dict[str, float]) -> str:
    if math.isnan(d["mean"]):
        return "-"
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


METHOD_TITLES = {"gradient_l2": "Gradient (l2, the trained score)", "gradient": "Gradient × input",
                 "integrated_gradients": "Integrated Gradients", "smoothgrad": "SmoothGrad",
                 "occlusion": "Occlusion", "random": "Random"}

SCHEME = (
    "Intervals: paired bootstrap 95 % percentile intervals of treatment − control, pairing the two models of a "
    "seed on the same test example, pooling seeds, resampling test examples with replacement "
    "(all seeds of a drawn example together). Outcome 'better'/'worse': the whole interval on one side of 0 in "
    "the metric's good direction (↑ higher is better, ↓ lower is better). 'comp/suff AOPC / empty drop': AOPC "
    "divided by the example's drop when every seen word is removed (Carton et al. 2020), examples with a drop "
    f"below {MIN_EMPTY_DROP} left out. 'NAOPC (evaluated bounds)': per-example min–max normalisation of AOPC "
    "(Edin et al. 2025) with the bounds taken over the orderings evaluated for that model (all methods and random "
    "draws), not over all orderings as in the paper."
)


def markdown(spec: ExperimentSpec, result: dict[str, Any]) -> str:
    lines = [f"# Experiment `{spec.name}`", "", SCHEME, ""]
    for name, data in result["datasets"].items():
        lines += [f"## {name}", ""]
        if data.get("skipped"):
            lines += [f"**Not run: {data['skipped']}.**", ""]
        lr = data["learning_rate"]
        lines.append(f"Learning rate {lr:g} (chosen on plain validation, seed {spec.seeds[0]}); seeds "
                     f"{data['seeds']}; evaluated {data['seeds_evaluated']}." if lr is not None else
                     "No learning rate selected yet.")
        if data["seeds_failed_gate"]:
            lines.append(f"**Seeds {data['seeds_failed_gate']} failed the convergence gate (plain validation "
                         f"accuracy < {data['settings']['gate']}): not trained further, their paired comparisons "
                         "dropped.**")
        if data["missing"]:
            lines.append(f"Not finished yet (left out): {', '.join(data['missing'])}.")
        lines += ["", "| arm | val accuracy | test accuracy | s/epoch | seeds evaluated |", "|---|---|---|---|---|"]
        for arm, info in data["arms"].items():
            lines.append(f"| {arm} | {_fmt(info['val_accuracy'])} | {_fmt(info['test_accuracy'])} | "
                         f"{_fmt(info['seconds_per_epoch'], 0)} | {info['seeds_evaluated']} |")
        lines.append("")
        for comparison in data["comparisons"]:
            lines.append(f"Accuracy cost, {comparison['treatment']} − {comparison['control']}: "
                         f"{_interval(comparison['accuracy'])} (seeds {comparison['seeds']}).")
        lines.append("")
        if data["verdicts"]:
            lines += verdict_table(data["verdicts"])
        for comparison in data["comparisons"]:
            t, c = comparison["treatment"], comparison["control"]
            lines += [f"### {t} − {c}", "", f"| removal | method | metric | {c} | {t} | {t} − {c} [95 % CI] | outcome |",
                      "|---|---|---|---|---|---|---|"]
            for row in comparison["rows"]:
                arrow = "↑" if row["direction"] > 0 else "↓"
                cells = [row["removal"], row["method"], f"{row['title']} {arrow}",
                         "-" if row["control_mean"] is None else f"{row['control_mean']:.3f}",
                         "-" if row["treatment_mean"] is None else f"{row['treatment_mean']:.3f}",
                         _interval(row["difference"]), row["outcome"]]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def verdict_table(verdicts: list[dict[str, str]]) -> list[str]:
    """Markdown lines: per treatment, a row per method and a column per (verdict metric, removal)."""
    lines = []
    for treatment in dict.fromkeys(v["treatment"] for v in verdicts):
        mine = [v for v in verdicts if v["treatment"] == treatment]
        columns = list(dict.fromkeys((v["metric"], v["removal"]) for v in mine))
        cells = {(v["method"], v["metric"], v["removal"]): v["verdict"] for v in mine}
        titles = [f"{next(t for k, t, _ in ALL_METRICS if k == m)} ({r})" for m, r in columns]
        lines += [f"### Verdicts: {treatment}", "", "| method | " + " | ".join(titles) + " |",
                  "|---|" + "---|" * len(columns)]
        for method in dict.fromkeys(v["method"] for v in mine):
            row = [cells.get((method, m, r), "-") for m, r in columns]
            lines.append(f"| {METHOD_TITLES.get(method, method)} | " + " | ".join(row) + " |")
        lines.append("")
    return lines


def plot(result: dict[str, Any], path: Path, metrics: Sequence[str] = VERDICT_METRICS) -> Path | None:
    """A forest plot per dataset: treatment − control with its interval, per method and verdict metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(name, metric) for name, data in result["datasets"].items() if data["comparisons"] for metric in metrics
              if any(r["metric"] == metric for c in data["comparisons"] for r in c["rows"])]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.5), squeeze=False)
    for ax, (name, metric) in zip(axes[0], panels, strict=True):
        data = result["datasets"][name]
        labels, y = [], 0
        for comparison in data["comparisons"]:
            for row in comparison["rows"]:
                if row["metric"] != metric:
                    continue
                d = row["difference"]
                if math.isnan(d["mean"]):
                    continue
                color = {"better": "tab:green", "worse": "tab:red"}.get(row["outcome"], "tab:gray")
                ax.errorbar(d["mean"], y, xerr=[[d["mean"] - d["low"]], [d["high"] - d["mean"]]], fmt="o",
                            color=color, capsize=3)
                labels.append(f"{comparison['treatment']}−{comparison['control']} {row['method']} ({row['removal']})")
                y += 1
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=6)
        title = next(t for k, t, _ in ALL_METRICS if k == metric)
        arrow = "↑" if next(d for k, _, d in ALL_METRICS if k == metric) > 0 else "↓"
        ax.set_title(f"{name}: {title} {arrow}", fontsize=9)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_results(spec: ExperimentSpec, result: dict[str, Any], out: Path) -> None:
    write_json(out / "results.json", result)
    (out / "results.md").write_text(markdown(spec, result))
    plot(result, out / "results.png")


# ---- command line ---------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgt-nlp experiment",
        description="Train and evaluate arms (plain, SGT, random-mask, ...) x seeds x datasets, with learning-rate "
        "selection on the plain arm, a convergence gate, evaluation on the full test split and paired bootstrap "
        "intervals; resumes after interruption. Presets: " + ", ".join(PRESETS) + ".",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=list(PRESETS), help="a built-in protocol")
    source.add_argument("--spec", help="a JSON or YAML spec file (may start from a preset with 'preset: <name>')")
    parser.add_argument("--output_dir", help="small records and results (commit it to resume in another session)")
    parser.add_argument("--work_dir", help="models, checkpoints, raw evaluations (default: runs/experiment_<name>)")
    parser.add_argument("--data_root", default=str(SHARED_DATA), help="where relative dataset paths are read")
    parser.add_argument("--datasets", default=None, help="comma-separated subset of the spec's datasets")
    parser.add_argument("--seeds", default=None, help="override the seeds, e.g. 0,1")
    parser.add_argument("--keep_models", action="store_true", help="keep trained models in work_dir")
    parser.add_argument("--only_finished", action="store_true",
                        help="train and evaluate nothing: aggregate the finished runs and list the missing ones")
    parser.add_argument("--export_model", nargs=2, metavar=("MODEL", "FOLDER"),
                        help="write an fp16 copy of MODEL (a folder or 'minilm') to FOLDER and exit (for the gpu "
                        "preset, whose machine has no hub: carry FOLDER)")
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.export_model:
        print(export_half_precision_model(*args.export_model))
        return
    if not args.preset and not args.spec:
        parser.error("give --preset or --spec")
    if not args.output_dir:
        parser.error("give --output_dir")
    try:
        spec = PRESETS[args.preset] if args.preset else load_spec(args.spec)
        if args.datasets:
            wanted = args.datasets.split(",")
            unknown = [d for d in wanted if d not in {x.name for x in spec.datasets}]
            if unknown:
                raise SpecError(f"--datasets: {unknown} not in the spec ({[d.name for d in spec.datasets]})")
            spec = replace(spec, datasets=tuple(d for d in spec.datasets if d.name in wanted))
        if args.seeds:
            spec = replace(spec, seeds=tuple(int(s) for s in args.seeds.split(",")))
        validate_spec(spec, args.spec or f"preset {args.preset}")
    except SpecError as exc:
        parser.error(str(exc))
    experiment = Experiment(spec, args.output_dir, args.work_dir or f"runs/experiment_{spec.name}",
                            data_root=args.data_root, keep_models=args.keep_models, only_finished=args.only_finished)
    experiment.run()
    print((Path(args.output_dir) / "results.md").read_text())
