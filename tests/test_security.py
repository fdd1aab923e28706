"""Untrusted model folders, checkpoints, datasets and specs: nothing from them is ever executed, nothing
outside the folders a command is given is read, written or deleted, and no result file is left half-written.

Each test runs in a temporary tree with sentinel files around the folders it gives the command, and checks
afterwards that every sentinel is as it was and that a pickle's payload never ran (it would create a file).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from sgt_nlp import cli
from tests import tiny
from tests.toy_data import write_eraser


class Payload:
    """Unpickling this creates ``path``: proof that a pickle was loaded (and would have run any code)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def tree_snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """Every file under ``root`` (outside ``skip``) with a hash of its bytes; links as their targets."""
    found = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip):
            continue
        if path.is_symlink():
            found[str(path)] = "link:" + os.readlink(path)
        elif path.is_file():
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[str(path)] = "dir"
    return found


@pytest.fixture
def sandbox(tmp_path):
    """``tmp_path/work`` for the command's folders, with sentinels beside and above it."""
    (tmp_path / "secret.txt").write_text("zebracorn password 1234\n")
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "keep.txt").write_text("precious\n")
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    return tiny.save_binary_bert(tmp_path_factory.mktemp("model"))


def run_cli(capsys, *argv) -> tuple[int, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's own error path (exit status 2)
        code = int(stop.code or 0)
    return code, capsys.readouterr().err


def copy_model(source: Path, folder: Path) -> Path:
    shutil.copytree(source, folder)
    return folder


# ---- code in model folders and checkpoints -----------------------------------------------------------------


def test_a_crafted_training_args_bin_is_never_unpickled(sandbox, saved_model, capsys):
    model = copy_model(saved_model, sandbox / "model")
    ran = sandbox.parent / "payload_ran"
    torch.save(Payload(ran), model / "training_args.bin")
    data = write_eraser(sandbox / "data")
    before = tree_snapshot(sandbox.parent, skip=(sandbox / "out",))
    code, err = run_cli(
        capsys, "evaluate", "--model", model, "--data_dir", data, "--split", "val", "--methods", "gradient",
        "--output_dir", sandbox / "out", "--max_length", 32,
    )  # fmt: skip
    assert code == 0, err
    assert not ran.exists()
    assert tree_snapshot(sandbox.parent, skip=(sandbox / "out",)) == before
    assert json.loads((sandbox / "out" / "run.json").read_text())["sgt_settings"] is None


def test_sgt_settings_come_from_json_and_the_model_card(tmp_path):
    from sgt_nlp.config import SaliencyGuidedTrainingArguments, write_sgt_settings
    from sgt_nlp.loading import read_sgt_settings
    from sgt_nlp.model_card import write_model_card

    args = SaliencyGuidedTrainingArguments(output_dir=str(tmp_path), sgt_mask_fraction=0.3, sgt_kl_weight=2.0)
    write_sgt_settings(tmp_path / "a", args)
    settings = read_sgt_settings(tmp_path / "a")
    assert settings == json.loads(json.dumps(args.sgt_settings()))
    assert settings["sgt_mask_fraction"] == 0.3 and settings["sgt_kl_weight"] == 2.0
    # a folder from before sgt_settings.json: its model card's table, values typed back
    write_model_card(
        tmp_path / "b", base_model="x", data_description="d", labels=["a"], sgt_settings=settings
    )
    assert read_sgt_settings(tmp_path / "b") == settings
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "sgt_settings.json").write_text('{"sgt_mask_fraction": {"nested": 1}}')
    with pytest.raises(ValueError, match=r"sgt_settings.json: must be one JSON object"):
        read_sgt_settings(tmp_path / "c")


def test_the_trainer_writes_its_settings_as_json(tmp_path):
    from datasets import Dataset
    from transformers import DataCollatorWithPadding

    from sgt_nlp import SaliencyGuidedTrainer, SaliencyGuidedTrainingArguments
    from sgt_nlp.loading import read_sgt_settings

    tokenizer = tiny.wordpiece_tokenizer()
    rows = tokenizer([s for s, _ in tiny.SENTENCES], truncation=True, max_length=16)
    train = Dataset.from_dict({**rows, "labels": [y for _, y in tiny.SENTENCES]})
    args = SaliencyGuidedTrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        sgt_mask_fraction=0.25,
        report_to=[],
        save_strategy="no",
    )
    trainer = SaliencyGuidedTrainer(
        model=tiny.tiny_model("bert"), args=args, train_dataset=train,
        data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
    )  # fmt: skip
    trainer.train()
    trainer.save_model()
    assert read_sgt_settings(tmp_path / "out")["sgt_mask_fraction"] == 0.25


