"""Decoder-only classifiers (GPT-2, Llama, Qwen2, Mistral, Gemma, Phi), ModernBERT and LoRA (PEFT) adapters:
SGT steps, explanations and evaluation read the same token as the model's own ``input_ids`` forward, whatever
the padding side and batch makeup. Tiny models from configs; no hub."""

from __future__ import annotations

import contextlib
import json

import datasets
import pytest
import torch
from transformers import DataCollatorWithPadding

import sgt_nlp.objective as objective_module
from sgt_nlp import SaliencyGuidedTrainer, SaliencyGuidedTrainingArguments
from sgt_nlp.eraser.align import align_words
from sgt_nlp.evaluation import EvaluationConfig, evaluate_folder
from sgt_nlp.explainers import get_explainer
from sgt_nlp.masking import replacement_embeddings
from sgt_nlp.saliency import embedding_forward_kwargs, forward_from_embeddings, word_embedding_layer
from sgt_nlp.sanity import SanityConfig, parse_methods, randomization_stages, run_sanity_checks
from tests import tiny
from tests.toy_data import write_eraser

FAMILIES = (*tiny.DECODER_FAMILIES, "modernbert")
SIDES = ("right", "left")


@contextlib.contextmanager
def padding_side(tokenizer, side: str):
    before = tokenizer.padding_side
    tokenizer.padding_side = side
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = before


def model_inputs(batch):
    return {k: v for k, v in batch.items() if k != "labels"}


def make_trainer(tmp_path, family, model, **overrides):
    tok = tiny.family_tokenizer(family)
    texts = [s for s, _ in tiny.SENTENCES]
    dataset = datasets.Dataset.from_dict({"text": texts, "label": [y for _, y in tiny.SENTENCES]})
    dataset = dataset.map(lambda b: tok(b["text"]), batched=True, remove_columns=["text"])
    values = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        max_steps=1,
        learning_rate=1e-2,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=7,
        sgt_mask_strategy="zero",
        disable_tqdm=True,
        sgt_mask_fraction=0.5,
    )
    values.update(overrides)
    return SaliencyGuidedTrainer(
        model=model,
        args=SaliencyGuidedTrainingArguments(**values),
        train_dataset=dataset,
        processing_class=tok,
        data_collator=DataCollatorWithPadding(tok),
    )


def kl_with_nothing_masked(trainer, model, batch) -> tuple[float, float]:
    """(KL, masked tokens) of one training-mode loss where the mask fraction masks no token."""
    model.train()
    trainer.compute_loss(model, dict(batch))
    metrics = trainer._metrics["train"]
    return metrics["kl_loss"][-1], metrics["_masked_tokens"][-1]


# ---- the embeddings forward reads the token the input_ids forward reads ------------------------------------


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("family", FAMILIES)
def test_embeddings_forward_equals_the_input_ids_forward(family, side):
    model = tiny.tiny_family_model(family)
    inputs = model_inputs(tiny.encode_family(family, padding_side=side))
    kwargs = embedding_forward_kwargs(model, inputs)
    with torch.no_grad():
        from_ids = model(**{**inputs, **kwargs}).logits
        embeddings = word_embedding_layer(model)(inputs["input_ids"])
        from_embeddings = forward_from_embeddings(model, embeddings, kwargs, inputs["input_ids"])
        as_transformers_reads_them = model(inputs_embeds=embeddings, **kwargs).logits
    assert torch.equal(from_ids, from_embeddings)
    if family in tiny.DECODER_FAMILIES and side == "right":
        # without the fix the model reads the last position, a padding token for every row but the longest
        longest = inputs["attention_mask"].sum(-1) == inputs["attention_mask"].shape[1]
        assert not torch.allclose(as_transformers_reads_them[~longest], from_ids[~longest], atol=1e-4)


@pytest.mark.parametrize("family", tiny.DECODER_FAMILIES)
def test_decoder_predictions_do_not_depend_on_padding_side(family):
    model = tiny.tiny_family_model(family, seed=2)
    logits = {}
    for side in SIDES:
        inputs = model_inputs(tiny.encode_family(family, padding_side=side))
        with torch.no_grad():
            logits[side] = model(**{**inputs, **embedding_forward_kwargs(model, inputs)}).logits
    torch.testing.assert_close(logits["left"], logits["right"], rtol=1e-4, atol=1e-5)


