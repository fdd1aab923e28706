"""What an experiment writes to ``output_dir`` beside its run records: ``spec.json`` (checked, then merged)
and the aggregated ``results.{json,md,png}``.

Several invocations share one ``output_dir`` (other arms, datasets or seeds; a second spec such as the
ablation over the cpu protocol's runs), so ``spec.json`` keeps the union of what they ran, and a second spec's
table goes to ``results_<name>.*`` instead of overwriting the first one's.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from .records import RECORD_VERSION, parse_run_id, read_json, spec_changes, write_json
from .spec import ExperimentSpec, SpecError
from .statistics import SCHEME, VERDICT_METRICS

#: how one invocation runs or aggregates, not what its records hold: left out of ``spec.json``, so that the
#: file describes the folder's records whichever spec last wrote to it (``results.json`` names its own spec)
INVOCATION_FIELDS = ("bootstrap_resamples", "comparisons", "eval_batch_size", "eval_processes")


def record_spec(out: Path, spec: ExperimentSpec, write: bool = True) -> None:
    """Refuses ``out`` when its ``spec.json`` was made with settings that would make its records wrong for
    ``spec`` (:func:`.records.spec_changes`); else, when ``write``, saves the spec merged with the file's:
    datasets, arms, seeds and methods this invocation does not run are kept, and ``name`` stays that of the
    spec that made the folder (the demo reads it to tell its own folder from another experiment's)."""
    path = out / "spec.json"
    current = {"record_version": RECORD_VERSION, **asdict(spec)}
    for key in INVOCATION_FIELDS:
        current.pop(key)
    previous = read_json(path)
    if previous is not None:
        changed = spec_changes(previous, json.loads(json.dumps(current, default=list)))
        if changed:
            raise SpecError(
                f"{path}: the records there were made with other settings ({', '.join(changed)}); use "
                "another --output_dir (or delete that one) to run this spec"
            )
    if not write:
        return
    if previous is not None:
        names = {d["name"] for d in current["datasets"]}
        kept = [d for d in previous["datasets"] if d["name"] not in names]
        current["datasets"] = [*current["datasets"], *kept]
        current["arms"] = {**previous.get("arms", {}), **current["arms"]}
        current["seeds"] = sorted({*previous.get("seeds", []), *current["seeds"]})
        current["methods"] = list(dict.fromkeys([*previous.get("methods", []), *current["methods"]]))
        current["name"] = previous.get("name", current["name"])
    write_json(path, current)


def recorded_seeds(out: Path, spec: ExperimentSpec) -> set[int]:
    """The seeds with a training record of one of ``spec``'s arms on one of its datasets in ``out``."""
    seeds = set()
    for dataset in spec.datasets:
        for path in (out / dataset.name).glob("*_seed*_lr*/train.json"):
            parsed = parse_run_id(path.parent.name)
            if parsed and parsed[0] in spec.arms:
                seeds.add(parsed[1])
    return seeds


def results_stem(out: Path, spec_name: str) -> str:
    """``results``, unless ``out/results.json`` was written by a spec of another name: then
    ``results_<name>``, so that a second spec sharing the records (the ablation over the cpu protocol's
    SST-2 runs) never overwrites the first one's table."""
    existing = read_json(out / "results.json")
    return "results" if existing is None or existing.get("spec") == spec_name else f"results_{spec_name}"


def write_results(spec: ExperimentSpec, result: dict[str, Any], out: Path, stem: str = "results") -> None:
    """``<stem>.json`` (the aggregate), ``<stem>.md`` (tables, verdicts) and ``<stem>.png`` (intervals)."""
    from ..report.experiment import markdown, plot  # matplotlib: imported only when results are written

    write_json(out / f"{stem}.json", result)
    atomic_write_text(out / f"{stem}.md", markdown(result, SCHEME))
    plot(result, out / f"{stem}.png", VERDICT_METRICS)