def test_pickled_weights_are_refused_and_never_loaded(sandbox, saved_model, capsys):
    model = sandbox / "model"
    model.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        if (saved_model / name).exists():
            shutil.copy(saved_model / name, model / name)
    ran = sandbox.parent / "payload_ran"
    torch.save(Payload(ran), model / "pytorch_model.bin")
    data = write_eraser(sandbox / "data")
    code, err = run_cli(
        capsys, "evaluate", "--model", model, "--data_dir", data, "--split", "val", "--methods", "gradient",
        "--output_dir", sandbox / "out",
    )  # fmt: skip
    assert code == 1
    assert "pickled (pytorch_model.bin)" in err and "safetensors" in err
    assert not ran.exists()


def test_a_crafted_evaluation_checkpoint_is_never_unpickled(sandbox, saved_model, capsys):
    import pickle

    ran = sandbox.parent / "payload_ran"
    checkpoint = sandbox / "eval.checkpoint"
    checkpoint.write_bytes(pickle.dumps(Payload(ran)))
    data = write_eraser(sandbox / "data")
    code, err = run_cli(
        capsys, "evaluate", "--model", saved_model, "--data_dir", data, "--split", "val",
        "--methods", "gradient", "--output_dir", sandbox / "out", "--checkpoint", checkpoint,
    )  # fmt: skip
    assert code == 2
    assert "eval.checkpoint: not an evaluation checkpoint" in err and "pickles are never read" in err
    assert not ran.exists()


def test_checkpoint_batches_round_trip_through_json_bit_for_bit():
    import numpy as np

    from sgt_nlp.evaluation.checkpoint import DoneBatch, batch_from_json, batch_to_json
    from sgt_nlp.evaluation.records import ExampleOutput, MethodResult

    rng = np.random.default_rng(0)
    result = MethodResult(
        word_scores=rng.normal(size=5).astype(np.float32),
        probs=np.array([0.1 + 1e-17, np.nextafter(0.9, 1.0)]),
        comp=np.array([np.nan, np.inf]),
        suff=rng.random(2),
        thresholded={0.1: (rng.random(2), rng.random(2)), 0.5: (rng.random(2), rng.random(2))},
        masked_correct=[1, 0],
        tokens_to_flip=3,
        empty=None,
        seconds=0.25,
        convergence_delta=-1e-300,
    )
    batch = DoneBatch(3, [ExampleOutput(0, "a:1", 5, [0, 1, 2, 3, 4], {"delete": {"ig": result}})], 1.5, 7)
    back = batch_from_json(json.loads(json.dumps(batch_to_json(batch))))
    got = back.outputs[0].methods["delete"]["ig"]
    assert got.word_scores.dtype == np.float32 and got.word_scores.tobytes() == result.word_scores.tobytes()
    assert got.probs.tobytes() == result.probs.tobytes() and got.comp.tobytes() == result.comp.tobytes()
    assert all(got.thresholded[k][0].tobytes() == result.thresholded[k][0].tobytes() for k in (0.1, 0.5))
    assert (got.convergence_delta, got.tokens_to_flip, back.index, back.forward_passes) == (-1e-300, 3, 3, 7)


# ---- datasets that name files outside themselves -----------------------------------------------------------


def _point_first_annotation_at(data: Path, docid: str) -> None:
    path = data / "val.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[0])
    record["docids"] = [docid]
    for group in record["evidences"]:
        for ev in group:
            ev["docid"] = docid
    lines[0] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("kind", ["relative", "absolute", "symlink"])
def test_a_docid_never_reads_outside_the_dataset(sandbox, saved_model, capsys, kind):
    data = write_eraser(sandbox / "data")
    secret = sandbox.parent / "secret.txt"
    if kind == "relative":
        docid = "../../../secret.txt"
    elif kind == "absolute":
        docid = str(secret)
    else:
        docid = "innocent"
        (data / "docs" / docid).symlink_to(secret)
    _point_first_annotation_at(data, docid)
    before = tree_snapshot(sandbox.parent, skip=(sandbox / "out",))
    code, err = run_cli(
        capsys, "evaluate", "--model", saved_model, "--data_dir", data, "--split", "val",
        "--methods", "gradient", "--output_dir", sandbox / "out",
    )  # fmt: skip
    assert code == 1
    assert "val.jsonl, line 1, field 'docids[0]'" in err and "refused" in err, err
    assert "zebracorn" not in err
    assert not (sandbox / "out" / "examples.jsonl").exists()
    assert tree_snapshot(sandbox.parent, skip=(sandbox / "out",)) == before


