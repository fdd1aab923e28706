"""Values from elsewhere that used to train or score nonsense without a word, or fail mid-run with an error
naming nothing (issue 36): NaN/inf and out-of-range numbers of every command and spec field, [UNK] words,
model folders without tokenizer files or with broken weights, label spellings, texts of special tokens only,
inconsistent files. Each must fail before any model pass, through the CLI, with one line naming the file,
line, field or option (exit status 2 for a bad option, 1 for bad data), or, where the input is fine, give the
right result. The conventions are tests/test_bad_input.py's."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from sgt_nlp import cli
from tests import tiny
from tests.test_bad_input import train_args
from tests.toy_data import write_csv, write_eraser


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny.save_binary_bert(tmp_path_factory.mktemp("model"))


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    return lines[0]


def assert_refused(code: int, err: str, status: int, expected: list[str], command: str) -> None:
    assert code == status, err
    line = error_line(err)
    assert line.startswith(f"sgt-nlp {command}: error: ") and "Traceback" not in err
    for words in expected:
        assert words in line, line


def sentences_csv(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_csv(folder / "t.csv", [(s, "pos" if y else "neg") for s, y in tiny.SENTENCES])


def long_document(data: Path) -> None:
    (data / "docs" / "val_1").write_text("the film was good " * 60 + "\n")


# ---- numbers that cannot be right --------------------------------------------------------------------------

# (case, options, the words of the error)
TRAIN_NUMBER_CASES = [
    ("kl weight nan", ["--sgt_kl_weight", "nan"], ["--sgt_kl_weight must be a finite number, got nan"]),
    ("kl weight inf", ["--sgt_kl_weight", "inf"], ["--sgt_kl_weight must be a finite number, got inf"]),
    ("kl weight negative", ["--sgt_kl_weight", "-1"], ["--sgt_kl_weight must be in [0.0, inf]"]),
    ("mask fraction nan", ["--sgt_mask_fraction", "nan"], ["--sgt_mask_fraction must be a finite number"]),
    ("mask fraction 1", ["--sgt_mask_fraction", "1"], ["--sgt_mask_fraction must be in [0.0, 1.0)"]),
    ("learning rate nan", ["--learning_rate", "nan"], ["--learning_rate must be a finite number, got nan"]),
    ("learning rate negative", ["--learning_rate", "-0.1"], ["--learning_rate must be in [0.0, inf]"]),
    ("epochs inf", ["--num_train_epochs", "inf"], ["--num_train_epochs must be a finite number, got inf"]),
    ("weight decay -inf", ["--weight_decay=-inf"], ["--weight_decay must be a finite number"]),
    ("grad norm nan", ["--max_grad_norm", "nan"], ["--max_grad_norm must be a finite number"]),
    ("adam beta 1", ["--adam_beta2", "1.0"], ["--adam_beta2 must be in [0.0, 1.0)"]),
    ("lora alpha nan", ["--lora_alpha", "nan"], ["--lora_alpha must be a finite number"]),
    ("lora alpha zero", ["--lora_alpha", "0"], ["--lora_alpha must be in (0.0, inf]"]),
    ("lora dropout nan", ["--lora_dropout", "nan"], ["--lora_dropout"]),
    ("negative seed", ["--seed", "-1"], ["--seed must be in [0, 4294967295], got -1"]),
    ("negative subset seed", ["--subset_seed", "-2"], ["--subset_seed must be in [0, 4294967295]"]),
    ("zero batch size", ["--per_device_train_batch_size", "0"], ["--per_device_train_batch_size must be in"]),
    (
        "zero accumulation",
        ["--gradient_accumulation_steps", "0"],
        ["--gradient_accumulation_steps must be in"],
    ),
]


@pytest.mark.parametrize("case,options,expected", TRAIN_NUMBER_CASES, ids=[c[0] for c in TRAIN_NUMBER_CASES])
def test_train_refuses_numbers_that_cannot_be_right(tmp_path, capsys, model_dir, case, options, expected):
    out = tmp_path / "out"
    argv = train_args(model_dir, out, "--train_file", sentences_csv(tmp_path / "d"), *options)
    code, err = run_cli(capsys, *argv)
    assert_refused(code, err, 2, expected, "train")
    assert not out.exists()


EVALUATE_NUMBER_CASES = [
    ("threshold nan", ["--threshold", "nan"], ["--threshold must be a finite number, got nan"]),
    ("threshold 1", ["--threshold", "1"], ["--threshold must be in (0.0, 1.0)"]),
    ("aopc bins inf", ["--aopc_thresholds", "0.1,inf"], ["--aopc_thresholds must be a finite number"]),
    ("batch size 0", ["--batch_size", "0"], ["--batch_size must be a positive integer, got 0"]),
    ("negative seed", ["--seed", "-1"], ["--seed must be in [0, inf]"]),
]


@pytest.mark.parametrize(
    "case,options,expected", EVALUATE_NUMBER_CASES, ids=[c[0] for c in EVALUATE_NUMBER_CASES]
)
def test_evaluate_refuses_numbers_that_cannot_be_right(tmp_path, capsys, model_dir, case, options, expected):
    out = tmp_path / "out"
    data = write_eraser(tmp_path / "data")
    argv = ["evaluate", "--model", model_dir, "--data_dir", data, "--split", "val", "--output_dir", out]
    code, err = run_cli(capsys, *argv, "--methods", "random", *options)
    assert_refused(code, err, 2, expected, "evaluate")
    assert not out.exists()


OTHER_NUMBER_CASES = [
    ("demo kl weight nan", ["demo", "--sgt_kl_weight", "nan"], ["--sgt_kl_weight must be a finite number"]),
    ("demo epochs inf", ["demo", "--epochs", "inf"], ["--epochs must be a finite number, got inf"]),
    ("demo learning rate 0", ["demo", "--learning_rate", "0"], ["--learning_rate must be in (0.0, inf]"]),
    ("demo mask fraction", ["demo", "--sgt_mask_fraction", "1.5"], ["--sgt_mask_fraction must be in"]),
    ("demo seeds", ["demo", "--seeds", "0,x"], ["--seeds '0,x'", "non-negative integers"]),
    ("demo zero documents", ["demo", "--n_train", "0"], ["--n_train must be a positive integer"]),
    (
        "experiment wait nan",
        ["experiment", "--preset", "smoke", "--output_dir", "{tmp}/x", "--wait_seconds", "nan"],
        ["--wait_seconds must be a finite number, got nan"],
    ),
    (
        "experiment seeds",
        ["experiment", "--preset", "smoke", "--output_dir", "{tmp}/x", "--seeds", "-1"],
        ["--seeds '-1'"],
    ),
    ("report max examples", ["report", "{tmp}", "--max_examples", "-1"], ["--max_examples must be in [0"]),
]


@pytest.mark.parametrize("case,argv,expected", OTHER_NUMBER_CASES, ids=[c[0] for c in OTHER_NUMBER_CASES])
def test_other_commands_refuse_numbers_that_cannot_be_right(tmp_path, capsys, case, argv, expected):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, err = run_cli(capsys, *argv)
    assert_refused(code, err, 2, expected, argv[0])
    assert not (tmp_path / "x").exists()


def _spec(tmp_path: Path, change) -> Path:
    from sgt_nlp.experiments.spec import PRESETS, spec_to_dict

    raw = spec_to_dict(PRESETS["smoke"])
    change(raw)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))  # json writes NaN and Infinity, which json.loads reads back
    return path


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(raw):
        target = raw
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


SPEC_CASES = [
    ("epochs as text", _set("datasets", 0, "epochs", "3"), ["datasets[0] (synthetic).epochs: '3'", "float"]),
    ("epochs nan", _set("datasets", 0, "epochs", float("nan")), [".epochs: a finite number is needed"]),
    ("max_length as text", _set("datasets", 0, "max_length", "64"), [".max_length: '64' is not of type int"]),
    ("learning rate inf", _set("datasets", 0, "learning_rates", [float("inf")]), [".learning_rates:"]),
    ("threshold 2", _set("datasets", 0, "threshold", 2.0), [".threshold: must be in (0, 1)"]),
    ("seed as text", _set("seeds", [0, "1"]), ["seeds: (0, '1') is not of type tuple[int, ...]"]),
    ("negative seed", _set("seeds", [-1]), ["seeds: must be in [0, inf], got -1"]),
    ("warmup 2", _set("warmup", 2.0), ["warmup: must be in [0, 1), got 2.0"]),
    ("ig steps as float", _set("ig_steps", 2.5), ["ig_steps: 2.5 is not of type int"]),
    ("comparisons as a number", _set("comparisons", 5), ["comparisons: 5 is not of type"]),
    (
        "synthetic count as text",
        _set("datasets", 0, "synthetic", "n_train", "64"),
        [".synthetic.n_train: '64' is not a finite value of type"],
    ),
    (
        "synthetic noise nan",
        _set("datasets", 0, "synthetic", "label_noise", float("nan")),
        [".synthetic.label_noise: nan"],
    ),
    (
        "synthetic unknown",
        _set("datasets", 0, "synthetic", "n_docs", 3),
        [".synthetic.n_docs: unknown setting"],
    ),
    (
        "synthetic out of range",
        _set("datasets", 0, "synthetic", "label_noise", 0.7),
        [".synthetic: label_noise must be in [0, 0.5)"],
    ),
    (
        "arm kl weight nan",
        _set("arms", "sgt", "sgt_kl_weight", float("nan")),
        ["arms.sgt.sgt_kl_weight must be a finite number, got nan"],
    ),
    (
        "arm fraction as text",
        _set("arms", "sgt", "sgt_mask_fraction", "0.5"),
        ["arms.sgt.sgt_mask_fraction must be a finite number, got '0.5'"],
    ),
    (
        "arm unknown strategy",
        _set("arms", "sgt", "sgt_mask_strategy", "blank"),
        ["arms.sgt.sgt_mask_strategy='blank' is not one of"],
    ),
]


@pytest.mark.parametrize("case,change,expected", SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_spec_fields_have_their_type_and_range(tmp_path, capsys, case, change, expected):
    spec = _spec(tmp_path, change)
    with pytest.raises(SystemExit) as exit_info:  # the experiment parser's error: usage line, status 2
        cli.main(["experiment", "--spec", str(spec), "--output_dir", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "Traceback" not in err and str(spec) in err
    for words in expected:
        assert words in err, err
    assert not (tmp_path / "x").exists()


# ---- uncaught errors that named nothing --------------------------------------------------------------------


def test_max_length_beyond_the_model_positions(tmp_path, capsys, model_dir):
    """The tiny BERT has 128 positions: a longer input failed inside the forward ("size of tensor a ... must
    match ... (128)")."""
    data = write_eraser(tmp_path / "data")
    long_document(data)
    out = tmp_path / "out"
    argv = ["evaluate", "--model", model_dir, "--data_dir", data, "--split", "val", "--output_dir", out]
    code, err = run_cli(capsys, *argv, "--methods", "random", "--max_length", "1602")
    assert_refused(code, err, 2, ["--max_length 1602", "128 positions", "val.jsonl, line 2"], "evaluate")
    assert not out.exists()
    # a max_length within the limit cuts the same document and runs
    assert run_cli(capsys, *argv, "--methods", "random", "--max_length", "128")[0] == 0
    sanity = ["sanity", "--model", model_dir, "--data_dir", data, "--output_dir", tmp_path / "s"]
    code, err = run_cli(capsys, *sanity, "--max_length", "300")
    assert_refused(code, err, 2, ["--max_length 300", "128 positions", "val.jsonl, example 1"], "sanity")
    assert not (tmp_path / "s").exists()

    rows = [("the film was good " * 60, "pos"), ("bad", "neg")]
    train = write_csv(tmp_path / "long.csv", rows)
    out = tmp_path / "trained"
    code, err = run_cli(capsys, *train_args(model_dir, out, "--train_file", train, "--max_length", "400"))
    assert_refused(code, err, 2, ["--max_length 400", "128 positions", "long.csv row 0"], "train")
    assert not (out / "model.safetensors").exists()

    code, err = run_cli(
        capsys, "explain", "--model", model_dir, "--text", "good " * 300, "--html", tmp_path / "e.html"
    )
    assert_refused(code, err, 2, ["--max_length 512", "128 positions", "text 1 takes 302"], "explain")


# ---- [UNK] is a word ---------------------------------------------------------------------------------------


def test_unknown_words_are_scored_masked_and_removed(model_dir):
    """Out-of-vocabulary words (emoji, other scripts) become [UNK]; counted as special they scored exactly 0
    under every method, occlusion included, and SGT never masked them."""
    import torch

    from sgt_nlp.explain import explain_texts
    from sgt_nlp.masking import lowest_k_mask, maskable_positions, never_drawn_ids, special_ids_of

    text = "the film was \N{GRINNING FACE} good \N{SNOWMAN}"
    for method in ("occlusion", "gradient", "integrated_gradients"):
        (result,) = explain_texts(str(model_dir), [text], method=method)
        scores = dict(zip(result["words"], result["scores"], strict=True))
        assert scores["\N{GRINNING FACE}"] != 0 and scores["\N{SNOWMAN}"] != 0, (method, scores)

    tokenizer = tiny.wordpiece_tokenizer()
    encoded = tokenizer([text], return_tensors="pt")
    unk = encoded["input_ids"] == tokenizer.unk_token_id
    assert unk.sum() == 2
    candidates = maskable_positions(
        encoded["input_ids"], encoded["attention_mask"], special_ids_of(tokenizer)
    )
    assert candidates[unk].all() and not candidates[0, 0] and not candidates[0, -1]  # [CLS], [SEP] stay out
    scores = torch.where(unk, -1.0, 1.0)  # the [UNK]s least salient: SGT masks them
    assert torch.equal(lowest_k_mask(scores, candidates, torch.tensor([2])), unk)
    # a random replacement is still a real word, never [UNK]
    assert tokenizer.unk_token_id in never_drawn_ids(tokenizer)


def test_an_unknown_token_that_is_also_structural_stays_special():
    """GPT-2's <|endoftext|> is unk, bos and eos at once: it marks structure, so it is never a word."""
    from types import SimpleNamespace

    from sgt_nlp.masking import special_ids_of

    gpt2_like = SimpleNamespace(
        all_special_ids=[0], unk_token_id=0, bos_token_id=0, eos_token_id=0, pad_token_id=None
    )
    assert special_ids_of(gpt2_like) == [0]
    bert_like = SimpleNamespace(
        all_special_ids=[0, 1, 2, 3, 4], unk_token_id=1, pad_token_id=0, cls_token_id=2, sep_token_id=3
    )
    assert special_ids_of(bert_like) == [0, 2, 3, 4]


# ---- model folders from elsewhere --------------------------------------------------------------------------


def _copy_model(model_dir: Path, folder: Path) -> Path:
    import shutil

    return Path(shutil.copytree(model_dir, folder))


def no_tokenizer_files(folder: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)


def empty_weights(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"")


def truncated_weights(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def tokenizer_without_pad_or_eos(folder: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    no_tokenizer_files(folder)
    backend = tiny.wordpiece_tokenizer().backend_tokenizer
    PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    ).save_pretrained(folder)


# (case, change to a copy of the model folder, the words of the error); exit status 1 (bad data)
MODEL_CASES = [
    ("no tokenizer files", no_tokenizer_files, ["no tokenizer files", "tokenizer.save_pretrained"]),
    ("empty weights", empty_weights, ["model.safetensors: not a readable safetensors file", "too small"]),
    ("truncated weights", truncated_weights, ["model.safetensors: not a readable safetensors file"]),
    ("neither pad nor eos", tokenizer_without_pad_or_eos, ["neither a pad nor an eos token", "pad_token"]),
]


@pytest.mark.parametrize("case,change,expected", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_broken_model_folders_are_refused(tmp_path, capsys, model_dir, case, change, expected):
    model = _copy_model(model_dir, tmp_path / "model")
    change(model)
    data = write_eraser(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["evaluate", "--model", model, "--data_dir", data, "--split", "val", "--output_dir", out]
    code, err = run_cli(capsys, *argv, "--methods", "random")
    assert_refused(code, err, 1, [str(model), *expected], "evaluate")
    assert not out.exists()
    code, err = run_cli(
        capsys, "explain", "--model", model, "--text", "good film", "--html", tmp_path / "e.html"
    )
    assert_refused(code, err, 1, [str(model), *expected], "explain")
    code, err = run_cli(capsys, *train_args(model, out, "--train_file", sentences_csv(tmp_path / "d")))
    assert_refused(code, err, 1, [str(model), *expected], "train")
    assert not out.exists()


# ---- labels: one spelling per class ------------------------------------------------------------------------


def test_label_spellings_are_one_class(tmp_path):
    from sgt_nlp.finetune_data import DataArguments, load_raw_splits, tokenize_splits

    rows = [("good", "pos"), ("fun", " pos"), ("great", "pos "), ("bad", "neg"), ("sad", "neg\t")]
    data = DataArguments(train_file=str(write_csv(tmp_path / "t.csv", rows)))
    train, _, labels = load_raw_splits(data)
    assert labels == ["neg", "pos"]
    tokenized, _ = tokenize_splits(train, None, labels, tiny.wordpiece_tokenizer(), data, 16)
    assert tokenized["labels"] == [1, 1, 1, 0, 0]

    rows = [("good", "1"), ("fun", "1.0"), ("bad", "0"), ("sad", "0.0"), ("odd", "2")]
    path = tmp_path / "n.jsonl"
    path.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in rows) + "\n")
    data = DataArguments(train_file=str(path))
    train, _, labels = load_raw_splits(data)
    assert labels == ["0", "1", "2"]
    tokenized, _ = tokenize_splits(train, None, labels, tiny.wordpiece_tokenizer(), data, 16)
    assert tokenized["labels"] == [1, 1, 0, 0, 2]


def _val_csv(tmp_path: Path, label: str) -> list[str]:
    train = sentences_csv(tmp_path / "d")
    val = write_csv(tmp_path / "d" / "v.csv", [("good film", "pos"), ("bad film", label)])
    return ["--train_file", str(train), "--validation_file", str(val)]


LABEL_CASES = [
    (
        "case variants in training",
        lambda d: ["--train_file", str(write_csv(d / "t.csv", [("good", "pos"), ("bad", "Pos")]))],
        ["t.csv", "labels 'Pos' and 'pos' differ only in case"],
    ),
    (
        "validation label not trained on",
        lambda d: _val_csv(d, "negative"),
        ["v.csv, line 3, field 'label'", "'negative' is not one of the training labels ['neg', 'pos']"],
    ),
    (
        "validation label in another case",
        lambda d: _val_csv(d, "NEG"),
        ["v.csv, line 3, field 'label'", "'NEG' is not one of the training labels", "did you mean 'neg'?"],
    ),
]


@pytest.mark.parametrize("case,data,expected", LABEL_CASES, ids=[c[0] for c in LABEL_CASES])
def test_train_refuses_labels_spelt_two_ways(tmp_path, capsys, model_dir, case, data, expected):
    out = tmp_path / "out"
    code, err = run_cli(capsys, *train_args(model_dir, out, *data(tmp_path)))
    assert_refused(code, err, 1, expected, "train")
    assert not out.exists()


def _relabel(data: Path, split: str, line: int, label: str) -> None:
    path = data / f"{split}.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[line - 1])
    record["classification"] = label
    lines[line - 1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


def test_eraser_labels_are_stripped_and_case_variants_refused(tmp_path, capsys, model_dir):
    from sgt_nlp.eraser import load_split

    data = write_eraser(tmp_path / "data")
    _relabel(data, "val", 1, " POS")
    _relabel(data, "val", 2, "NEG ")
    assert load_split(data, "val").labels == ("NEG", "POS")
    argv = ["evaluate", "--model", model_dir, "--data_dir", data, "--split", "val", "--methods", "random"]
    assert run_cli(capsys, *argv, "--output_dir", tmp_path / "ok")[0] == 0

    _relabel(data, "train", 3, "pos")
    out = tmp_path / "out"
    code, err = run_cli(capsys, *train_args(model_dir, out, "--data_dir", data))
    assert_refused(
        code, err, 1, ["train.jsonl, line 3, field 'classification'", "differs only in case"], "train"
    )
    assert not out.exists()


# ---- texts the model cannot read, treated as empty ---------------------------------------------------------

ZERO_WIDTH = "\u200b\u200c"


@pytest.mark.parametrize("text", ["", "[SEP] [CLS]", ZERO_WIDTH, f"[PAD] {ZERO_WIDTH} [MASK]"])
def test_explain_refuses_texts_of_special_or_zero_width_tokens_as_empty(tmp_path, capsys, model_dir, text):
    html = tmp_path / "e.html"
    code, err = run_cli(capsys, "explain", "--model", model_dir, "--text", text, "--html", html)
    assert_refused(code, err, 1, ["text 1: no token the model reads as text"], "explain")
    assert not html.exists()


def test_a_text_of_unknown_words_is_read(tmp_path, capsys, model_dir):
    html = tmp_path / "e.html"
    emoji = "\N{GRINNING FACE} \N{SNOWMAN}"
    code, err = run_cli(capsys, "explain", "--model", model_dir, "--text", emoji, "--html", html)
    assert code == 0, err and html.exists()


def test_evaluate_refuses_a_document_of_special_tokens(tmp_path, capsys, model_dir):
    data = write_eraser(tmp_path / "data")
    (data / "docs" / "val_2").write_text(f"[SEP] {ZERO_WIDTH} [CLS]\n")
    out = tmp_path / "out"
    argv = ["evaluate", "--model", model_dir, "--data_dir", data, "--split", "val", "--output_dir", out]
    code, err = run_cli(capsys, *argv, "--methods", "random")
    assert_refused(
        code, err, 1, ["val.jsonl, line 3, field 'docids' (val_2)", "no token the model reads"], "evaluate"
    )
    assert not out.exists()
    code, err = run_cli(capsys, "sanity", "--model", model_dir, "--data_dir", data, "--output_dir", out)
    assert_refused(code, err, 1, ["val.jsonl, example 2", "no token the model reads"], "sanity")
    assert not out.exists()


TRAIN_TEXT_CASES = [
    (
        "text of special tokens",
        lambda d: write_csv(d / "t.csv", [("good", "pos"), ("[SEP] [CLS]", "neg")]),
        ["t.csv, line 3, field 'text': no token the model reads as text"],
    ),
    (
        "text of zero-width characters",
        lambda d: write_csv(d / "t.csv", [(ZERO_WIDTH, "pos"), ("bad", "neg")]),
        ["t.csv, line 2, field 'text': no token the model reads as text"],
    ),
    (
        "numeric text column",
        lambda d: write_csv(d / "t.csv", [(1, "pos"), (2, "neg")]),
        ["t.csv, field 'text': a text column holds int64 values, not text"],
    ),
]


@pytest.mark.parametrize("case,data,expected", TRAIN_TEXT_CASES, ids=[c[0] for c in TRAIN_TEXT_CASES])
def test_train_refuses_texts_it_cannot_read(tmp_path, capsys, model_dir, case, data, expected):
    out = tmp_path / "out"
    code, err = run_cli(capsys, *train_args(model_dir, out, "--train_file", data(tmp_path)))
    assert_refused(code, err, 1, expected, "train")
    assert not out.exists()


# ---- files read from each other ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory, model_dir):
    """An evaluation folder of the tiny model (random scores) and its data."""
    root = tmp_path_factory.mktemp("evaluation")
    data = write_eraser(root / "data")
    out = root / "eval"
    argv = ["evaluate", "--model", model_dir, "--data_dir", data, "--split", "val", "--output_dir", out]
    assert cli.main([str(a) for a in [*argv, "--methods", "random"]]) == 0
    return out


def _copy_evaluation(evaluation: Path, folder: Path) -> Path:
    import shutil

    return Path(shutil.copytree(evaluation, folder))


def _rewrite_results(folder: Path, change) -> None:
    path = folder / "random" / "results.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    change(records[0])
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


PROBABILITY_CASES = [
    (
        "probability above 1",
        lambda r: r["classification_scores"].update(POS=1.5),
        ["POS", "in [0, 1], got 1.5"],
    ),
    ("negative probability", lambda r: r["classification_scores"].update(NEG=-0.2), ["NEG", "got -0.2"]),
    (
        "probabilities not summing to 1",
        lambda r: r["sufficiency_classification_scores"].update(NEG=0.9, POS=0.9),
        ["sufficiency_classification_scores", "sum to 1.8, not 1"],
    ),
]


@pytest.mark.parametrize("case,change,expected", PROBABILITY_CASES, ids=[c[0] for c in PROBABILITY_CASES])
def test_rescore_checks_probabilities_against_their_range(
    tmp_path, capsys, evaluation, case, change, expected
):
    folder = _copy_evaluation(evaluation, tmp_path / "eval")
    _rewrite_results(folder, change)
    before = (folder / "random" / "scores.json").read_text()
    code, err = run_cli(capsys, "rescore", folder)
    assert_refused(code, err, 1, ["results.jsonl, line 1", *expected], "rescore")
    assert (folder / "random" / "scores.json").read_text() == before


RUN_JSON_CASES = [
    ("threshold above 1", "threshold", 5, "a fraction in (0, 1) is needed, got 5"),
    ("threshold NaN", "threshold", float("nan"), "got nan"),
    ("threshold a string", "threshold", "0.2", "got '0.2'"),
    (
        "a negative AOPC bin",
        "aopc_thresholds",
        [0.1, -0.5],
        "fractions in (0, 1) are needed, got [0.1, -0.5]",
    ),
    ("no AOPC bins", "aopc_thresholds", [], "got []"),
]


@pytest.mark.parametrize("case,key,value,expected", RUN_JSON_CASES, ids=[c[0] for c in RUN_JSON_CASES])
def test_rescore_checks_the_removal_amounts_of_run_json(
    tmp_path, capsys, evaluation, case, key, value, expected
):
    folder = _copy_evaluation(evaluation, tmp_path / "eval")
    run = json.loads((folder / "run.json").read_text())
    run[key] = value
    (folder / "run.json").write_text(json.dumps(run))
    before = (folder / "random" / "scores.json").read_text()
    code, err = run_cli(capsys, "rescore", folder)
    assert_refused(code, err, 1, [f"{folder / 'run.json'}, field '{key}'", expected], "rescore")
    assert (folder / "random" / "scores.json").read_text() == before


REPORT_CASES = [
    ("another split", "split", "test"),
    ("other data", "data_dir", "{tmp}"),
]


@pytest.mark.parametrize("case,key,value", REPORT_CASES, ids=[c[0] for c in REPORT_CASES])
def test_report_refuses_folders_that_evaluated_different_things(
    tmp_path, capsys, evaluation, case, key, value
):
    other = _copy_evaluation(evaluation, tmp_path / "other")
    run = json.loads((other / "run.json").read_text())
    run[key] = str(tmp_path) if value == "{tmp}" else value
    (other / "run.json").write_text(json.dumps(run))
    page = tmp_path / "r.html"
    code, err = run_cli(capsys, "report", evaluation, other, "--output", page)
    assert_refused(code, err, 1, [f"{other / 'run.json'}: {key}", "differs from", "same examples"], "report")
    assert not page.exists()
    # the same folder twice (two seeds, say) is a report
    assert (
        run_cli(capsys, "report", evaluation, _copy_evaluation(evaluation, tmp_path / "b"), "--output", page)[
            0
        ]
        == 0
    )


def test_demo_options_that_make_a_spec_that_cannot_run(tmp_path, capsys):
    out = tmp_path / "demo"
    code, err = run_cli(capsys, "demo", "--output_dir", out, "--max_length", "4")
    assert_refused(code, err, 2, ["sgt-nlp demo options", "max_length: must be in [8, inf], got 4"], "demo")
    assert not out.exists()


@pytest.mark.parametrize("option,value", [("--seed", "-1"), ("--precision_examples", "-3")])
def test_sanity_refuses_negative_counts(tmp_path, capsys, model_dir, option, value):
    data = write_eraser(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["sanity", "--model", model_dir, "--data_dir", data, "--output_dir", out, option, value]
    code, err = run_cli(capsys, *argv)
    assert_refused(code, err, 2, [f"{option} must be in [0, inf], got {value}"], "sanity")
    assert not out.exists()


@pytest.mark.parametrize(
    "key,value,why",
    [
        ("threshold", 0.9, "different removal amounts"),
        ("max_length", 7, "saw different words"),
        ("truncation_mode", "tail", "saw different words"),
        ("precision", "bf16", "two protocols"),
    ],
)
def test_report_names_a_different_setting_on_the_page(tmp_path, capsys, evaluation, key, value, why):
    other = _copy_evaluation(evaluation, tmp_path / "other")
    run = json.loads((other / "run.json").read_text())
    assert key in run and run[key] != value
    run[key] = value
    (other / "run.json").write_text(json.dumps(run))
    page = tmp_path / "r.html"
    assert run_cli(capsys, "report", evaluation, other, "--output", page)[0] == 0
    text = html.unescape(page.read_text())
    assert f"{key} {value!r} differs from" in text and why in text


def damaged_tokenizer_json(folder: Path) -> None:
    (folder / "tokenizer.json").write_text('{"version": "1.0", "model": ')


def damaged_config(folder: Path) -> None:
    (folder / "config.json").write_text("{not json")


@pytest.mark.parametrize(
    "change,expected",
    [
        (damaged_tokenizer_json, ["the tokenizer files cannot be read"]),
        (damaged_config, ["config.json: not valid JSON"]),
    ],
    ids=["damaged tokenizer.json", "damaged config.json"],
)
def test_damaged_model_files_are_named(tmp_path, capsys, model_dir, change, expected):
    model = _copy_model(model_dir, tmp_path / "model")
    change(model)
    code, err = run_cli(
        capsys, "explain", "--model", model, "--text", "good film", "--html", tmp_path / "e.html"
    )
    assert_refused(code, err, 1, [str(model), *expected], "explain")


def test_report_checks_the_probabilities_it_compares(tmp_path, capsys, evaluation):
    other = _copy_evaluation(evaluation, tmp_path / "other")
    _rewrite_results(other, lambda r: r["comprehensiveness_classification_scores"].update(POS=7.0))
    code, err = run_cli(capsys, "report", evaluation, other, "--output", tmp_path / "r.html")
    expected = ["results.jsonl, line 1, field 'comprehensiveness_classification_scores.POS'", "[0, 1]: 7.0"]
    assert_refused(code, err, 1, expected, "report")


def test_a_validation_file_is_read_by_its_own_type(tmp_path):
    from sgt_nlp.finetune_data import DataArguments, load_raw_splits

    train = sentences_csv(tmp_path / "d")
    val = tmp_path / "d" / "v.jsonl"
    val.write_text("".join(json.dumps({"text": t, "label": " pos"}) + "\n" for t in ("good", "fun")))
    data = DataArguments(train_file=str(train), validation_file=str(val))
    _, validation, labels = load_raw_splits(data)
    assert labels == ["neg", "pos"] and validation is not None and validation["text"] == ["good", "fun"]


def test_a_json_lines_file_that_is_not_json_is_named(tmp_path, capsys, model_dir):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "good", "label": "pos"}\n{"text": "bad", "label": \n')
    out = tmp_path / "out"
    code, err = run_cli(capsys, *train_args(model_dir, out, "--train_file", path))
    assert_refused(code, err, 1, [f"{path}, line 2: not valid JSON (Expecting value)"], "train")
    assert not out.exists()


def weights_without_head(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    kept = {k: v for k, v in weights.items() if not k.startswith("classifier")}
    save_file(kept, folder / "model.safetensors", metadata={"format": "pt"})


def weights_of_another_shape(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {"0": "NEG", "1": "POS", "2": "MIXED"}
    config["label2id"] = {"NEG": 0, "POS": 1, "MIXED": 2}
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "change,expected",
    [
        (weights_without_head, ["the weights lack classifier.bias, classifier.weight", "at random"]),
        (weights_of_another_shape, ["the weights do not fit its config.json"]),
    ],
    ids=["no classification head", "head of another size"],
)
def test_weights_that_do_not_make_the_classifier_are_refused(tmp_path, capsys, model_dir, change, expected):
    """A base model's weights loaded with a random head (a warning, exit 0, every score noise)."""
    model = _copy_model(model_dir, tmp_path / "model")
    change(model)
    code, err = run_cli(
        capsys, "explain", "--model", model, "--text", "good film", "--html", tmp_path / "e.html"
    )
    assert_refused(code, err, 1, [str(model), *expected], "explain")
