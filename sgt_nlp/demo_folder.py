"""The demo's folder: short names for the README's commands (``seed<s>/``), and removing a demo's own files
(never anything else) when another demo replaces it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from .experiments import ExperimentSpec, SpecError
from .experiments.spec import check_plain_name
from .report.build import PLOT_FILES

#: what the demo writes at the top of its folder, besides one folder per dataset and seed<s>/
DEMO_FILES = (
    "spec.json",
    "results.md",
    "results.json",
    "results.png",
    "verdict.md",
    "report.html",
    "work",
    *PLOT_FILES.values(),
)


def remove_demo_outputs(out: Path, previous: dict[str, Any]) -> list[str]:
    """Delete what a demo with the settings ``previous`` (its ``spec.json``) wrote into ``out``, and nothing
    else: the files above, its datasets' record folders and its ``seed<s>`` link folders. Names are checked
    as a spec's are (``spec.json`` is a file anyone could have edited), so nothing outside ``out`` goes."""
    datasets = previous.get("datasets") or []
    seeds = previous.get("seeds") or []
    names: list[str] = []
    for i, dataset in enumerate(datasets):
        name = dataset.get("name") if isinstance(dataset, dict) else dataset
        check_plain_name(f"{out / 'spec.json'}: datasets[{i}].name", name)
        names.append(str(name))
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise SpecError(f"{out / 'spec.json'}: seeds: integers needed, got {seeds!r}")
    candidates = [*DEMO_FILES, *names, *(f"seed{s}" for s in seeds)]
    removed = []
    for name in candidates:
        path = out / name
        if not (path.exists() or path.is_symlink()):  # names are plain: path is directly in out
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(name)
    return removed


def publish_shortcuts(out: Path, spec: ExperimentSpec, result: dict[str, Any]) -> None:
    """Short names for what the README's next commands use: ``<out>/seed<s>/{data, initial_model, model_<arm>,
    eval_<arm>}``, relative links into the runner's work folder."""
    dataset = spec.datasets[0]
    lr = result["datasets"][dataset.name]["learning_rate"]
    if lr is None:
        return
    work = out / "work" / dataset.name
    for seed in spec.seeds:
        folder = out / f"seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        targets = {"data": work / "data", "initial_model": work / f"tiny_seed{seed}"}
        for arm in spec.arms:
            run = work / f"{arm}_seed{seed}_lr{lr:g}"
            targets[f"model_{arm}"], targets[f"eval_{arm}"] = run / "model", run / "eval" / "main"
        for name, target in targets.items():
            link = folder / name
            if link.is_symlink():
                link.unlink()
            if target.exists() and not link.exists():
                link.symlink_to(os.path.relpath(target, folder), target_is_directory=True)