def test_load_documents_refuses_a_path_as_docid(tmp_path):
    from sgt_nlp.eraser import ERASERDataError, load_documents

    data = write_eraser(tmp_path / "data")
    (tmp_path / "secret").write_text("zebracorn\n")
    with pytest.raises(ERASERDataError, match=r"is a path, not a file name"):
        load_documents(data, ["../secret"])


# ---- experiment specs whose names are paths ----------------------------------------------------------------


@pytest.mark.parametrize("where", ["arm", "dataset", "spec"])
def test_spec_names_that_are_paths_are_refused_before_anything_is_written(sandbox, capsys, where):
    spec = {"preset": "smoke", "name": "mine"}
    if where == "arm":
        spec["arms"] = {"plain": {}, "../../../victim": {"sgt_mask_fraction": 0.5}}
    elif where == "dataset":
        spec["datasets"] = [{"name": "../../victim", "source": "synthetic"}]
    else:
        spec["name"] = "../victim"
    spec_file = sandbox / "spec.json"
    spec_file.write_text(json.dumps(spec))
    before = tree_snapshot(sandbox.parent)
    code, err = run_cli(
        capsys,
        "experiment",
        "--spec",
        spec_file,
        "--output_dir",
        sandbox / "out",
        "--work_dir",
        sandbox / "w",
    )
    assert code in (1, 2)
    assert "is not a plain name" in err and "../" in err
    assert tree_snapshot(sandbox.parent) == before


def test_the_runner_never_writes_into_or_deletes_a_work_folder_it_did_not_make(tmp_path):
    from sgt_nlp.experiments import PRESETS, Experiment, SpecError

    spec = PRESETS["smoke"]
    experiment = Experiment(spec, tmp_path / "out", tmp_path / "work")
    theirs = experiment.work_run(spec.datasets[0], "plain_seed0_lr0.001")
    theirs.mkdir(parents=True)
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(SpecError, match=r"was not made by sgt-nlp experiment"):
        experiment.claim_work_run(theirs)
    experiment.remove_work_run(theirs)
    assert (theirs / "notes.txt").read_text() == "mine"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / ".sgt_nlp_experiment_run").touch()
    experiment.remove_work_run(outside)
    assert outside.is_dir()
    ours = experiment.work_run(spec.datasets[0], "sgt_seed0_lr0.001")
    experiment.claim_work_run(ours)
    (ours / "model").mkdir()
    experiment.remove_work_run(ours)
    assert not ours.exists()


# ---- data loss ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, saved_model):
    """An evaluation folder (gradient, delete) of the tiny model on the tiny sentiment data."""
    root = tmp_path_factory.mktemp("evaluated")
    data = write_eraser(root / "data")
    assert cli.main(
        ["evaluate", "--model", str(saved_model), "--data_dir", str(data), "--split", "val",
         "--methods", "gradient,random", "--output_dir", str(root / "out")]
    ) == 0  # fmt: skip
    return root


