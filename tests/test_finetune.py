"""The training entry point: data formats, model card, bad input, --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from transformers import AutoModelForSequenceClassification

from sgt_nlp.finetune import DataArguments, main, parse_args
from tests import tiny
from tests.toy_data import ROOT, write_csv, write_eraser


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_bert")
    tiny.tiny_model("bert").save_pretrained(folder)
    tiny.wordpiece_tokenizer().save_pretrained(folder)
    return folder


def common_args(out: Path) -> list[str]:
    return [
        "--output_dir",
        str(out),
        "--num_train_epochs",
        "1",
        "--per_device_train_batch_size",
        "4",
        "--report_to",
        "none",
        "--use_cpu",
        "--save_strategy",
        "no",
        "--eval_strategy",
        "epoch",
        "--sgt_mask_fraction",
        "0.3",
        "--sgt_mask_strategy",
        "mask_token",
        "--max_length",
        "32",
        "--disable_tqdm",
        "true",
    ]


def test_csv_training_saves_model_tokenizer_and_card(tmp_path, model_dir):
    rows = [(s, "pos" if y else "neg") for s, y in tiny.SENTENCES]
    train = write_csv(tmp_path / "train.csv", rows)
    val = write_csv(tmp_path / "val.csv", rows[:4])
    out = tmp_path / "out"
    main(
        [
            "--model_name_or_path",
            str(model_dir),
            "--train_file",
            str(train),
            "--validation_file",
            str(val),
            *common_args(out),
        ]
    )
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert (out / "tokenizer.json").is_file() or (out / "vocab.txt").is_file()
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers")
    assert "| `sgt_mask_fraction` | `0.3` |" in card and "| `sgt_mask_strategy` | `mask_token` |" in card
    assert "eval_masked_accuracy" in card and "eval_accuracy" in card


def test_eraser_folder_training(tmp_path, model_dir):
    data = write_eraser(tmp_path / "eraser")
    out = tmp_path / "out"
    main(["--model_name_or_path", str(model_dir), "--data_dir", str(data), *common_args(out)])
    state = json.loads((out / "trainer_state.json").read_text())
    evals = [h for h in state["log_history"] if "eval_accuracy" in h]
    assert evals and 0 <= evals[-1]["eval_macro_f1"] <= 1 and "eval_masked_accuracy" in evals[-1]
    assert AutoModelForSequenceClassification.from_pretrained(out).config.label2id == {"NEG": 0, "POS": 1}
    # evaluating the model with --update_model_card adds the summary table to its model card, replacing it on
    # a second run (which needs --overwrite_output_dir to reuse the evaluation folder)
    from sgt_nlp.evaluation import main as evaluate_main

    for removal in ("delete", "mask_token"):
        evaluate_main(
            [
                "--model",
                str(out),
                "--data_dir",
                str(data),
                "--split",
                "val",
                "--output_dir",
                str(tmp_path / "eval"),
                "--methods",
                "gradient,random",
                "--removal",
                removal,
                "--update_model_card",
                "--overwrite_output_dir",
            ]
        )
    card = (out / "README.md").read_text()
    assert card.count("## Rationale evaluation") == 1 and "removal `mask_token`" in card
    assert "| out | gradient | mask_token |" in card and card.index("## Rationale evaluation") < card.index(
        "## How it was trained"
    )


def test_saved_dataset_folder_training(tmp_path, model_dir):
    import datasets

    ds = datasets.Dataset.from_dict(
        {"text": [s for s, _ in tiny.SENTENCES], "label": [y for _, y in tiny.SENTENCES]}
    )
    datasets.DatasetDict({"train": ds, "val": ds}).save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "out"
    main(["--model_name_or_path", str(model_dir), "--dataset_path", str(tmp_path / "ds"), *common_args(out)])
    assert (out / "README.md").is_file()


def test_bad_label_in_validation_names_the_row(tmp_path, model_dir):
    import datasets

    train = datasets.Dataset.from_dict({"text": ["good", "bad"], "label": [1, 0]})
    val = datasets.Dataset.from_dict({"text": ["good", "bad", "meh"], "label": [1, 0, 7]})
    datasets.DatasetDict({"train": train, "val": val}).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(
        ValueError,
        match=r"ds \[val\], field 'label': row 2: 7 is not one of the training labels \['0', '1'\]",
    ):
        main(
            [
                "--model_name_or_path",
                str(model_dir),
                "--dataset_path",
                str(tmp_path / "ds"),
                *common_args(tmp_path / "o"),
            ]
        )


def test_missing_text_column_and_hub_names_are_refused(tmp_path, model_dir):
    train = write_csv(tmp_path / "train.csv", [("good", "pos")])
    with pytest.raises(ValueError, match="train.csv, field 'sentence': no such column"):
        main(
            [
                "--model_name_or_path",
                str(model_dir),
                "--train_file",
                str(train),
                "--text_column",
                "sentence",
                *common_args(tmp_path / "o"),
            ]
        )
    with pytest.raises(ValueError, match="never downloads from a model hub"):
        main(
            [
                "--model_name_or_path",
                "bert-base-uncased",
                "--train_file",
                str(train),
                *common_args(tmp_path / "o"),
            ]
        )
    with pytest.raises(ValueError, match="exactly one of"):
        DataArguments()


def test_json_config_file(tmp_path, model_dir):
    config = tmp_path / "run.json"
    config.write_text(
        json.dumps(
            {
                "model_name_or_path": str(model_dir),
                "train_file": "t.csv",
                "output_dir": "o",
                "sgt_kl_weight": 0.25,
            }
        )
    )
    model_args, data_args, training_args, run_args = parse_args([str(config)])
    assert not run_args.overwrite_output_dir and not run_args.keep_checkpoints
    assert training_args.sgt_kl_weight == 0.25 and data_args.train_file == "t.csv"


def test_script_help_lists_sgt_options():
    done = subprocess.run(
        [sys.executable, "-m", "sgt_nlp.finetune", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0
    for option in (
        "--sgt_mask_fraction",
        "--sgt_saliency_pass",
        "--sgt_saliency_method",
        "--data_dir",
        "--max_length",
        "--learning_rate",
    ):
        assert option in done.stdout


@pytest.mark.parametrize("name", ["single_process", "ddp", "fsdp"])
def test_accelerate_configs_parse(name):
    from accelerate.commands.config.config_args import ClusterConfig

    path = ROOT / "sgt_nlp" / "accelerate_configs" / f"{name}.yaml"
    config = ClusterConfig.from_yaml_file(str(path))
    expected = {"single_process": "NO", "ddp": "MULTI_GPU", "fsdp": "FSDP"}[name]
    assert str(config.distributed_type).split(".")[-1] == expected
    assert yaml.safe_load(path.read_text())["num_machines"] == 1


def test_max_train_samples_draws_both_classes_in_file_order():
    """ERASER files are sorted by class: taking the first N rows would train on one class only."""
    from datasets import Dataset

    from sgt_nlp.sampling import random_subset

    rows = Dataset.from_dict({"row": list(range(40)), "label": ["NEG"] * 20 + ["POS"] * 20})
    subset = random_subset(rows, 10, seed=0)
    kept = subset["row"]
    assert len(kept) == 10 and len(set(kept)) == 10
    assert kept == sorted(kept)  # file order is kept
    assert set(subset["label"]) == {"NEG", "POS"}
    assert random_subset(rows, 10, seed=0)["row"] == kept  # the draw depends on the seed alone
    assert random_subset(rows, 10, seed=1)["row"] != kept
    assert random_subset(rows, 99, seed=0)["row"] == list(range(40))
    with pytest.raises(ValueError, match="max_train_samples"):
        random_subset(rows, -1, seed=0)
