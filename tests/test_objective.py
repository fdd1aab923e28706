"""The steps of the SGT objective (sgt_nlp.objective), each without a Trainer, against values by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sgt_nlp import objective
from sgt_nlp.config import SaliencyGuidedTrainingArguments
from sgt_nlp.masking import special_ids_of
from sgt_nlp.saliency import embedding_gradients
from tests import tiny


def test_sgt_loss_is_cross_entropy_plus_weighted_kl_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    masked = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0])
    loss, task, kl = objective.sgt_loss(logits, masked, labels, kl_weight=0.5)
    p0 = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    p1 = [1 / (1 + math.e), math.e / (1 + math.e)]
    expected_kl = (sum(p * math.log(p / 0.5) for p in p0) + sum(p * math.log(p / 0.5) for p in p1)) / 2
    expected_ce = -(math.log(p0[0]) + math.log(p1[0])) / 2
    assert float(kl) == pytest.approx(expected_kl, rel=1e-6)  # 0.2436...
    assert float(task) == pytest.approx(expected_ce, rel=1e-6)
    assert float(loss) == pytest.approx(expected_ce + 0.5 * expected_kl, rel=1e-6)
    _, _, same = objective.sgt_loss(logits, logits.clone(), labels, kl_weight=1.0)
    assert float(same) == 0.0


@pytest.mark.parametrize("detach", [False, True])
def test_detached_kl_target_sends_no_gradient_to_the_clean_logits(detach):
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]], requires_grad=True)
    masked = torch.tensor([[0.0, 0.0], [1.0, 1.0]], requires_grad=True)
    _, _, kl = objective.sgt_loss(logits, masked, torch.tensor([0, 1]), 1.0, detach_kl_target=detach)
    kl.backward()
    # detached, the KL term reaches the clean logits not at all (no gradient is accumulated into them)
    assert (logits.grad is None or not logits.grad.any()) is detach
    assert masked.grad.abs().sum() > 0


def test_degenerate_rows_are_counted_and_ranked_at_random():
    scores = torch.tensor([[0.0, 0.0, 0.0], [1.0, float("nan"), 2.0], [0.3, 0.1, 0.2], [0.0, 0.0, 0.0]])
    candidates = torch.tensor([[True, True, False], [True, True, True], [True, True, True], [False] * 3])
    fixed, degenerate = objective.replace_degenerate_scores(
        scores, candidates, torch.Generator().manual_seed(0)
    )
    assert degenerate.tolist() == [
        True,
        True,
        False,
        False,
    ]  # the last row has nothing to mask: not degenerate
    assert torch.equal(fixed[2], scores[2]) and torch.isfinite(fixed).all()
    assert fixed[0].abs().sum() > 0 and ((fixed[:2] >= 0) & (fixed[:2] < 1)).all()
    none, zeros = objective.saliency_scores(None, torch.zeros(4, 3, 2), "l2", candidates, torch.Generator())
    assert none is None and zeros.tolist() == [False] * 4


def test_saliency_scores_aggregate_the_gradient_per_token():
    grads = torch.tensor([[[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]]])
    scores, degenerate = objective.saliency_scores(
        grads, torch.ones(1, 3, 2), "l2", torch.tensor([[True, True, False]]), torch.Generator()
    )
    assert scores.tolist() == [[5.0, 1.0, 10.0]] and degenerate.tolist() == [False]


def test_choose_mask_takes_floor_fraction_of_the_lowest_real_tokens():
    scores = torch.tensor([[5.0, 1.0, 4.0, 2.0, 3.0, 0.0], [9.0, 3.0, 1.0, 2.0, 0.0, 0.0]])
    candidates = torch.tensor(
        [[False, True, True, True, True, False], [False, True, True, True, False, False]]
    )
    k, positions = objective.choose_mask("saliency", scores, candidates, 0.5, torch.Generator())
    assert k.tolist() == [2, 1]
    assert positions.nonzero().tolist() == [[0, 1], [0, 3], [1, 2]]
    _, highest = objective.choose_mask("highest", scores, candidates, 0.5, torch.Generator())
    assert highest.nonzero().tolist() == [[0, 2], [0, 4], [1, 1]]


def test_step_values_count_masked_maskable_and_correct():
    positions = torch.tensor([[True, False, True], [False, False, False]])
    candidates = torch.tensor([[True, True, True], [True, False, False]])
    k = torch.tensor([2, 0])
    degenerate = torch.tensor([False, True])
    values = objective.step_values(torch.tensor(0.5), torch.tensor(0.1), positions, candidates, k, degenerate)
    counts = {
        name: int(values[name])
        for name in (
            "_masked_tokens",
            "_maskable_tokens",
            "sgt_unmasked_sequences",
            "sgt_degenerate_saliency",
        )
    }
    assert counts == {
        "_masked_tokens": 2,
        "_maskable_tokens": 4,
        "sgt_unmasked_sequences": 1,
        "sgt_degenerate_saliency": 1,
    }
    assert "_correct" not in values
    masked_logits = torch.tensor([[0.0, 1.0], [2.0, 1.0]])
    evaluated = objective.step_values(
        torch.tensor(0.5),
        torch.tensor(0.1),
        positions,
        candidates,
        k,
        degenerate,
        masked_logits,
        torch.tensor([1, 1]),
    )
    assert int(evaluated["_correct"]) == 1 and int(evaluated["_seen"]) == 2


class _Linear(nn.Module):
    """logits = sum over tokens of embedding @ W: the embedding gradient of class c is W[:, c] everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([[1.0, -2.0], [3.0, 0.5]]))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return embeddings.sum(1) @ self.weight