def test_rescore_with_a_non_finite_score_changes_no_file(evaluated, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(evaluated / "out", out)
    results = out / "random" / "results.jsonl"
    lines = results.read_text().splitlines()
    record = json.loads(lines[-1])
    record["classification_scores"] = {k: float("nan") for k in record["classification_scores"]}
    lines[-1] = json.dumps(record)
    results.write_text("\n".join(lines) + "\n")
    before = tree_snapshot(out)
    code, err = run_cli(capsys, "rescore", out, "--data_dir", evaluated / "data")
    assert code == 1
    assert "results.jsonl" in err
    assert tree_snapshot(out) == before  # gradient/ (checked first and fine) is not rewritten either


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    from sgt_nlp import files
    from sgt_nlp.eraser.results import ResultsError, write_results

    target = tmp_path / "results.jsonl"
    write_results(target, [{"annotation_id": "a", "classification": "POS"}])
    old = target.read_bytes()
    with pytest.raises(ResultsError, match=r"annotation 'b' cannot be written .*nothing was written"):
        write_results(target, [{"annotation_id": "b", "classification_scores": {"POS": float("inf")}}])
    assert target.read_bytes() == old

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        files.atomic_write_text(target, "new")
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"]  # no temporary file left


def test_a_second_evaluate_into_a_claimed_folder_is_refused_and_deletes_nothing(evaluated, tmp_path, capsys):
    from sgt_nlp.files import write_claim

    out = tmp_path / "out"
    write_claim(out, "sgt-nlp evaluate", replace=False)  # the first run, still explaining
    code, err = run_cli(
        capsys, "evaluate", "--model", evaluated.parent / "model", "--data_dir", evaluated / "data",
        "--split", "val", "--methods", "gradient", "--output_dir", out,
    )  # fmt: skip
    assert code == 2 and "already holds files" in err
    assert [p.name for p in out.iterdir()] == [".sgt_nlp_claim"]


def test_a_writer_that_lost_its_claim_writes_and_deletes_nothing(evaluated, tmp_path):
    from sgt_nlp.evaluation import write_evaluation
    from sgt_nlp.files import write_claim
    from sgt_nlp.validation import UsageError

    out = tmp_path / "out"
    shutil.copytree(evaluated / "out", out)
    first = write_claim(out, "sgt-nlp evaluate", replace=True)
    write_claim(out, "sgt-nlp evaluate", replace=True)  # a second run took the folder over
    before = tree_snapshot(out)
    with pytest.raises(UsageError, match="taken over by another run"):
        write_evaluation(None, output_dir=out, claim=first)  # type: ignore[arg-type]
    assert tree_snapshot(out) == before


def test_a_claim_left_by_a_stopped_run_does_not_block_the_next(tmp_path):
    from sgt_nlp.files import CLAIM_FILE
    from sgt_nlp.validation import claim_output_dir

    out = tmp_path / "out"
    out.mkdir()
    (out / CLAIM_FILE).write_text(json.dumps({"command": "x", "pid": 2**22 + 12345, "token": "old"}))
    token = claim_output_dir(out, overwrite=False, what="files", command="sgt-nlp evaluate")
    assert token and token != "old"


def test_resume_from_a_checkpoint_elsewhere_never_overwrites_another_model(sandbox, saved_model, capsys):
    other = copy_model(saved_model, sandbox / "other_model")
    checkpoint = copy_model(saved_model, sandbox / "run" / "checkpoint-1")
    data = write_eraser(sandbox / "data")
    before = tree_snapshot(other)
    code, err = run_cli(
        capsys, "train", "--model_name_or_path", saved_model, "--data_dir", data,
        "--output_dir", other, "--resume_from_checkpoint", checkpoint, "--max_steps", 1,
    )  # fmt: skip
    assert code == 2 and "already holds files (a model?)" in err
    assert tree_snapshot(other) == before


def test_demo_never_wipes_a_folder_of_another_demo_or_a_users_files(tmp_path):
    from sgt_nlp.demo import demo_spec, parse_settings, remove_demo_outputs, run_demo
    from sgt_nlp.validation import UsageError

    out = tmp_path / "sgt_demo"
    out.mkdir()
    full = demo_spec(parse_settings([]))
    from sgt_nlp.experiments.output import record_spec

    record_spec(out, full)  # the spec.json a full demo leaves
    (out / "mine.txt").write_text("keep")
    (out / "work").mkdir()
    (out / "seed0").symlink_to(tmp_path)  # removing a link must not follow it
    with pytest.raises(UsageError, match="holds a demo with other settings.*--overwrite_output_dir"):
        run_demo(demo_spec(parse_settings(["--quick"])), out)
    assert (out / "mine.txt").read_text() == "keep" and (out / "spec.json").is_file()
    previous = json.loads((out / "spec.json").read_text())
    removed = remove_demo_outputs(out, previous)
    assert set(removed) == {"spec.json", "work", "seed0"}
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"] and tmp_path.is_dir()
    with pytest.raises(ValueError, match="not a plain name"):
        remove_demo_outputs(out, {"datasets": [{"name": ".."}], "seeds": [0]})


@pytest.mark.parametrize("field_name, value", [("methods", ["../../victim"]), ("split", "../../secret")])
def test_rescore_never_follows_names_in_run_json_outside_the_folder(
    evaluated, tmp_path, capsys, field_name, value
):
    out = tmp_path / "work" / "out"
    shutil.copytree(evaluated / "out", out)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "results.jsonl").write_text("theirs\n")
    run = json.loads((out / "run.json").read_text())
    run[field_name] = value
    (out / "run.json").write_text(json.dumps(run))
    before = tree_snapshot(tmp_path)
    code, err = run_cli(capsys, "rescore", out, "--data_dir", evaluated / "data")
    assert code == 1
    assert ("is not a method folder" if field_name == "methods" else "is not a split name") in err
    assert tree_snapshot(tmp_path) == before
