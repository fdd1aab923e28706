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
``keep_models``). A stage whose record exists is never run again. Record layout (``RECORD_VERSION``)::

    output_dir/spec.json                                  the spec the records were made with
    output_dir/<dataset>/lr_selection.json                the learning-rate choice
    output_dir/<dataset>/<arm>_seed<s>_lr<lr>/train.json    training: val accuracy, s/epoch, gate outcome
    output_dir/<dataset>/<arm>_seed<s>_lr<lr>/eval.json.gz  per-example scores (``records.compact_ordering``)
    output_dir/results.{md,json,png}                      the aggregated table, verdicts and plot
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .data import SHARED_DATA, prepare_data, tiny_initial_model
from .records import (
    RECORD_VERSION,
    compact_ordering,
    example_columns,
    read_json,
    run_id,
    spec_changes,
    write_json,
)
from .spec import DatasetSpec, ExperimentSpec, SpecError
from .statistics import SCHEME, VERDICT_METRICS, aggregate

logger = logging.getLogger(__name__)


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


def write_results(spec: ExperimentSpec, result: dict[str, Any], out: Path) -> None:
    """``results.json`` (the aggregate), ``results.md`` (tables, verdicts) and ``results.png`` (intervals)."""
    from ..report.experiment import markdown, plot  # matplotlib: imported only when results are written

    write_json(out / "results.json", result)
    (out / "results.md").write_text(markdown(result, SCHEME))
    plot(result, out / "results.png", VERDICT_METRICS)


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
    ) -> None:
        self.spec, self.out, self.work = spec, Path(output_dir), Path(work_dir)
        self.data_root, self.keep_models, self.only_finished = Path(data_root), keep_models, only_finished
        self.progress = Stage()
        self.trained_runs: list[str] = []  # run ids trained by this invocation (tests check resume with it)
        self.evaluated_runs: list[str] = []

    # -- paths ---------------------------------------------------------------------------------------------

    def record_dir(self, dataset: DatasetSpec, rid: str) -> Path:
        """Where a run's records go (``output_dir/<dataset>/<run id>``)."""
        return self.out / dataset.name / rid

    def work_run(self, dataset: DatasetSpec, rid: str) -> Path:
        """Where a run's model and raw evaluation go (``work_dir/<dataset>/<run id>``)."""
        return self.work / dataset.name / rid

    # -- the whole experiment ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Refuses records made with other settings, runs what is missing, aggregates, writes the results."""
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
                raise SpecError(
                    f"{spec_path}: the records there were made with other settings "
                    f"({', '.join(changed)}); use another --output_dir (or delete that one) to "
                    "run this spec"
                )
        if not self.only_finished:
            if previous is not None:  # a run of some datasets or arms keeps what the file says of the others
                names = {d["name"] for d in current["datasets"]}
                kept = [d for d in previous["datasets"] if d["name"] not in names]
                current["datasets"] = [*current["datasets"], *kept]
                current["arms"] = {**previous.get("arms", {}), **current["arms"]}
            write_json(spec_path, current)
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
                    self.progress.log(
                        "gate", dataset.name, arm, seed, "plain run below the gate: seed left out"
                    )
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
        candidates = dataset.learning_rates
        chosen = max(candidates, key=lambda lr: (accuracies[lr], -candidates.index(lr)))
        selection = {
            "candidates": list(dataset.learning_rates),
            "seed": seed,
            "arm": self.spec.baseline,
            "val_accuracy": {f"{lr:g}": accuracies[lr] for lr in dataset.learning_rates},
            "chosen": chosen,
        }
        if not self.only_finished:
            write_json(self.out / dataset.name / "lr_selection.json", selection)
            for lr in dataset.learning_rates:  # the losing candidates' models are not needed again
                if lr != chosen and not self.keep_models:
                    loser = self.work_run(dataset, run_id(self.spec.baseline, seed, lr))
                    shutil.rmtree(loser, ignore_errors=True)
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
        """The run's training record: read if it exists, else trained now (None under ``only_finished``)."""
        rid = run_id(arm, seed, lr)
        path = self.record_dir(dataset, rid) / "train.json"
        record = read_json(path)
        if record is not None or self.only_finished:
            return record
        assert data_dir is not None  # None only under only_finished, which returned above
        self.progress.log(
            "train",
            dataset.name,
            arm,
            seed,
            f"lr {lr:g}" + (" (learning-rate candidate)" if selecting else ""),
        )
        record = self._train_model(dataset, data_dir, arm, seed, lr, self.work_run(dataset, rid) / "model")
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

    def _train_model(
        self, dataset: DatasetSpec, data_dir: Path, arm: str, seed: int, lr: float, folder: Path
    ) -> dict[str, Any]:
        """Trains one run (resuming from its last checkpoint) and returns its training record."""
        import torch

        from ..config import SaliencyGuidedTrainingArguments
        from ..eraser import load_split
        from ..finetune import DataArguments, ModelArguments, RunArguments, run_training

        model = self.spec.model
        if model == "tiny":
            labels = list(load_split(data_dir, "train").labels)
            initial = self.work / dataset.name / f"tiny_seed{seed}"
            model = str(tiny_initial_model(self.spec, data_dir, labels, seed, initial))
        cuda = torch.cuda.is_available()
        checkpoints = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        args = SaliencyGuidedTrainingArguments(
            output_dir=str(folder),
            num_train_epochs=dataset.epochs,
            learning_rate=lr,
            per_device_train_batch_size=dataset.batch_size,
            per_device_eval_batch_size=max(32, dataset.batch_size),
            warmup_steps=self.spec.warmup,
            weight_decay=self.spec.weight_decay,
            seed=seed,
            data_seed=seed,
            eval_strategy="epoch",
            save_strategy="epoch",
            save_total_limit=1,
            load_best_model_at_end=True,
            metric_for_best_model="accuracy",
            logging_steps=20,
            report_to=[],
            dataloader_num_workers=0,
            use_cpu=not cuda,
            bf16=cuda and self.spec.mixed_precision == "bf16",
            fp16=cuda and self.spec.mixed_precision == "fp16",
            resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None,
            **self.spec.arms[arm],
        )
        data_kwargs: dict[str, Any] = {
            "data_dir": str(data_dir),
            "max_train_samples": None if dataset.source == "sst2" else dataset.train_examples,
            "max_eval_samples": dataset.val_examples,
        }
        if dataset.truncation != "head":  # passed only when set: validate_spec checked that it is supported
            data_kwargs["truncation"] = dataset.truncation
        started = time.perf_counter()
        trainer = run_training(
            ModelArguments(model_name_or_path=model, max_length=dataset.max_length),
            DataArguments(**data_kwargs),
            args,
            # the work folder is the runner's own: a run interrupted before its first
            # checkpoint is trained again from scratch in it
            RunArguments(overwrite_output_dir=True),
        )
        history = trainer.state.log_history
        runtime = next((h["train_runtime"] for h in reversed(history) if "train_runtime" in h), None)
        evals = [
            {"epoch": h.get("epoch"), "accuracy": h["eval_accuracy"]} for h in history if "eval_accuracy" in h
        ]
        final = trainer.evaluate()
        return {
            "record_version": RECORD_VERSION,
            "arm": arm,
            "seed": seed,
            "learning_rate": lr,
            "sgt_settings": dict(self.spec.arms[arm]),
            "model": self.spec.model,
            "val_accuracy": float(final["eval_accuracy"]),
            "val_curve": evals,
            # transformers types train_dataset as a torch Dataset (no __len__); this one is a datasets.Dataset
            "train_examples": len(trainer.train_dataset),  # type: ignore[arg-type]
            "epochs": dataset.epochs,
            "seconds": time.perf_counter() - started,
            "train_runtime": runtime,
            "seconds_per_epoch": (runtime / dataset.epochs) if runtime else None,
            "resumed_from": str(checkpoints[-1].name) if checkpoints else None,
            "device": "cuda" if cuda else "cpu",
        }

    # -- evaluation ----------------------------------------------------------------------------------------

    def evaluate(
        self, dataset: DatasetSpec, data_dir: Path | None, arm: str, seed: int, lr: float
    ) -> dict[str, Any] | None:
        """The run's per-example scores on the full test split: read if recorded, else computed now."""
        rid = run_id(arm, seed, lr)
        path = self.record_dir(dataset, rid) / "eval.json.gz"
        record = read_json(path)
        if record is not None or self.only_finished:
            return record
        assert data_dir is not None  # None only under only_finished, which returned above
        model_dir = self.work_run(dataset, rid) / "model"
        if not (model_dir / "config.json").is_file():
            # trained in an earlier session whose work_dir is gone: the seeded run is trained again
            self.progress.log(
                "retrain", dataset.name, arm, seed, "model missing (work_dir of another session)"
            )
            (self.record_dir(dataset, rid) / "train.json").unlink()
            self.train(dataset, data_dir, arm, seed, lr)
        self.progress.log("evaluate", dataset.name, arm, seed)
        started = time.perf_counter()
        raw = self._evaluate_model(dataset, data_dir, model_dir, self.work_run(dataset, rid) / "eval", arm)
        record = {
            "record_version": RECORD_VERSION,
            "arm": arm,
            "seed": seed,
            "learning_rate": lr,
            "seconds": time.perf_counter() - started,
            **raw,
        }
        write_json(path, record)
        self.evaluated_runs.append(f"{dataset.name}/{rid}")
        if not self.keep_models:
            shutil.rmtree(self.work_run(dataset, rid), ignore_errors=True)
        self.progress.log("evaluated", dataset.name, arm, seed, f"{time.perf_counter() - started:.0f} s")
        return record

    def evaluation_calls(
        self, dataset: DatasetSpec, model_dir: Path, data_dir: Path, out: Path, name: str
    ) -> list[tuple[dict[str, str], Any]]:
        """({method: ordering name}, EvaluationConfig) for every ordering the spec asks for: one call for the
        methods that share settings, one for ``gradient_l2`` and one per extra random draw."""
        from ..evaluation import EvaluationConfig

        common: dict[str, Any] = dict(
            model=str(model_dir),
            data_dir=str(data_dir),
            split="test",
            batch_size=self.spec.eval_batch_size,
            removal=self.spec.removals[0],
            extra_removals=tuple(self.spec.removals[1:]),
            max_length=dataset.max_length,
            max_examples=dataset.test_examples,
            threshold=dataset.threshold,
            ig_steps=self.spec.ig_steps,
            smoothgrad_samples=self.spec.smoothgrad_samples,
            seed=0,
            sample="random",
            masked_accuracy_curve=False,
            per_example=True,
            model_name=name,
        )
        if dataset.truncation != "head":
            common["truncation"] = dataset.truncation
        shared = tuple(m for m in self.spec.methods if m not in ("gradient_l2",))
        calls = []
        if shared:
            calls.append(
                (
                    {m: m for m in shared},
                    EvaluationConfig(
                        output_dir=str(out / "main"), methods=shared, aggregation="grad_x_input", **common
                    ),
                )
            )
        if "gradient_l2" in self.spec.methods:
            calls.append(
                (
                    {"gradient": "gradient_l2"},
                    EvaluationConfig(
                        output_dir=str(out / "gradient_l2"), methods=("gradient",), aggregation="l2", **common
                    ),
                )
            )
        if "random" in self.spec.methods:
            for draw in range(1, self.spec.random_draws):
                calls.append(
                    (
                        {"random": f"random_draw{draw}"},
                        EvaluationConfig(
                            output_dir=str(out / f"random_draw{draw}"),
                            methods=("random",),
                            explainer_settings={"random": {"seed": draw}},
                            **common,
                        ),
                    )
                )
        return calls

    def _evaluate_model(
        self, dataset: DatasetSpec, data_dir: Path, model_dir: Path, out: Path, name: str
    ) -> dict[str, Any]:
        """Every ordering under every removal mode, as the compact columns of an ``eval.json.gz``."""
        from ..evaluation import evaluate_folder

        orderings: dict[str, dict[str, dict[str, list]]] = {removal: {} for removal in self.spec.removals}
        examples = None
        for names, config in self.evaluation_calls(dataset, model_dir, data_dir, out, name):
            evaluate_folder(config)
            for removal in self.spec.removals:
                folder = config.output_dir_for(removal)
                for method, name in names.items():
                    text = (folder / method / "per_example.jsonl").read_text()
                    lines = [json.loads(line) for line in text.splitlines()]
                    examples = examples or example_columns(lines)
                    if [e["annotation_id"] for e in lines] != examples["annotation_id"]:
                        raise ValueError(f"{folder / method}: other examples than the first evaluation")
                    orderings[removal][name] = compact_ordering(lines)
        return {"examples": examples, "orderings": orderings}