# ---- one SGT step per family -------------------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("family", FAMILIES)
def test_nothing_masked_gives_zero_kl_and_one_step_masks_only_words(tmp_path, monkeypatch, family, side):
    model = tiny.tiny_family_model(family, seed=1)
    batch = tiny.encode_family(family, padding_side=side)
    for saliency_pass in ("reuse", "eval"):
        trainer = make_trainer(
            tmp_path, family, model, sgt_mask_fraction=0.01, sgt_saliency_pass=saliency_pass
        )
        assert kl_with_nothing_masked(trainer, model, batch) == (0.0, 0.0)

    trainer = make_trainer(tmp_path, family, model)
    tok = trainer.processing_class
    chosen = []
    real_apply = objective_module.apply_mask

    def spy(embeddings, positions, replacements):
        chosen.append(positions.clone())
        return real_apply(embeddings, positions, replacements)

    monkeypatch.setattr(objective_module, "apply_mask", spy)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with padding_side(tok, side):
        batch_ids = next(iter(trainer.get_train_dataloader()))["input_ids"]
        trainer.train()
    logs = [h for h in trainer.state.log_history if "kl_loss" in h]
    assert logs and logs[0]["kl_loss"] > 0 and logs[0]["sgt_masked_token_share"] > 0.3
    masked_ids = batch_ids[chosen[0]]
    special = torch.tensor(tok.all_special_ids)
    assert len(masked_ids) > 0 and not torch.isin(masked_ids, special).any()  # BOS, EOS, CLS, SEP, padding
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())


def test_gpt2_token_type_ids_are_embedded_by_the_word_table_without_breaking_the_capture(tmp_path):
    model = tiny.tiny_family_model("gpt2")
    batch = tiny.encode_family("gpt2")
    batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    trainer = make_trainer(tmp_path, "gpt2", model, sgt_mask_fraction=0.01)
    assert kl_with_nothing_masked(trainer, model, batch) == (0.0, 0.0)
    inputs = model_inputs(batch)
    with torch.no_grad():
        with_types = model(**inputs).logits
        without_types = model(**{k: v for k, v in inputs.items() if k != "token_type_ids"}).logits
    assert not torch.allclose(with_types, without_types)  # GPT-2 adds wte(0): the types are kept, as given


def test_scaled_embeddings_give_replacements_through_the_layer():
    model = tiny.tiny_family_model("gemma")
    layer = word_embedding_layer(model)
    embeddings = layer(torch.tensor([[5, 6, 7]]))
    positions = torch.tensor([[False, True, False]])
    replaced = replacement_embeddings("mask_token", embeddings, positions, layer, mask_token_id=9)
    torch.testing.assert_close(replaced[0, 1], layer(torch.tensor([9]))[0])
    assert not torch.allclose(replaced[0, 1], layer.weight[9])  # Gemma scales rows by sqrt(hidden)


# ---- explanations and evaluation ---------------------------------------------------------------------------

EXPLAINER_SETTINGS = {
    "gradient": {"aggregation": "l2"},
    "integrated_gradients": {"n_steps": 4, "internal_batch_size": 8},
    "smoothgrad": {"n_samples": 2, "noise_std": 0.1},
    "occlusion": {"removal": "delete", "internal_batch_size": 16},
    "conservative": {},
}


