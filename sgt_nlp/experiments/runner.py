"""The experiment runner: learning-rate choice, convergence gate, training, evaluation and resume.

For each dataset of a spec:

1. **Learning rate** -- the *plain* arm is trained on the first seed with every candidate rate; the rate with
   the best validation accuracy is frozen for every arm and seed (the other arms never see the candidates).
2. **Training** -- every arm x seed from the same pretrained weights, model selection on validation. The
   **convergence gate**: a seed whose plain run ends below ``DatasetSpec.gate`` validation accuracy is failed;
   its other arms are not trained and its paired comparisons are dropped (the table says so).
3. **Evaluation** -- every arm on the same full test split, with every method under every removal mode, via
   `sgt_nlp.evaluation.evaluate_folder` with ``per_example=True``.
4. **Aggregation** -- :func:`sgt_nlp.experiments.statistics.aggregate`, written as ``results.{json,md,png}``.

Resume across sessions: small records go to ``output_dir`` (meant to be committed), heavy things (models,
checkpoints, raw evaluation folders) to ``work_dir`` (deleted after a run is evaluated, unless
``keep_models``). A stage whose record exists is never run again. Processes given different ``arms`` may
share ``output_dir`` and ``work_dir``: each runs only its arms and reads the other records. Record layout
(``RECORD_VERSION``)::

    output_dir/spec.json                                  the spec the records were made with
    output_dir/<dataset>/lr_selection.json                the learning-rate choice
    output_dir/<dataset>/<arm>_seed<s>_lr<lr>/train.json    training: val accuracy, s/epoch, gate outcome
    output_dir/<dataset>/<arm>_seed<s>_lr<lr>/eval.json.gz  per-example scores (``records.compact_ordering``)
    output_dir/results.{md,json,png}                      the aggregated table, verdicts and plot
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..files import is_inside
from .data import SHARED_DATA, prepare_data
from .output import record_spec, recorded_seeds, results_stem, write_results
from .records import (
    RECORD_VERSION,
    check_precisions,
    missing_methods,
    read_json,
    record_precision,
    run_id,
    select_orderings,
    write_json,
)
from .spec import DatasetSpec, ExperimentSpec, SpecError
from .stages import evaluate_run, train_run
from .statistics import aggregate

logger = logging.getLogger(__name__)

#: the file that marks a run's work folder as made by the runner (the only folders it ever deletes)
RUN_MARKER = ".sgt_nlp_experiment_run"


@dataclass
class Stage:
    """Progress lines: stage, dataset, arm, seed and the time since the experiment started."""

    started: float = field(default_factory=time.perf_counter)

    def log(self, stage: str, dataset: str, arm: str = "-", seed: int | str = "-", detail: str = "") -> None:
        """One progress line at INFO level."""
        elapsed = time.perf_counter() - self.started
        logger.info(
            "[%s] %-9s dataset=%s arm=%s seed=%s elapsed=%.0fs %s",
            time.strftime("%H:%M:%S"),
            stage,
            dataset,
            arm,
            seed,
            elapsed,
            detail,
        )


def truncation_supported() -> bool:
    """Whether training and evaluation both accept a ``truncation`` setting (head/tail/head_tail)."""
    from ..evaluation import EvaluationConfig
    from ..finetune_data import DataArguments

    return all("truncation" in {f.name for f in fields(cls)} for cls in (DataArguments, EvaluationConfig))


class Experiment:
    """Runs (or resumes) a spec: ``run()`` trains and evaluates what is missing, then aggregates."""

    def __init__(
        self,
        spec: ExperimentSpec,
        output_dir: str | Path,
        work_dir: str | Path,
        data_root: str | Path = SHARED_DATA,
        keep_models: bool = False,
        only_finished: bool = False,
        arms: tuple[str, ...] | None = None,
        wait_seconds: float = 0.0,
        datasets: tuple[str, ...] | None = None,
        table_seeds: tuple[int, ...] | None = None,
    ) -> None:
        self.spec, self.out, self.work = spec, Path(output_dir), Path(work_dir)
        self.data_root, self.keep_models, self.only_finished = Path(data_root), keep_models, only_finished
        unknown = sorted(set(arms or ()) - set(spec.arms))
        if unknown:
            raise SpecError(f"--arms: {unknown} not in the spec's arms ({list(spec.arms)})")
        unknown = sorted(set(datasets or ()) - {d.name for d in spec.datasets})
        if unknown:
            raise SpecError(
                f"--datasets: {unknown} not in the spec's datasets ({[d.name for d in spec.datasets]})"
            )
        # the arms this invocation trains and evaluates (None: all); the others' records are only read, so
        # that processes running different arms side by side share one output_dir and one results table
        self.arms = arms
        # likewise the datasets it runs (None: all): the others' records are read, so the table a process
        # writes covers every dataset of the spec, whichever process runs which
        self.datasets = datasets
        self.progress = Stage()
        # seconds between looks for the baseline's records (learning rate, gate) that another process is
        # making; 0: a seed without them is left for a later invocation
        self.wait_seconds = wait_seconds
        self.waited: set[tuple[str, str]] = set()
        self.results_path = self.out / "results.md"  # the table this invocation wrote (set by run())
        # the seeds the table covers (read where this invocation does not run them): given, e.g. the spec
        # file's seeds when --seeds runs a part of them; None: the spec's and every seed recorded beside them.
        # A spec sharing records with a wider one (the ablation's seeds 0-1 beside the cpu runs' 0-2) gives
        # its own, so that every comparison of its table covers the same seeds
        self.given_table_seeds = table_seeds
        self.table_seeds = spec.seeds  # set by run()
        self.trained_runs: list[str] = []  # run ids trained by this invocation (tests check resume with it)
        self.evaluated_runs: list[str] = []

    def runs_dataset(self, dataset: DatasetSpec) -> bool:
        """Whether this invocation may train and evaluate anything on ``dataset``; else it only reads."""
        return not self.only_finished and (self.datasets is None or dataset.name in self.datasets)

    def runs_arm(self, dataset: DatasetSpec, arm: str, seed: int | None = None) -> bool:
        """Whether this invocation may train and evaluate ``arm`` (on ``seed``) on ``dataset``; else its
        records are only read. Seeds outside the spec's (recorded by other invocations) are always only
        read."""
        return (
            self.runs_dataset(dataset)
            and (self.arms is None or arm in self.arms)
            and (seed is None or seed in self.spec.seeds)
        )

    # -- paths ---------------------------------------------------------------------------------------------

    def record_dir(self, dataset: DatasetSpec, rid: str) -> Path:
        """Where a run's records go (``output_dir/<dataset>/<run id>``)."""
        return self.out / dataset.name / rid

    def work_run(self, dataset: DatasetSpec, rid: str) -> Path:
        """Where a run's model and raw evaluation go (``work_dir/<dataset>/<run id>``)."""
        return self.work / dataset.name / rid

    def claim_work_run(self, folder: Path) -> None:
        """Mark ``folder`` as this runner's (creating it), or refuse one that exists without the mark: the
        runner writes, replaces and later deletes what is in it, which must never be someone else's."""
        if not is_inside(folder, self.work):
            raise SpecError(f"{folder} is outside --work_dir {self.work}: refused")
        if folder.exists() and not (folder / RUN_MARKER).is_file():
            raise SpecError(
                f"{folder} exists and was not made by sgt-nlp experiment (no {RUN_MARKER}): refusing to "
                "write or delete in it; move it away or choose another --work_dir"
            )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RUN_MARKER).touch()

    def remove_work_run(self, folder: Path) -> None:
        """Delete a run's work folder, only when the runner made it (its mark) and it lies in work_dir."""
        if not folder.exists():
            return
        if not is_inside(folder, self.work) or not (folder / RUN_MARKER).is_file():
            logger.warning("%s: not deleted (not made by sgt-nlp experiment inside %s)", folder, self.work)
            return
        shutil.rmtree(folder, ignore_errors=True)

    # -- the whole experiment ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Refuses records made with other settings, runs what is missing, aggregates, writes the results."""
        import torch

        if torch.cuda.is_available():  # TF32 matmuls for fp32 passes (mixed_precision no)
            torch.backends.cuda.matmul.allow_tf32 = True
        self.out.mkdir(parents=True, exist_ok=True)
        record_spec(self.out, self.spec, write=not self.only_finished)
        # --seeds 1 beside seed 0's records: the table covers the spec's seeds (read, not run), as it covers
        # every arm under --arms
        given = self.given_table_seeds
        read = set(given) if given is not None else recorded_seeds(self.out, self.spec)
        self.table_seeds = tuple(sorted(read | set(self.spec.seeds)))
        runs: dict[str, list[dict[str, Any]]] = {}
        skipped: dict[str, str] = {}
        for dataset in self.spec.datasets:
            if dataset.truncation != "head" and not truncation_supported():
                skipped[dataset.name] = (
                    f"truncation={dataset.truncation!r} needs DataArguments.truncation "
                    "and EvaluationConfig.truncation, which this version of sgt_nlp "
                    "lacks"
                )
                logger.error("dataset %s left out: %s", dataset.name, skipped[dataset.name])
                continue
            runs[dataset.name] = self.run_dataset(dataset)
        check_precisions(runs)  # bf16 and fp32 records are never compared as one protocol
        result = aggregate(replace(self.spec, seeds=self.table_seeds), runs)
        for name, reason in skipped.items():
            result["datasets"][name]["skipped"] = reason
        self.results_path = self.out / f"{results_stem(self.out, self.spec.name)}.md"
        write_results(self.spec, result, self.out, self.results_path.stem)
        return result

    def run_dataset(self, dataset: DatasetSpec) -> list[dict[str, Any]]:
        """Learning rate, then every arm x seed: train (gated), evaluate; returns the records found."""
        work = self.work / dataset.name
        data_dir = prepare_data(dataset, self.data_root, work) if self.runs_dataset(dataset) else None
        lr = self.select_learning_rate(dataset, data_dir)
        while lr is None and self.wait_for_baseline(dataset, "learning-rate choice", self.spec.seeds[0]):
            lr = self.select_learning_rate(dataset, data_dir)
        records = []
        for seed in self.table_seeds:
            if lr is None:
                break
            plain = self.train(dataset, data_dir, self.spec.baseline, seed, lr)
            while plain is None and self.wait_for_baseline(dataset, f"seed {seed}", seed):
                plain = self.train(dataset, data_dir, self.spec.baseline, seed, lr)
            gate_passed = plain is not None and plain["val_accuracy"] >= dataset.gate  # the spec's gate, now
            # the baseline decides: without its run this invocation can only say so
            if plain is None and self.runs_dataset(dataset) and seed in self.spec.seeds:
                self.progress.log(
                    "skip",
                    dataset.name,
                    self.spec.baseline,
                    seed,
                    "not trained yet: run its arm first (or give --wait_seconds)",
                )
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
                    self.progress.log(
                        "gate", dataset.name, arm, seed, "plain run below the gate: seed left out"
                    )
                records.append(record)
        return records

    def wait_for_baseline(self, dataset: DatasetSpec, what: str, seed: int) -> bool:
        """Sleeps ``wait_seconds`` and returns True when this invocation waits for another process to train
        the baseline (``--arms`` without it, ``wait_seconds`` > 0); False when the work is left for later."""
        if (
            self.wait_seconds <= 0
            or seed not in self.spec.seeds
            or not self.runs_dataset(dataset)
            or self.runs_arm(dataset, self.spec.baseline)
        ):
            return False
        if (dataset.name, what) not in self.waited:  # one line per thing awaited, not one per look
            self.waited.add((dataset.name, what))
            self.progress.log(
                "wait",
                dataset.name,
                self.spec.baseline,
                "-",
                f"{what}: looking every {self.wait_seconds:g} s",
            )
        time.sleep(self.wait_seconds)
        return True

    # -- learning rate -------------------------------------------------------------------------------------

    def select_learning_rate(self, dataset: DatasetSpec, data_dir: Path | None) -> float | None:
        """The candidate with the best plain validation accuracy on the first seed (the first on a tie).

        A recorded choice over the same candidates is kept whichever seed made it: ``--seeds 1,2`` runs the
        later seeds at the rate seed 0 chose, instead of choosing again on seed 1."""
        seed = self.spec.seeds[0]
        recorded = read_json(self.out / dataset.name / "lr_selection.json")
        if recorded and recorded["candidates"] == list(dataset.learning_rates):
            return recorded["chosen"]  # frozen once made: a retrained candidate or later seed never moves it
        accuracies = {}
        for lr in dataset.learning_rates:
            training = self.train(dataset, data_dir, self.spec.baseline, seed, lr, selecting=True)
            if training is None:
                return None  # not trained yet, and not run by this invocation
            accuracies[lr] = training["val_accuracy"]
        candidates = dataset.learning_rates
        chosen = max(candidates, key=lambda lr: (accuracies[lr], -candidates.index(lr)))
        selection = {
            "candidates": list(dataset.learning_rates),
            "seed": seed,
            "arm": self.spec.baseline,
            "val_accuracy": {f"{lr:g}": accuracies[lr] for lr in dataset.learning_rates},
            "chosen": chosen,
        }
        if self.runs_dataset(dataset):
            write_json(self.out / dataset.name / "lr_selection.json", selection)
            for lr in dataset.learning_rates:  # the losing candidates' models are not needed again
                if lr != chosen and not self.keep_models:
                    self.remove_work_run(self.work_run(dataset, run_id(self.spec.baseline, seed, lr)))
        self.progress.log(
            "lr", dataset.name, self.spec.baseline, seed, f"chose {chosen:g} from {selection['val_accuracy']}"
        )
        return chosen

    # -- training ------------------------------------------------------------------------------------------

    def train(
        self,
        dataset: DatasetSpec,
        data_dir: Path | None,
        arm: str,
        seed: int,
        lr: float,
        selecting: bool = False,
    ) -> dict[str, Any] | None:
        """The run's training record: read if it exists, else trained now (None when this invocation does
        not run it)."""
        rid = run_id(arm, seed, lr)
        path = self.record_dir(dataset, rid) / "train.json"
        record = read_json(path)
        if record is not None or not self.runs_arm(dataset, arm, seed):
            return record
        assert data_dir is not None  # None only when this invocation does not run the dataset: returned above
        self.progress.log(
            "train",
            dataset.name,
            arm,
            seed,
            f"lr {lr:g}" + (" (learning-rate candidate)" if selecting else ""),
        )
        self.claim_work_run(self.work_run(dataset, rid))
        record = train_run(
            self.spec,
            dataset,
            data_dir,
            arm,
            seed,
            lr,
            self.work_run(dataset, rid) / "model",
            self.work / dataset.name,
        )
        record["gate"] = dataset.gate
        accuracy = record["val_accuracy"]
        record["gate_passed"] = bool(accuracy is not None and accuracy >= dataset.gate)
        write_json(path, record)
        self.trained_runs.append(f"{dataset.name}/{rid}")
        self.progress.log(
            "trained",
            dataset.name,
            arm,
            seed,
            f"val acc {record['val_accuracy']:.3f} "
            f"({'passes' if record['gate_passed'] else 'FAILS'} gate {dataset.gate}), "
            f"{record['seconds_per_epoch']:.0f} s/epoch",
        )
        return record

    # -- evaluation ----------------------------------------------------------------------------------------

    def evaluate(
        self, dataset: DatasetSpec, data_dir: Path | None, arm: str, seed: int, lr: float
    ) -> dict[str, Any] | None:
        """The run's per-example scores on the full test split, with only the spec's orderings: read if
        recorded, else computed now.

        A record made by a spec with fewer methods is completed: the missing methods are evaluated and added
        when the run's model is still in work_dir; otherwise the run is trained again and evaluated anew,
        since orderings of two trainings must never share a record. Until then the run is not counted."""
        rid = run_id(arm, seed, lr)
        path = self.record_dir(dataset, rid) / "eval.json.gz"
        record = read_json(path)
        methods, draws = self.spec.methods, self.spec.random_draws
        missing = missing_methods(record, methods, draws) if record is not None else methods
        if record is not None and not missing:
            return select_orderings(record, methods, draws)
        if not self.runs_arm(dataset, arm, seed):
            if record is not None:
                self.progress.log(
                    "incomplete", dataset.name, arm, seed, f"{path} lacks {list(missing)}: not counted"
                )
            return None
        assert data_dir is not None  # None only when this invocation does not run the dataset: returned above
        model_dir = self.work_run(dataset, rid) / "model"
        if not (model_dir / "config.json").is_file():
            # trained in an earlier session whose work_dir is gone: the seeded run is trained again
            self.progress.log(
                "retrain", dataset.name, arm, seed, "model missing (work_dir of another session)"
            )
            (self.record_dir(dataset, rid) / "train.json").unlink()
            self.train(dataset, data_dir, arm, seed, lr)
            record, missing = None, methods  # a retrained model is evaluated with every method
        adding = record is not None
        self.progress.log("evaluate", dataset.name, arm, seed, f"adding {list(missing)}" if adding else "")
        self.claim_work_run(self.work_run(dataset, rid))
        folder = self.work_run(dataset, rid) / ("eval_add_" + "_".join(missing) if adding else "eval")
        raw = evaluate_run(replace(self.spec, methods=missing), dataset, data_dir, model_dir, folder, arm)
        seconds = raw.pop("seconds")  # what the evaluations cost, including batches of an earlier session
        if record is not None:
            if raw.pop("precision") != record_precision(record):
                raise ValueError(f"{path}: the added methods were evaluated in another precision")
            if raw["examples"]["annotation_id"] != record["examples"]["annotation_id"]:
                raise ValueError(f"{path}: the added methods were evaluated on other test examples")
            for removal, orderings in raw["orderings"].items():
                record["orderings"][removal].update(orderings)
            record["seconds"] += seconds
            record["methods_added"] = [*record.get("methods_added", []), *missing]
        else:
            record = {
                "record_version": RECORD_VERSION,
                "arm": arm,
                "seed": seed,
                "learning_rate": lr,
                "seconds": seconds,
                **raw,
            }
        write_json(path, record)
        self.evaluated_runs.append(f"{dataset.name}/{rid}")
        if not self.keep_models:
            self.remove_work_run(self.work_run(dataset, rid))
        self.progress.log("evaluated", dataset.name, arm, seed, f"{seconds:.0f} s")
        return select_orderings(record, methods, draws)
