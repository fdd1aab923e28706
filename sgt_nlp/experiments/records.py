"""Records of an experiment's runs: ids, atomic JSON files, the spec-change check, compact evaluations."""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: the layout of train.json and eval.json.gz (written into each, and into spec.json)
RECORD_VERSION = 1


def run_id(arm: str, seed: int, learning_rate: float) -> str:
    """A run's folder name, e.g. ``plain_seed0_lr0.0001``."""
    return f"{arm}_seed{seed}_lr{learning_rate:g}"


def parse_run_id(name: str) -> tuple[str, int, float] | None:
    """``(arm, seed, learning rate)`` of a run folder's name made by :func:`run_id`, None for another name."""
    match = re.fullmatch(r"(?P<arm>.+)_seed(?P<seed>\d+)_lr(?P<lr>[^_]+)", name)
    if match is None:
        return None
    try:
        return match["arm"], int(match["seed"]), float(match["lr"])
    except ValueError:
        return None


def read_json(path: Path) -> dict | None:
    """A JSON record (gzipped when the name ends in ``.gz``), or None when there is none."""
    if not path.is_file():
        return None
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return json.load(handle)
    return json.loads(path.read_text())


def write_json(path: Path, data: Any) -> None:
    """A JSON record (gzipped, compact, for ``.gz``), written to a temporary name first so that an interrupted
    write never leaves a record that looks finished. The temporary name is the writer's own (process and
    thread), because processes started together with ``--arms`` write ``spec.json`` at the same moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    if path.suffix == ".gz":
        with gzip.open(tmp, "wt", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"))
    else:
        tmp.write_text(json.dumps(data, indent=2, default=list))
    os.replace(tmp, path)


#: settings that change no record: seeds may be added, the gate is re-read, intervals recomputed; ``methods``
#: is checked per evaluation record instead (:func:`missing_methods`): a record holding more methods serves a
#: spec with fewer (the ablation reads the cpu protocol's SST-2 runs), one holding fewer is completed
FREE_FIELDS = (
    "name",
    "seeds",
    "bootstrap_resamples",
    "comparisons",
    "eval_batch_size",
    "eval_processes",
    "record_version",
    "methods",
    # NAOPC's searched bounds add a column; a record without them still serves every other metric, and its
    # NAOPC with all-order bounds is reported as not measured
    "naopc_bounds",
    "bounds_beam_width",
)
FREE_DATASET_FIELDS = ("gate", "learning_rates", "bounds_examples")


def spec_changes(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The fields whose change would make the records of ``previous`` (a spec.json) wrong for ``current``.

    Datasets and arms are compared where both specs have them (a spec may add or leave out some)."""
    changed = [
        key
        for key in current
        if key not in (*FREE_FIELDS, "datasets", "arms") and previous.get(key) != current[key]
    ]
    for arm, settings in current["arms"].items():
        if arm in previous.get("arms", {}) and previous["arms"][arm] != settings:
            changed.append(f"arms.{arm}")
    old_datasets = {d["name"]: d for d in previous.get("datasets", [])}
    for dataset in current["datasets"]:
        old = old_datasets.get(dataset["name"])
        if old is None:
            continue
        changed += [
            f"datasets.{dataset['name']}.{key}"
            for key in dataset
            if key not in FREE_DATASET_FIELDS and old.get(key) != dataset[key]
        ]
    return changed


def ordering_names(methods: Sequence[str], random_draws: int) -> list[str]:
    """The orderings (keys of an evaluation record) that ``methods`` make: ``random`` makes one per draw."""
    names: list[str] = []
    for method in methods:
        if method == "random":
            names += ["random", *(f"random_draw{draw}" for draw in range(1, random_draws))]
        else:
            names.append(method)
    return names


def missing_methods(record: dict[str, Any], methods: Sequence[str], random_draws: int) -> tuple[str, ...]:
    """The ``methods`` with an ordering absent from some removal mode of an evaluation record."""
    return tuple(
        method
        for method in methods
        if any(
            name not in orderings
            for orderings in record["orderings"].values()
            for name in ordering_names((method,), random_draws)
        )
    )


def select_orderings(record: dict[str, Any], methods: Sequence[str], random_draws: int) -> dict[str, Any]:
    """The evaluation record with only the orderings of ``methods``.

    NAOPC's bounds are the extremes over a run's orderings, so every run of one table must be normalised
    over the same orderings, whatever else its record holds."""
    wanted = set(ordering_names(methods, random_draws))
    orderings = {  # in the record's order, which the tables follow
        removal: {name: values for name, values in columns.items() if name in wanted}
        for removal, columns in record["orderings"].items()
    }
    return {**record, "orderings": orderings}


def example_columns(lines: list[dict[str, Any]]) -> dict[str, list]:
    """What an evaluation record holds once per example (the same for every ordering)."""
    return {
        "annotation_id": [e["annotation_id"] for e in lines],
        "label": [int(e["label"]) for e in lines],
        "words_kept": [int(e["words_kept"]) for e in lines],
        "aopc_thresholds": lines[0]["aopc_thresholds"] if lines else [],
    }


def bound_columns(lines: list[dict[str, Any]]) -> dict[str, list] | None:
    """The searched NAOPC bounds of one removal mode's ``per_example.jsonl`` lines as columns (None for an
    example without them), or None when no example has them."""
    found = [e.get("aopc_bounds") for e in lines]
    if not any(found):
        return None
    keys = ("comprehensiveness_aopc_low", "comprehensiveness_aopc_high", "sufficiency_aopc_low")
    columns: dict[str, list] = {
        key: [None if f is None else round(float(f[key]), 6) for f in found]
        for key in (*keys, "sufficiency_aopc_high")
    }
    columns["search"] = [None if f is None else f["search"] for f in found]
    columns["model_passes"] = [None if f is None else int(f["model_passes"]) for f in found]
    return columns


def compact_ordering(lines: list[dict[str, Any]]) -> dict[str, list]:
    """One ordering's ``per_example.jsonl`` lines as columns of p(ŷ), ŷ the prediction on the full input,
    rounded to 6 decimals: everything the metrics need, a few MB gzipped for thousands of examples."""

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


def record_precision(record: dict[str, Any]) -> str:
    """The precision a training or evaluation record was made in; ``fp32`` for records written before
    precision was recorded (the runner trained and evaluated in fp32 on CPUs then)."""
    return str(record.get("precision", "fp32"))


def check_precisions(runs: dict[str, list[dict[str, Any]]]) -> None:
    """Refuse to compare, on one dataset, runs whose training or evaluation records differ in precision:
    bf16 and fp32 numbers are not one protocol (the difference would be read as an effect of the arm)."""
    for dataset, records in runs.items():
        for stage in ("training", "evaluation"):
            found: dict[str, list[str]] = {}
            for record in records:
                if record.get(stage) is not None:
                    found.setdefault(record_precision(record[stage]), []).append(record["run"])
            if len(found) > 1:
                listing = "; ".join(f"{p}: {', '.join(sorted(set(r)))}" for p, r in sorted(found.items()))
                raise ValueError(
                    f"{dataset}: {stage} records of different precision ({listing}) cannot be compared "
                    "as one protocol; run them again in one precision (another --output_dir, or delete "
                    "the records of the other one)"
                )