@pytest.mark.parametrize("family", FAMILIES)
def test_scores_and_predictions_do_not_depend_on_batch_or_padding(family):
    model = tiny.tiny_family_model(family, seed=3)
    tok = tiny.family_tokenizer(family)
    for name, settings in EXPLAINER_SETTINGS.items():
        explainer = get_explainer(name, model, tokenizer=tok, **settings)
        reference = explainer.attribute(tiny.encode_family(family, padding_side="right"))
        alone = [explainer.attribute(tiny.encode_family(family, [s])) for s in tiny.SENTENCES[:3]]
        for i, single in enumerate(alone):
            torch.testing.assert_close(
                single.per_example()[0], reference.per_example()[i], rtol=1e-4, atol=1e-5
            )
            assert int(single.logits.argmax()) == int(reference.logits[i].argmax())
        if family not in tiny.DECODER_FAMILIES:
            # ModernBERT, like BERT, pools position 0: left padding puts a pad there (sgt_nlp pads right)
            continue
        left = explainer.attribute(tiny.encode_family(family, padding_side="left"))
        for a, b in zip(left.per_example(), reference.per_example(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"{family} {name}")
        assert torch.equal(left.logits.argmax(-1), reference.logits.argmax(-1))


@pytest.fixture(scope="module")
def eraser_dir(tmp_path_factory):
    return write_eraser(tmp_path_factory.mktemp("eraser"))


def save_family(folder, model, family):
    model.config.id2label, model.config.label2id = {0: "NEG", 1: "POS"}, {"NEG": 0, "POS": 1}
    model.save_pretrained(folder)
    tiny.family_tokenizer(family).save_pretrained(folder)
    return folder


def evaluated(model_dir, data_dir, out, batch_size):
    config = EvaluationConfig(
        model=str(model_dir),
        data_dir=str(data_dir),
        output_dir=str(out),
        split="val",
        batch_size=batch_size,
        methods=("gradient", "occlusion"),
        masked_accuracy_curve=False,
    )
    evaluate_folder(config)
    return {
        method: [json.loads(x) for x in (out / method / "results.jsonl").read_text().splitlines()]
        for method in config.methods
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_evaluation_is_the_same_for_batch_sizes_one_and_four(tmp_path, eraser_dir, family):
    folder = save_family(tmp_path / "model", tiny.tiny_family_model(family, seed=4), family)
    one = evaluated(folder, eraser_dir, tmp_path / "one", 1)
    four = evaluated(folder, eraser_dir, tmp_path / "four", 4)
    for method in one:
        for a, b in zip(one[method], four[method], strict=True):
            assert a["classification"] == b["classification"]
            for key in ("classification_scores", "comprehensiveness_classification_scores"):
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6)
            soft_a, soft_b = (r["rationales"][0]["soft_rationale_predictions"] for r in (a, b))
            assert soft_a == pytest.approx(soft_b, rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("kind", ["byte_level", "sentencepiece"])
def test_word_alignment_for_byte_level_and_sentencepiece_tokenizers(kind):
    tok = tiny.byte_level_tokenizer() if kind == "byte_level" else tiny.sentencepiece_tokenizer()
    words = [["the", "film", "was", "boring"], ["worst", "plot"]]
    alignment = align_words(tok, words, max_length=32)
    ids = alignment.encoding["input_ids"]
    for b, row in enumerate(words):
        for w, word in enumerate(row):
            pieces = tok.convert_ids_to_tokens(ids[b][alignment.word_index[b] == w].tolist())
            assert "".join(pieces).lstrip("Ġ▁") == word
        unaligned = ids[b][alignment.word_index[b] < 0]
        assert torch.isin(unaligned, torch.tensor(tok.all_special_ids)).all()  # BOS and padding only
    assert alignment.words_kept == [4, 2]


# ---- sanity checks -----------------------------------------------------------------------------------------


def trained_looking(model, seed=0):
    """Every parameter moved off its initial value (norms start at their init, which re-drawing repeats)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return model


@pytest.mark.parametrize("family", ["gpt2", "llama", "modernbert"])
def test_randomisation_stages_cover_every_parameter_and_run(family):
    model = trained_looking(tiny.tiny_family_model(family))
    stages = randomization_stages(model)
    owned = [
        n
        for n, _ in model.named_parameters()
        if any(n.startswith(m + ".") for s in stages for m in s.modules)
    ]
    assert sorted(owned) == sorted(n for n, _ in model.named_parameters())
    batches = [model_inputs(tiny.encode_family(family))]
    config = SanityConfig(methods=parse_methods("gradient:l2"), independent=False, precision_examples=4)
    tokenizer = tiny.family_tokenizer(family)
    result = run_sanity_checks(model, tokenizer, batches, config, progress=False).to_dict()
    records = result["randomization"]["cascading"]
    assert [r["stage"] for r in records] == [s.name for s in stages]
    assert all(r["parameters_changed"] > 0 for r in records)


# ---- LoRA (PEFT) -------------------------------------------------------------------------------------------

LORA_TARGETS = {"bert": ["query", "value"], "llama": ["q_proj", "v_proj"], "gpt2": ["c_attn"]}


def lora_model(family, seed=0):
    peft = pytest.importorskip("peft")
    base = (
        tiny.tiny_model("bert", seed=seed) if family == "bert" else tiny.tiny_family_model(family, seed=seed)
    )
    config = peft.LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=LORA_TARGETS[family])
    return peft.get_peft_model(base, config)


@pytest.mark.parametrize("saliency_pass", ["reuse", "eval"])
@pytest.mark.parametrize("family", ["bert", "llama"])
def test_lora_trains_adapters_and_head_only(tmp_path, family, saliency_pass):
    model = lora_model(family)
    tok_family = "bert" if family == "bert" else family
    trainer = make_trainer(tmp_path, tok_family, model, sgt_saliency_pass=saliency_pass, max_steps=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    moved = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert moved <= trainable  # the frozen pretrained weights, the word table included, never move
    assert any("lora_B" in n for n in moved) and any("modules_to_save" in n for n in moved)
    assert any("lora_A" in n for n in moved)
    batch = tiny.encode_family(family) if family != "bert" else tiny.encode("bert")
    trainer = make_trainer(
        tmp_path, tok_family, model, sgt_mask_fraction=0.01, sgt_saliency_pass=saliency_pass
    )
    assert kl_with_nothing_masked(trainer, model, batch) == (0.0, 0.0)


def test_lora_adapter_folder_trains_evaluates_and_passes_sanity(tmp_path, eraser_dir):
    pytest.importorskip("peft")
    from sgt_nlp.finetune import main
    from sgt_nlp.loading import load_classifier

    base = save_family(tmp_path / "base", trained_looking(tiny.tiny_family_model("gpt2", seed=5)), "gpt2")
    out = tmp_path / "adapter"
    main(
        [
            "--model_name_or_path",
            str(base),
            "--data_dir",
            str(eraser_dir),
            "--output_dir",
            str(out),
            "--max_steps",
            "2",
            "--per_device_train_batch_size",
            "4",
            "--report_to",
            "none",
            "--use_cpu",
            "--save_strategy",
            "no",
            "--eval_strategy",
            "no",
            "--sgt_mask_fraction",
            "0.3",
            "--sgt_mask_strategy",
            "zero",
            "--learning_rate",
            "0.01",
            "--disable_tqdm",
            "true",
            "--lora_r",
            "4",
            "--lora_target_modules",
            "c_attn",
        ]
    )
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    assert "library_name: peft" in (out / "README.md").read_text()
    model, tok, _ = load_classifier(str(out))
    assert type(model).__name__ == "PeftModelForSequenceClassification"
    assert model.config.id2label == {0: "NEG", 1: "POS"}
    results = evaluated(out, eraser_dir, tmp_path / "eval", 4)
    assert len(results["gradient"]) == len(tiny.SENTENCES)
    batches = [model_inputs(tiny.encode_family("gpt2"))]
    config = SanityConfig(
        methods=parse_methods("gradient:l2"), independent=False, precision_examples=4, max_stages=2
    )
    snapshot = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = run_sanity_checks(model, tok, batches, config, progress=False).to_dict()
    assert [r["stage"] for r in result["randomization"]["cascading"]] == ["classifier", "final norm"]
    assert all(torch.equal(snapshot[n], p) for n, p in model.named_parameters())  # merged on a copy


# ---- what cannot work is refused at construction -----------------------------------------------------------


def test_decoder_without_pad_token_id_is_refused(tmp_path):
    model = tiny.tiny_family_model("llama")
    model.config.pad_token_id = None
    with pytest.raises(ValueError, match="pad_token_id"):
        make_trainer(tmp_path, "llama", model)
    with pytest.raises(ValueError, match="pad_token_id"):
        get_explainer("gradient", model, tokenizer=tiny.family_tokenizer("llama"))


def test_decoder_whose_pad_id_differs_from_the_tokenizers_is_refused(tmp_path):
    model = tiny.tiny_family_model("gpt2")
    model.config.pad_token_id = tiny.family_tokenizer("gpt2").eos_token_id
    with pytest.raises(ValueError, match="pads with id"):
        make_trainer(tmp_path, "gpt2", model)


def test_encoder_decoder_classifier_is_refused(tmp_path):
    from transformers import BartConfig, BartForSequenceClassification

    tok = tiny.wordpiece_tokenizer()
    config = BartConfig(
        vocab_size=len(tok),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
        num_labels=2,
    )
    with pytest.raises(ValueError, match="encoder-decoder"):
        get_explainer("gradient", BartForSequenceClassification(config), tokenizer=tok)


def test_loaded_gpt2_tokenizer_encodes_split_words_like_running_text(tmp_path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2TokenizerFast

    from sgt_nlp.loading import load_tokenizer

    bpe = ByteLevelBPETokenizer(add_prefix_space=True)
    bpe.train_from_iterator(
        [" ".join(tiny.WORDS)] * 4, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"]
    )
    bpe.save_model(str(tmp_path))
    tok = GPT2TokenizerFast(vocab=str(tmp_path / "vocab.json"), merges=str(tmp_path / "merges.txt"))
    words = "the movie was boring".split()
    assert tok.pad_token is None
    assert (
        tok(words, is_split_into_words=True).tokens() != tok(" ".join(words)).tokens()
    )  # no Ġ on split words
    folder = tmp_path / "gpt2"
    tok.save_pretrained(folder)
    GPT2Config(vocab_size=len(tok)).save_pretrained(folder)
    loaded = load_tokenizer(str(folder))
    assert loaded(words, is_split_into_words=True).tokens() == loaded(" ".join(words)).tokens()
    assert loaded(words, is_split_into_words=True).tokens()[0] == "Ġthe"
    assert loaded.pad_token == "<|endoftext|>" and loaded.padding_side == "right"
