"""SaliencyGuidedTrainer on tiny models: masking, loss, logging, invariances and bad input."""

from __future__ import annotations

import math

import datasets
import pytest
import torch
import torch.nn.functional as F
from transformers import (
    DataCollatorWithPadding,
    HfArgumentParser,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

import sgt_nlp.objective as objective_module
from sgt_nlp import SaliencyGuidedTrainer, SaliencyGuidedTrainingArguments
from sgt_nlp.masking import maskable_positions, special_ids_of, tokens_to_mask_per_sequence
from sgt_nlp.saliency import aggregate_token_saliency, embedding_gradients
from tests import tiny


def make_dataset(family="bert", repeat=2, num_labels=2):
    tok = tiny.tokenizer_for(family)
    texts = [s for s, _ in tiny.SENTENCES] * repeat
    labels = [(y if num_labels == 2 else i % num_labels) for i, (_, y) in enumerate(tiny.SENTENCES * repeat)]
    ds = datasets.Dataset.from_dict({"text": texts, "label": labels})
    return ds.map(
        lambda b: tok(b["text"], truncation=True, max_length=32), batched=True, remove_columns=["text"]
    )


def make_args(tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_train_epochs=1,
        learning_rate=1e-3,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=7,
        data_seed=7,
        sgt_mask_strategy="zero",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    values.update(overrides)
    return SaliencyGuidedTrainingArguments(**values)


def make_trainer(
    tmp_path,
    family="bert",
    model=None,
    num_labels=2,
    trainer_cls=SaliencyGuidedTrainer,
    dataset=None,
    **overrides,
):
    tok = tiny.tokenizer_for(family)
    model = model if model is not None else tiny.tiny_model(family, num_labels=num_labels, seed=1)
    args = make_args(tmp_path, **overrides)
    if trainer_cls is Trainer:
        args = args.to_training_arguments()
    ds = dataset if dataset is not None else make_dataset(family, num_labels=num_labels)
    return trainer_cls(
        model=model,
        args=args,
        train_dataset=ds,
        eval_dataset=ds,
        processing_class=tok,
        data_collator=DataCollatorWithPadding(tok),
    )


def params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def one_batch(trainer):
    return next(iter(trainer.get_train_dataloader()))


# ---- masking and loss ---------------------------------------------------------------------------------


def masked_positions_of_a_training_step(trainer, monkeypatch) -> tuple[dict, torch.Tensor]:
    """One training-mode compute_loss on a batch; returns the batch and the positions handed to apply_mask."""
    captured = {}
    real_apply = objective_module.apply_mask

    def spy(embeddings, positions, replacements):
        captured["positions"] = positions.clone()
        return real_apply(embeddings, positions, replacements)

    monkeypatch.setattr(objective_module, "apply_mask", spy)
    batch = one_batch(trainer)
    trainer.model.train()
    trainer.compute_loss(trainer.model, dict(batch))
    return batch, captured["positions"]


@pytest.mark.parametrize("aggregation", ["l2", "l1", "grad_x_input"])
@pytest.mark.parametrize("saliency_pass", ["reuse", "eval"])
def test_masked_positions_are_the_k_lowest_real_tokens(tmp_path, monkeypatch, aggregation, saliency_pass):
    trainer = make_trainer(
        tmp_path, sgt_saliency_aggregation=aggregation, sgt_saliency_pass=saliency_pass, sgt_mask_fraction=0.4
    )
    batch, positions = masked_positions_of_a_training_step(trainer, monkeypatch)

    inputs = {k: v for k, v in batch.items() if k != "labels"}
    trainer.model.eval()
    grads, emb, _ = embedding_gradients(trainer.model, inputs, target=batch["labels"])
    scores = aggregate_token_saliency(grads, emb, aggregation)
    candidates = maskable_positions(
        batch["input_ids"], batch["attention_mask"], special_ids_of(trainer.processing_class)
    )
    k = tokens_to_mask_per_sequence(candidates, 0.4)
    for row in range(len(scores)):
        chosen = positions[row].nonzero().flatten().tolist()
        real = candidates[row].nonzero().flatten()
        expected = real[scores[row, real].argsort()[: int(k[row])]].sort().values.tolist()
        assert chosen == expected
        assert len(chosen) == math.floor(0.4 * len(real) + 1e-9)
        assert not (positions[row] & ~candidates[row]).any()  # never special or padding


@pytest.mark.parametrize("saliency_pass", ["reuse", "eval"])
def test_highest_selection_masks_the_k_most_salient_real_tokens(tmp_path, monkeypatch, saliency_pass):
    trainer = make_trainer(
        tmp_path, sgt_mask_selection="highest", sgt_saliency_pass=saliency_pass, sgt_mask_fraction=0.4
    )
    batch, masked = masked_positions_of_a_training_step(trainer, monkeypatch)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    trainer.model.eval()
    grads, emb, _ = embedding_gradients(trainer.model, inputs, target=batch["labels"])
    scores = aggregate_token_saliency(grads, emb, "l2")
    candidates = maskable_positions(
        batch["input_ids"], batch["attention_mask"], special_ids_of(trainer.processing_class)
    )
    k = tokens_to_mask_per_sequence(candidates, 0.4)
    for row in range(len(scores)):
        real = candidates[row].nonzero().flatten()
        expected = real[scores[row, real].argsort(descending=True)[: int(k[row])]].sort().values.tolist()
        assert masked[row].nonzero().flatten().tolist() == expected


class ForwardAndGradientCounter:
    """Counts model forwards (a hook on the model) and ``torch.autograd.grad`` calls (saliency gradients)."""

    def __init__(self, model, monkeypatch):
        self.forwards, self.grads = 0, 0
        model.register_forward_hook(lambda *_: setattr(self, "forwards", self.forwards + 1))
        real_grad = torch.autograd.grad

        def counting_grad(*args, **kwargs):
            self.grads += 1
            return real_grad(*args, **kwargs)

        monkeypatch.setattr(torch.autograd, "grad", counting_grad)


@pytest.mark.parametrize("saliency_pass", ["reuse", "eval"])
def test_random_selection_takes_no_saliency_and_still_trains(tmp_path, monkeypatch, saliency_pass):
    trainer = make_trainer(
        tmp_path,
        sgt_mask_selection="random",
        sgt_saliency_pass=saliency_pass,
        sgt_mask_fraction=0.5,
        sgt_mask_strategy="random_token",
    )
    counter = ForwardAndGradientCounter(trainer.model, monkeypatch)
    before = params(trainer.model)
    trainer.train()
    steps = trainer.state.global_step
    assert steps == 4
    # Two forwards per step (clean and masked), whichever saliency pass is configured, and no saliency
    # gradient.
    assert (counter.forwards, counter.grads) == (2 * steps, 0)
    after = params(trainer.model)
    assert "classifier.weight" in [n for n in before if not torch.equal(before[n], after[n])]
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert all(math.isfinite(h["kl_loss"]) and h["sgt_degenerate_saliency"] == 0 for h in logs)
    assert all(h["loss"] == pytest.approx(h["task_loss"] + h["kl_loss"], rel=1e-4, abs=1e-6) for h in logs)
    assert all(0.3 < h["sgt_masked_token_share"] <= 0.5 for h in logs)

    counter.forwards = 0
    metrics = trainer.evaluate()
    batches = len(trainer.get_eval_dataloader())
    assert (counter.forwards, counter.grads) == (2 * batches, 0)
    assert 0.0 <= metrics["eval_masked_accuracy"] <= 1.0 and math.isfinite(metrics["eval_kl_loss"])


def test_saliency_selection_counts_its_forwards_and_gradients(tmp_path, monkeypatch):
    """The reference for the test above: the eval pass adds a forward and every step takes one gradient."""
    trainer = make_trainer(tmp_path, sgt_saliency_pass="eval", max_steps=2)
    counter = ForwardAndGradientCounter(trainer.model, monkeypatch)
    trainer.train()
    assert (counter.forwards, counter.grads) == (3 * 2, 2)


def test_random_selection_masks_k_real_tokens_reproducibly(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, sgt_mask_selection="random", sgt_mask_fraction=0.4)
    captured = []
    real_apply = objective_module.apply_mask

    def spy(embeddings, positions, replacements):
        captured.append(positions.clone())
        return real_apply(embeddings, positions, replacements)

    monkeypatch.setattr(objective_module, "apply_mask", spy)
    batch = one_batch(trainer)
    trainer.model.train()
    for _ in range(3):
        trainer._rng_step = -1  # the same (seed, step, micro-step) key as the first call
        trainer.compute_loss(trainer.model, dict(batch))
    candidates = maskable_positions(
        batch["input_ids"], batch["attention_mask"], special_ids_of(trainer.processing_class)
    )
    k = tokens_to_mask_per_sequence(candidates, 0.4)
    first = captured[0]
    assert first.sum(dim=-1).tolist() == k.tolist() and not (first & ~candidates).any()
    assert all(torch.equal(first, again) for again in captured[1:])
    trainer.compute_loss(trainer.model, dict(batch))  # the next micro-step draws afresh
    assert not torch.equal(first, captured[-1])


def test_loss_is_task_loss_plus_weighted_kl_by_hand(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, sgt_kl_weight=0.7, sgt_mask_strategy="random_token")
    captured = {}
    real_apply = objective_module.apply_mask

    def spy(embeddings, positions, replacements):
        out = real_apply(embeddings, positions, replacements)
        captured["masked"] = out.clone()
        return out

    monkeypatch.setattr(objective_module, "apply_mask", spy)
    batch = one_batch(trainer)
    model = trainer.model.train()
    loss = trainer.compute_loss(model, dict(batch))
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        masked_logits = model(inputs_embeds=captured["masked"], attention_mask=batch["attention_mask"]).logits
    p = logits.softmax(-1)
    q = masked_logits.softmax(-1)
    kl = sum(
        sum(p[i, c] * (math.log(p[i, c]) - math.log(q[i, c])) for c in range(p.shape[1]))
        for i in range(len(p))
    ) / len(p)
    ce = -sum(math.log(p[i, y]) for i, y in enumerate(batch["labels"].tolist())) / len(p)
    assert float(loss.detach()) == pytest.approx(float(ce) + 0.7 * float(kl), rel=1e-5, abs=1e-6)
    assert float(kl) > 0


def test_training_changes_parameters_and_logs_metrics(tmp_path):
    trainer = make_trainer(tmp_path, eval_strategy="epoch", sgt_mask_strategy="random_token")
    before = params(trainer.model)
    trainer.train()
    after = params(trainer.model)
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert "classifier.weight" in changed and any("encoder.layer.0" in n for n in changed)
    train_logs = [h for h in trainer.state.log_history if "loss" in h]
    assert train_logs
    for key in (
        "task_loss",
        "kl_loss",
        "sgt_masked_token_share",
        "sgt_unmasked_sequences",
        "sgt_degenerate_saliency",
    ):
        assert key in train_logs[0], key
    assert all(0.3 < h["sgt_masked_token_share"] <= 0.5 for h in train_logs)
    assert all(
        h["loss"] == pytest.approx(h["task_loss"] + h["kl_loss"], rel=1e-4, abs=1e-6) for h in train_logs
    )
    eval_logs = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert eval_logs and 0.0 <= eval_logs[0]["eval_masked_accuracy"] <= 1.0
    for key in ("eval_task_loss", "eval_kl_loss", "eval_sgt_masked_token_share"):
        assert key in eval_logs[0]


def test_repeated_evaluations_mask_alike(tmp_path):
    trainer = make_trainer(
        tmp_path, sgt_mask_strategy="random_token", sgt_mask_fraction=0.5, per_device_eval_batch_size=4
    )
    first, second = trainer.evaluate(), trainer.evaluate()
    assert (
        first["eval_kl_loss"] == second["eval_kl_loss"]
        and first["eval_masked_accuracy"] == second["eval_masked_accuracy"]
    )


def test_eval_masked_accuracy_matches_a_hand_count(tmp_path):
    trainer = make_trainer(tmp_path, sgt_mask_fraction=0.9, per_device_eval_batch_size=16)
    metrics = trainer.evaluate()
    # Recompute: mask the lowest 90% by l2 saliency (eval mode) with zeros and count correct predictions.
    model = trainer.model.eval()
    batch = next(iter(trainer.get_eval_dataloader()))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    grads, emb, _ = embedding_gradients(model, inputs, target=batch["labels"])
    scores = aggregate_token_saliency(grads, emb, "l2")
    candidates = maskable_positions(
        batch["input_ids"], batch["attention_mask"], special_ids_of(trainer.processing_class)
    )
    k = tokens_to_mask_per_sequence(candidates, 0.9)
    masked = emb.clone()
    for row in range(len(emb)):
        real = candidates[row].nonzero().flatten()
        masked[row, real[scores[row, real].argsort()[: int(k[row])]]] = 0.0
    with torch.no_grad():
        pred = model(inputs_embeds=masked, attention_mask=batch["attention_mask"]).logits.argmax(-1)
    assert metrics["eval_masked_accuracy"] == pytest.approx(float((pred == batch["labels"]).float().mean()))


# ---- equivalences ---------------------------------------------------------------------------------------


def test_fraction_zero_equals_the_plain_trainer(tmp_path):
    plain = make_trainer(
        tmp_path / "a", trainer_cls=Trainer, model=tiny.tiny_model("bert", seed=1, dropout=0.1)
    )
    plain.train()
    sgt = make_trainer(
        tmp_path / "b", sgt_mask_fraction=0.0, model=tiny.tiny_model("bert", seed=1, dropout=0.1)
    )
    sgt.train()
    a, b = params(plain.model), params(sgt.model)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_fraction_zero_evaluates_like_the_plain_trainer(tmp_path, monkeypatch):
    """With nothing to mask, evaluation is one plain forward: no saliency pass, no masked pass, no
    eval_masked_accuracy (which would measure an unmasked input), and the plain Trainer's eval_loss."""
    plain = make_trainer(tmp_path / "a", trainer_cls=Trainer)
    sgt = make_trainer(tmp_path / "b", sgt_mask_fraction=0.0)
    forwards = []
    sgt.model.register_forward_hook(lambda module, args, output: forwards.append(1))
    monkeypatch.setattr(objective_module, "eval_mode_saliency", lambda *a, **k: pytest.fail("saliency pass"))
    expected, metrics = plain.evaluate(), sgt.evaluate()
    assert "eval_masked_accuracy" not in metrics and "eval_kl_loss" not in metrics
    assert metrics["eval_loss"] == expected["eval_loss"]
    assert len(forwards) == math.ceil(len(sgt.eval_dataset) / sgt.args.per_device_eval_batch_size)


def test_gradient_accumulation_equals_the_larger_batch(tmp_path):
    sgd = tiny.INVARIANCE_OPTIMIZER
    big = make_trainer(tmp_path / "a", per_device_train_batch_size=4, gradient_accumulation_steps=1, **sgd)
    big.train()
    small = make_trainer(tmp_path / "b", per_device_train_batch_size=2, gradient_accumulation_steps=2, **sgd)
    small.train()
    assert big.state.global_step == small.state.global_step == 4
    tiny.assert_same_updates(params(tiny.tiny_model("bert", seed=1)), params(small.model), params(big.model))
    big_loss = [h["loss"] for h in big.state.log_history if "loss" in h]
    small_loss = [h["loss"] for h in small.state.log_history if "loss" in h]
    assert big_loss == pytest.approx(small_loss, rel=1e-4)


class StopAt(TrainerCallback):
    """Simulates an interruption: stops training after a given step, schedule untouched."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step >= self.step


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path):
    common = dict(
        sgt_mask_strategy="random_token",
        num_train_epochs=2,
        save_strategy="steps",
        save_steps=3,
        per_device_train_batch_size=4,
    )
    full = make_trainer(tmp_path / "full", model=tiny.tiny_model("bert", seed=1, dropout=0.1), **common)
    full.train()
    interrupted = make_trainer(
        tmp_path / "part", model=tiny.tiny_model("bert", seed=1, dropout=0.1), **common
    )
    interrupted.add_callback(StopAt(3))
    interrupted.train()
    assert interrupted.state.global_step == 3
    resumed = make_trainer(tmp_path / "part", model=tiny.tiny_model("bert", seed=1, dropout=0.1), **common)
    resumed.train(resume_from_checkpoint=str(tmp_path / "part" / "out" / "checkpoint-3"))
    a, b = params(full.model), params(resumed.model)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_gradient_checkpointing_gives_the_same_update(tmp_path):
    plain = make_trainer(tmp_path / "a")
    plain.train()
    ckpt = make_trainer(tmp_path / "b", gradient_checkpointing=True)
    ckpt.train()
    a, b = params(plain.model), params(ckpt.model)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_reentrant_checkpointing_is_refused(tmp_path):
    with pytest.raises(ValueError, match="use_reentrant"):
        make_trainer(
            tmp_path, gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": True}
        )


def test_bf16_trains_with_finite_loss(tmp_path):
    trainer = make_trainer(tmp_path, bf16=True)
    before = params(trainer.model)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert all(math.isfinite(h["loss"]) and math.isfinite(h["kl_loss"]) for h in logs)
    assert sum(h["sgt_degenerate_saliency"] for h in logs) == 0
    assert not torch.equal(before["classifier.weight"], trainer.model.classifier.weight)


@pytest.mark.parametrize("saliency_pass", ["reuse", "eval"])
def test_bf16_on_cpu_runs_every_sgt_attention_in_float32(tmp_path, monkeypatch, saliency_pass):
    """Under bf16 on a CPU each pass of an SGT step (clean, eval-mode saliency, masked) and of its evaluation
    gets float32 query/key/value in sdpa attention (faster there than oneDNN's bf16 kernels); the model
    names sdpa again after training."""
    from transformers.integrations import sdpa_attention

    seen: list[torch.dtype] = []
    real = sdpa_attention.sdpa_attention_forward

    def spy(module, query, *args, **kwargs):
        seen.append(query.dtype)
        return real(module, query, *args, **kwargs)

    monkeypatch.setattr(sdpa_attention, "sdpa_attention_forward", spy)
    trainer = make_trainer(tmp_path, bf16=True, sgt_saliency_pass=saliency_pass)
    trainer.train()
    trained = len(seen)
    trainer.evaluate()
    layers = trainer.model.config.num_hidden_layers
    steps = trainer.state.global_step
    passes = 3 if saliency_pass == "eval" else 2  # the eval-mode saliency forward, clean, masked
    assert trained == steps * passes * layers and len(seen) > trained
    assert set(seen) == {torch.float32}
    assert trainer.model.config._attn_implementation == "sdpa"


def test_degenerate_saliency_is_replaced_and_counted(tmp_path, monkeypatch):
    """fp16 underflow gives all-zero or non-finite gradients: those rows are masked at random and counted."""
    trainer = make_trainer(tmp_path)
    real_aggregate = objective_module.aggregate_token_saliency

    def underflowing(grads, embeddings, aggregation):
        scores = real_aggregate(grads, embeddings, aggregation)
        scores[0] = 0.0
        scores[1] = float("nan")
        return scores

    monkeypatch.setattr(objective_module, "aggregate_token_saliency", underflowing)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert all(h["sgt_degenerate_saliency"] == 2 for h in logs)
    assert all(math.isfinite(h["loss"]) for h in logs)


# ---- models ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", tiny.FAMILIES)
@pytest.mark.parametrize("num_labels", [2, 3])
def test_every_bert_family_model_trains(tmp_path, family, num_labels):
    trainer = make_trainer(
        tmp_path, family=family, num_labels=num_labels, max_steps=2, sgt_mask_strategy="random_token"
    )
    head = [n for n, _ in trainer.model.named_parameters()][-1]
    before = params(trainer.model)[head]
    trainer.train()
    assert not torch.equal(before, params(trainer.model)[head])
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs and all(math.isfinite(h["loss"]) and h["sgt_masked_token_share"] > 0 for h in logs)


def test_roberta_left_padding_keeps_positions(tmp_path):
    """With left padding the masked forward must see the same positions as the input_ids forward."""
    model = tiny.tiny_model("roberta")
    batch = tiny.encode("roberta", padding_side="left")
    trainer = make_trainer(tmp_path, family="roberta", model=model, sgt_mask_fraction=0.0001)
    trainer.model.eval()
    loss, outputs = trainer.compute_loss(trainer.model, batch, return_outputs=True)
    with torch.no_grad():
        reference = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    torch.testing.assert_close(outputs.logits, reference)
    assert float(loss.detach()) == pytest.approx(float(F.cross_entropy(reference, batch["labels"])), rel=1e-5)


# ---- arguments and bad input ---------------------------------------------------------------------------


def test_arguments_have_help_and_validate():
    parser = HfArgumentParser(SaliencyGuidedTrainingArguments)
    help_text = parser.format_help()
    for name in (
        "sgt_mask_fraction",
        "sgt_kl_weight",
        "sgt_mask_strategy",
        "sgt_saliency_aggregation",
        "sgt_saliency_target",
    ):
        assert f"--{name}" in help_text
    (args,) = parser.parse_args_into_dataclasses(
        ["--output_dir", "x", "--sgt_mask_fraction", "0.3", "--sgt_mask_strategy", "uniform"]
    )
    assert args.sgt_mask_fraction == 0.3 and args.sgt_mask_strategy == "uniform"
    with pytest.raises(ValueError, match="sgt_saliency_aggregation='max' is not one of: l2"):
        SaliencyGuidedTrainingArguments(output_dir="x", sgt_saliency_aggregation="max")
    with pytest.raises(ValueError, match="sgt_mask_fraction"):
        SaliencyGuidedTrainingArguments(output_dir="x", sgt_mask_fraction=1.5)
    (args,) = parser.parse_args_into_dataclasses(["--output_dir", "x", "--sgt_mask_selection", "random"])
    assert args.sgt_mask_selection == "random" and args.sgt_settings()["sgt_mask_selection"] == "random"
    assert SaliencyGuidedTrainingArguments(output_dir="x").sgt_mask_selection == "saliency"
    with pytest.raises(
        ValueError, match="sgt_mask_selection='lowest' is not one of: saliency, random, highest"
    ):
        SaliencyGuidedTrainingArguments(output_dir="x", sgt_mask_selection="lowest")


def test_dataset_without_labels_is_refused(tmp_path):
    ds = make_dataset().remove_columns("label")
    with pytest.raises(ValueError, match="train_dataset has no label column"):
        make_trainer(tmp_path, dataset=ds)


def test_label_outside_the_models_classes_is_refused(tmp_path):
    ds = make_dataset()
    ds = ds.map(lambda row, i: {"label": 5 if i == 3 else row["label"]}, with_indices=True)
    with pytest.raises(ValueError, match=r"train_dataset row 3: label=5 is outside the model's classes 0..1"):
        make_trainer(tmp_path, dataset=ds)


def test_mask_token_strategy_needs_a_mask_token(tmp_path):
    tok = tiny.wordpiece_tokenizer()
    args = make_args(tmp_path, sgt_mask_strategy="mask_token")
    with pytest.raises(ValueError, match="needs a tokenizer with a mask token"):
        SaliencyGuidedTrainer(
            model=tiny.tiny_model(), args=args, train_dataset=make_dataset(), processing_class=None
        )
    SaliencyGuidedTrainer(
        model=tiny.tiny_model(), args=args, train_dataset=make_dataset(), processing_class=tok
    )


def test_model_without_input_embeddings_is_refused(tmp_path):
    model = tiny.tiny_model()
    model.get_input_embeddings = lambda: None
    with pytest.raises(TypeError, match="no word embedding layer"):
        make_trainer(tmp_path, model=model)


@pytest.mark.parametrize("problem_type,num_labels", [("multi_label_classification", 3), ("regression", 1)])
def test_multilabel_and_regression_heads_are_refused(tmp_path, problem_type, num_labels):
    model = tiny.tiny_model(num_labels=num_labels, problem_type=problem_type)
    with pytest.raises(ValueError, match="single-label classification"):
        make_trainer(
            tmp_path, model=model, num_labels=num_labels, dataset=make_dataset().map(lambda r: {"label": 0})
        )


def test_unmaskable_sequences_batch_of_one_and_zero_k_are_logged(tmp_path):
    tok = tiny.wordpiece_tokenizer()
    texts = ["", "good", "the movie was good and i loved it"]
    ds = datasets.Dataset.from_dict({"text": texts, "label": [0, 1, 1]})
    ds = ds.map(lambda b: tok(b["text"]), batched=True, remove_columns=["text"])
    trainer = make_trainer(tmp_path, dataset=ds, per_device_train_batch_size=1, sgt_mask_fraction=0.3)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3
    # "" has no real token, "good" rounds floor(0.3) to 0, the 8-word sentence masks 2.
    assert sorted(h["sgt_unmasked_sequences"] for h in logs) == [0, 1, 1]
    assert all(math.isfinite(h["loss"]) for h in logs)


def test_plain_training_arguments_are_accepted(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    trainer = SaliencyGuidedTrainer(
        model=tiny.tiny_model(), args=args, processing_class=tiny.wordpiece_tokenizer()
    )
    assert isinstance(trainer.args, SaliencyGuidedTrainingArguments) and trainer.args.sgt_mask_fraction == 0.5
