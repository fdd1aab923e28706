"""A careless user on hand-built folders and CSVs: every bad input fails before any model pass, through the
CLI, with one line that names the file/line/field or option (exit status 2 for a bad option, 1 for bad data),
and leaves no partial output. Also: what must *not* be refused, and what must not be lost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from sgt_nlp import cli
from sgt_nlp.validation import UsageError, sorted_label_names
from tests import tiny
from tests.toy_data import write_csv, write_eraser


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tiny.save_binary_bert(tmp_path_factory.mktemp("model"))
    (folder / "README.md").write_text(
        "---\ntags:\n- sgt_nlp\n---\n\n# card\n\n## How it was trained\n\nby hand\n"
    )
    return folder


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _error_line(err: str) -> str:
    """The one error line (progress bars of model loading may come before it on stderr)."""
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    return lines[0]


# ---- ERASER folders for `sgt-nlp evaluate` -----------------------------------------------------------------


def _rewrite_line(path: Path, line_no: int, change) -> None:
    lines = path.read_text().splitlines()
    record = json.loads(lines[line_no - 1])
    change(record)
    lines[line_no - 1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


def empty_document(folder: Path) -> None:
    (folder / "docs" / "val_2").write_text("\n")


def evidence_outside_docids(folder: Path) -> None:
    def change(record):
        record["docids"] = ["val_3"]  # the evidence stays in val_3's neighbour
        record["evidences"][0][0]["docid"] = "val_4"

    _rewrite_line(folder / "val.jsonl", 4, change)


def bad_bytes_in_annotations(folder: Path) -> None:
    path = folder / "val.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b"sentiment", b"sentim\xe9nt")
    path.write_bytes(b"\n".join(lines))


def bad_bytes_in_document(folder: Path) -> None:
    (folder / "docs" / "val_1").write_bytes(b"the film\nwas b\xffd and boring\n")


# (case, change to the data folder or None, extra options, exit status, the words the message must contain)
EVALUATE_CASES = [
    ("empty methods", None, ["--methods", ","], 2, ["--methods ','", "names nothing"]),
    (
        "negative max_length",
        None,
        ["--max_length", "-5"],
        2,
        ["--max_length must be a positive integer, got -5"],
    ),
    ("zero max_length", None, ["--max_length", "0"], 2, ["--max_length must be a positive integer, got 0"]),
    # the query "what is the sentiment ?" is 5 pieces, plus [CLS] [SEP] [SEP]: 8 leave no room for the
    # document
    (
        "max_length below the query",
        None,
        ["--max_length", "8"],
        2,
        ["val.jsonl, line 1, field 'query'", "take 8 pieces"],
    ),
    (
        "zero max_examples",
        None,
        ["--max_examples", "0"],
        2,
        ["--max_examples must be a positive integer, got 0"],
    ),
    ("unknown removal", None, ["--removal", "delete,erase"], 2, ["--removal: unknown erase"]),
    ("bad aopc bins", None, ["--aopc_thresholds", "0.1,x"], 2, ["--aopc_thresholds '0.1,x'"]),
    (
        "empty document",
        empty_document,
        [],
        1,
        ["val.jsonl, line 3, field 'docids[0]'", "'val_2' has no tokens"],
    ),
    (
        "evidence outside docids",
        evidence_outside_docids,
        [],
        1,
        ["val.jsonl, line 4, field 'evidences[0][0].docid'", "not in the annotation's docids ['val_3']"],
    ),
    (
        "non-UTF-8 annotation file",
        bad_bytes_in_annotations,
        [],
        1,
        ["val.jsonl, line 6: not UTF-8 text: byte 0xe9 at column"],
    ),
    (
        "non-UTF-8 document",
        bad_bytes_in_document,
        [],
        1,
        ["val_1, line 2: not UTF-8 text: byte 0xff at column 6"],
    ),
]


@pytest.mark.parametrize(
    "case,change,options,status,expected", EVALUATE_CASES, ids=[c[0] for c in EVALUATE_CASES]
)
def test_evaluate_refuses_bad_input_up_front(
    tmp_path, capsys, model_dir, case, change, options, status, expected
):
    data = write_eraser(tmp_path / "data")
    if change is not None:
        change(data)
    out = tmp_path / "out"
    card = (model_dir / "README.md").read_text()
    code, err = run_cli(
        capsys,
        "evaluate",
        "--model",
        model_dir,
        "--data_dir",
        data,
        "--split",
        "val",
        "--output_dir",
        out,
        "--methods",
        "random",
        *options,
    )
    assert code == status, err
    for words in expected:
        assert words in err
    assert "Traceback" not in err and _error_line(err).startswith("sgt-nlp evaluate: error: ")
    assert not out.exists()  # nothing written, not even an empty folder
    assert (model_dir / "README.md").read_text() == card


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_usage_error(tmp_path, capsys, model_dir):
    code, err = run_cli(
        capsys,
        "evaluate",
        "--model",
        model_dir,
        "--data_dir",
        write_eraser(tmp_path / "d"),
        "--output_dir",
        tmp_path / "out",
        "--device",
        "cuda",
    )
    assert code == 2 and "--device cuda: no CUDA GPU is visible" in err and not (tmp_path / "out").exists()


def test_output_dir_that_is_a_file_or_holds_files(tmp_path, capsys, model_dir):
    data = write_eraser(tmp_path / "data")
    as_file = tmp_path / "results"
    as_file.write_text("keep me")
    code, err = run_cli(
        capsys,
        "evaluate",
        "--model",
        model_dir,
        "--data_dir",
        data,
        "--split",
        "val",
        "--output_dir",
        as_file,
        "--methods",
        "random",
    )
    assert code == 2 and f"--output_dir {as_file} is a file" in err and as_file.read_text() == "keep me"
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    for command in (
        ["evaluate", "--model", model_dir, "--data_dir", data, "--split", "val", "--methods", "random"],
        ["sanity", "--model", model_dir, "--data_dir", data, "--methods", "random"],
    ):
        code, err = run_cli(capsys, *command, "--output_dir", folder)
        assert code == 2 and "already holds files" in err and "--overwrite_output_dir" in err
        assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_debug_shows_the_traceback(tmp_path, model_dir):
    with pytest.raises(UsageError, match="names nothing"):
        cli.main(
            [
                "evaluate",
                "--model",
                str(model_dir),
                "--data_dir",
                str(tmp_path),
                "--output_dir",
                str(tmp_path / "o"),
                "--methods",
                ",",
                "--debug",
            ]
        )


# ---- what must work, and what must not be lost -------------------------------------------------------------


def test_a_split_of_one_class_is_evaluated(tmp_path, capsys, model_dir):
    data = write_eraser(tmp_path / "data")
    lines = [line for line in (data / "val.jsonl").read_text().splitlines() if '"POS"' in line]
    (data / "val.jsonl").write_text("\n".join(lines) + "\n")
    code, err = run_cli(
        capsys,
        "evaluate",
        "--model",
        model_dir,
        "--data_dir",
        data,
        "--split",
        "val",
        "--output_dir",
        tmp_path / "out",
        "--methods",
        "random",
    )
    assert code == 0, err
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["labels"] == ["NEG", "POS"] and run["examples"] == len(lines) == 4


def test_overwriting_an_evaluation_clears_what_it_wrote_and_leaves_the_card(tmp_path, capsys, model_dir):
    data = write_eraser(tmp_path / "data")
    out = tmp_path / "out"
    card = (model_dir / "README.md").read_text()
    common = ["evaluate", "--model", model_dir, "--data_dir", data, "--split", "val", "--output_dir", out]
    assert run_cli(capsys, *common, "--methods", "gradient,random", "--removal", "delete,mask_token")[0] == 0
    assert {p.name for p in out.iterdir() if p.is_dir()} == {"gradient", "random", "removal_mask_token"}
    (out / "notes.txt").write_text("mine")
    code, err = run_cli(capsys, *common, "--methods", "random")
    assert code == 2 and "--overwrite_output_dir" in err
    assert run_cli(capsys, *common, "--methods", "random", "--overwrite_output_dir")[0] == 0
    assert {p.name for p in out.iterdir()} == {
        "random",
        "run.json",
        "summary.json",
        "summary.md",
        "examples.jsonl",
        "notes.txt",
    }
    assert (
        model_dir / "README.md"
    ).read_text() == card  # the model card changes only with --update_model_card
    assert (
        run_cli(capsys, *common, "--methods", "random", "--overwrite_output_dir", "--update_model_card")[0]
        == 0
    )
    updated = (model_dir / "README.md").read_text()
    assert "## Rationale evaluation" in updated and "| random | delete |" in updated
    (model_dir / "README.md").write_text(card)


def test_threshold_and_coverage_with_unannotated_examples(tmp_path, capsys, model_dir):
    """HateXplain-style: no rationale for one class. The default threshold is the mean fraction of the
    examples that have one, and the coverage is said."""
    data = write_eraser(tmp_path / "data")

    def drop_evidence(record):
        record["evidences"] = []
        record["docids"] = [record["annotation_id"]]

    lines = (data / "val.jsonl").read_text().splitlines()
    negative = [i + 1 for i, line in enumerate(lines) if '"NEG"' in line]
    for line_no in negative:
        _rewrite_line(data / "val.jsonl", line_no, drop_evidence)
    code = cli.main(
        [
            "evaluate",
            "--model",
            str(model_dir),
            "--data_dir",
            str(data),
            "--split",
            "val",
            "--output_dir",
            str(tmp_path / "out"),
            "--methods",
            "random",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    # every POS sentence has a 2-word rationale: the mean fraction is over the POS sentences only
    positive = [s for s, y in tiny.SENTENCES if y]
    expected = sum(2 / len(s.split()) for s in positive) / len(positive)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["threshold"] == pytest.approx(expected, abs=1e-4)
    assert run["rationale_coverage"] == {"examples": 8, "with_rationale": 4, "without_rationale": 4}
    assert "covers the 4 of 8 examples that have a human rationale" in printed.out


# ---- CSV files and folders for `sgt-nlp train` -------------------------------------------------------------


def train_args(model_dir: Path, out: Path, *data: str) -> list[str]:
    return [
        "train",
        "--model_name_or_path",
        str(model_dir),
        "--output_dir",
        str(out),
        "--report_to",
        "none",
        "--use_cpu",
        "--num_train_epochs",
        "1",
        "--per_device_train_batch_size",
        "4",
        "--max_length",
        "32",
        "--disable_tqdm",
        "true",
        "--save_strategy",
        "no",
        *data,
    ]  # data options last: they may override


def _csv_with_bytes(path: Path) -> str:
    path.write_bytes(b"text,label\ngood fun,pos\nthe b\xe9d film,neg\n")
    return str(path)


TRAIN_CASES = [
    (
        "empty label cell",
        lambda d: ["--train_file", str(write_csv(d / "t.csv", [("good", "pos"), ("bad", "")]))],
        1,
        ["t.csv, line 3, field 'label': empty cell"],
    ),
    (
        "empty text cell",
        lambda d: ["--train_file", str(write_csv(d / "t.csv", [("", "pos"), ("bad", "neg")]))],
        1,
        ["t.csv, line 2, field 'text': empty cell"],
    ),
    (
        "non-UTF-8 CSV",
        lambda d: ["--train_file", _csv_with_bytes(d / "t.csv")],
        1,
        ["t.csv, line 3: not UTF-8 text: byte 0xe9 at column 6"],
    ),
    (
        "zero max_train_samples",
        lambda d: [
            "--train_file",
            str(write_csv(d / "t.csv", [("good", "pos")])),
            "--max_train_samples",
            "0",
        ],
        2,
        ["--max_train_samples must be a positive integer, got 0"],
    ),
    (
        "max_length below the query",
        lambda d: ["--data_dir", str(write_eraser(d / "e")), "--max_length", "8"],
        2,
        ["train.jsonl, annotation 'train_0', field 'query'", "take 8 pieces"],
    ),
]


@pytest.mark.parametrize("case,data,status,expected", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_refuses_bad_input_up_front(tmp_path, capsys, model_dir, case, data, status, expected):
    out = tmp_path / "out"
    code, err = run_cli(capsys, *train_args(model_dir, out, *data(tmp_path)))
    assert code == status, err
    for words in expected:
        assert words in err
    assert "Traceback" not in err and _error_line(err).startswith("sgt-nlp train: error: ")
    assert not out.exists()


def test_integer_labels_keep_their_value_as_class_id(tmp_path):
    from sgt_nlp.finetune_data import DataArguments, load_raw_splits, tokenize_splits

    rows = [("good", 2), ("bad", 10), ("fun", 0), ("sad", 1), ("slow", 10)]
    data = DataArguments(train_file=str(write_csv(tmp_path / "t.csv", rows)))
    train, _, labels = load_raw_splits(data)
    assert labels == ["0", "1", "2", "10"]  # as strings sorted, "10" would come before "2"
    tokenized, _ = tokenize_splits(train, None, labels, tiny.wordpiece_tokenizer(), data, 16)
    assert tokenized["labels"] == [2, 3, 0, 1, 3]
    assert sorted_label_names(["b", "a", "B"]) == ["B", "a", "b"] and sorted_label_names([1.5, 0.5]) == [
        "0.5",
        "1.5",
    ]


def test_train_keeps_an_existing_model_and_leaves_no_checkpoints(tmp_path, capsys, model_dir):
    train = write_csv(tmp_path / "t.csv", [(s, "pos" if y else "neg") for s, y in tiny.SENTENCES])
    out = tmp_path / "model"
    args = train_args(model_dir, out, "--train_file", str(train))
    args[args.index("--save_strategy") + 1] = "steps"
    args += ["--save_steps", "1"]
    assert run_cli(capsys, *args)[0] == 0
    assert (out / "model.safetensors").is_file() and not list(out.glob("checkpoint-*"))
    weights = (out / "model.safetensors").read_bytes()
    code, err = run_cli(capsys, *args)
    assert code == 2 and f"--output_dir {out} already holds files" in err
    assert (out / "model.safetensors").read_bytes() == weights
    (
        out / "checkpoint-99"
    ).mkdir()  # a stale checkpoint of an earlier run goes when the folder is overwritten
    assert run_cli(capsys, *args, "--overwrite_output_dir", "--keep_checkpoints")[0] == 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    shutil.rmtree(out)


def test_train_help_starts_with_our_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: sgt-nlp train --model_name_or_path")
    groups = [line for line in text.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert groups[:5] == [
        "model:",
        "data:",
        "saliency-guided training (sgt_*; see the README's table):",
        "output folder:",
        "Hugging Face TrainingArguments:",
    ]
    assert text.index("--sgt_mask_fraction") < text.index("--learning_rate")


def test_sanity_checks_max_length_and_output_folder_before_explaining(tmp_path, capsys, model_dir):
    data = write_eraser(tmp_path / "data")
    out = tmp_path / "out"
    code, err = run_cli(
        capsys,
        "sanity",
        "--model",
        model_dir,
        "--data_dir",
        data,
        "--methods",
        "random",
        "--max_length",
        "8",
        "--output_dir",
        out,
    )
    assert code == 2 and "val.jsonl, example 0, field 'query'" in err and "take 8 pieces" in err
    code, err = run_cli(
        capsys,
        "sanity",
        "--model",
        model_dir,
        "--data_dir",
        data,
        "--methods",
        "random",
        "--max_examples",
        "0",
        "--output_dir",
        out,
    )
    assert code == 2 and "--max_examples must be a positive integer, got 0" in err
    assert not out.exists()