def test_reused_saliency_is_the_target_class_gradient():
    model = _Linear()
    embeddings = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]], requires_grad=True)
    logits = model(embeddings)  # [[1, 3 - 1]] = [[1.0, -1.0]]
    gold = objective.reused_saliency(logits, embeddings, torch.tensor([1]), "label", "logit")
    assert gold.tolist() == [[[-2.0, 0.5], [-2.0, 0.5]]]
    predicted = objective.reused_saliency(logits, embeddings, torch.tensor([1]), "prediction", "logit")
    assert predicted.tolist() == [[[1.0, 3.0], [1.0, 3.0]]]  # the prediction is class 0


def test_evaluation_mode_restores_the_mode_even_after_an_error():
    model = nn.Linear(2, 2).train()
    with pytest.raises(RuntimeError), objective.evaluation_mode(model):
        assert not model.training
        raise RuntimeError("inside")
    assert model.training


def test_batch_preparation_and_eval_mode_saliency_on_a_tiny_bert():
    model = tiny.tiny_model("bert", seed=1, dropout=0.3).train()
    tokenizer = tiny.tokenizer_for("bert")
    encoded = tiny.encode("bert")
    batch = objective.prepare_batch(model, encoded, special_ids_of(tokenizer))
    assert "labels" not in batch.model_inputs and "input_ids" not in batch.forward_kwargs
    # [UNK] (the sentences' out-of-vocabulary words: "story", "plot", ...) is a word that may be masked
    structural = [i for i in tokenizer.all_special_ids if i != tokenizer.unk_token_id]
    assert (encoded["input_ids"] == tokenizer.unk_token_id).any()
    special = torch.isin(encoded["input_ids"], torch.tensor(structural))
    assert torch.equal(batch.candidates, encoded["attention_mask"].bool() & ~special)

    embeddings = model.get_input_embeddings()(encoded["input_ids"]).detach()
    grads, logits = objective.eval_mode_saliency(model, embeddings, batch, "label", "logit")
    assert model.training  # restored
    model.eval()
    expected, _, expected_logits = embedding_gradients(model, encoded, batch.labels)
    assert torch.equal(grads, expected) and torch.equal(logits, expected_logits)


def test_clean_pass_takes_no_gradient_for_the_random_control():
    model = tiny.tiny_model("bert", seed=1)
    encoded = tiny.encode("bert")
    batch = objective.prepare_batch(model, encoded, special_ids_of(tiny.tokenizer_for("bert")))
    args = SaliencyGuidedTrainingArguments(output_dir="unused", sgt_mask_selection="random", use_cpu=True)
    clean = objective.clean_pass(model, model, batch, args, training=True)
    assert clean.grads is None and clean.embeddings.requires_grad
    saliency = SaliencyGuidedTrainingArguments(output_dir="unused", use_cpu=True)
    reused = objective.clean_pass(model, model, batch, saliency, training=True)
    assert reused.grads.shape == reused.embeddings.shape and reused.grads.abs().sum() > 0
    torch.testing.assert_close(reused.logits, model(**encoded).logits)
