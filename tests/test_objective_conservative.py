"""SGT ranked by conservative propagation (``sgt_saliency_method='conservative'``): the saliency of both
passes is the conservative explainer's gradient, the training gradient stays the model's own, and the
default stays the plain gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sgt_nlp import objective
from sgt_nlp.config import SaliencyGuidedTrainingArguments
from sgt_nlp.conservative import ConservativeUnsupported
from sgt_nlp.explainers import Conservative
from sgt_nlp.masking import special_ids_of
from tests import tiny


def setup(family):
    decoder = family in tiny.DECODER_FAMILIES
    model = tiny.tiny_family_model(family, seed=11) if decoder else tiny.tiny_model(family, seed=11)
    tokenizer = tiny.family_tokenizer(family)
    encoded = (tiny.encode_family if decoder else tiny.encode)(family)
    batch = objective.prepare_batch(model, encoded, special_ids_of(tokenizer, model.config))
    return model, tokenizer, encoded, batch


def args(**sgt):
    return SaliencyGuidedTrainingArguments(output_dir="unused", use_cpu=True, **sgt)


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_both_passes_give_the_conservative_explainers_gradient(family):
    model, tokenizer, encoded, batch = setup(family)
    inputs = {k: v for k, v in encoded.items() if k != "labels"}
    explainer = Conservative(model, tokenizer=tokenizer)
    expected, _, _ = explainer.gradients(explainer._prepare(inputs), batch.labels)
    for saliency_pass in ("reuse", "eval"):
        chosen = args(sgt_saliency_method="conservative", sgt_saliency_pass=saliency_pass)
        model.train()  # dropout is 0: the training forward is the eval forward
        clean = objective.clean_pass(model, model, batch, chosen, training=True)
        torch.testing.assert_close(clean.grads, expected, rtol=1e-4, atol=1e-6, msg=saliency_pass)
        assert model.config._attn_implementation == "sdpa"
    evaluation = objective.clean_pass(model, model, batch, args(sgt_saliency_method="conservative"), False)
    torch.testing.assert_close(evaluation.grads, expected, rtol=1e-4, atol=1e-6)
    plain = objective.clean_pass(model, model, batch, args(), training=True)
    assert not torch.allclose(plain.grads, expected, rtol=1e-2)


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_reuse_leaves_the_training_gradient_the_models_own(family):
    """One forward serves the rule backward (saliency) and the loss backward: the loss's parameter gradients
    equal those of the model's own forward."""
    model, _, encoded, batch = setup(family)
    model.train()
    clean = objective.clean_pass(model, model, batch, args(sgt_saliency_method="conservative"), training=True)
    F.cross_entropy(clean.logits, batch.labels).backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    F.cross_entropy(model(**batch.model_inputs).logits, batch.labels).backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_default_is_the_plain_gradient_bit_for_bit():
    model, _, _, batch = setup("bert")
    model.train()
    default = objective.clean_pass(model, model, batch, args(), training=True)
    chosen = objective.clean_pass(model, model, batch, args(sgt_saliency_method="gradient"), training=True)
    assert args().sgt_saliency_method == "gradient"
    assert torch.equal(default.grads, chosen.grads) and torch.equal(default.logits, chosen.logits)


def test_unknown_method_and_unsupported_family_are_refused(tmp_path):
    with pytest.raises(ValueError, match="sgt_saliency_method"):
        args(sgt_saliency_method="lrp")
    from tests.test_model_families import make_trainer

    with pytest.raises(ConservativeUnsupported, match="DebertaV2"):
        make_trainer(
            tmp_path, "deberta-v2", tiny.tiny_model("deberta-v2"), sgt_saliency_method="conservative"
        )


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_a_conservative_sgt_step_trains(tmp_path, family):
    model = tiny.tiny_family_model(family, seed=12) if family != "bert" else tiny.tiny_model(family, seed=12)
    from tests.test_model_families import make_trainer

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = make_trainer(tmp_path, family, model, sgt_saliency_method="conservative")
    trainer.train()
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert model.config._attn_implementation == "sdpa"
    assert trainer.state.log_history[0]["sgt_degenerate_saliency"] == 0


def test_gradient_checkpointing_and_nested_rules_are_refused(tmp_path):
    from tests.test_model_families import make_trainer

    with pytest.raises(ValueError, match="gradient_checkpointing"):
        make_trainer(
            tmp_path,
            "bert",
            tiny.tiny_model("bert"),
            sgt_saliency_method="conservative",
            gradient_checkpointing=True,
        )
    from sgt_nlp.conservative import conservative_rules

    model = tiny.tiny_model("bert")
    with conservative_rules(model), pytest.raises(RuntimeError, match="already inside"):
        with conservative_rules(model):
            pass
    assert model.config._attn_implementation == "sdpa"


def test_a_bf16_autocast_sgt_step_runs(tmp_path):
    """Under autocast a LayerNorm reads bfloat16 and writes float32: the rule's check allows for it."""
    from tests.test_model_families import make_trainer

    model = tiny.tiny_model("bert", seed=13)
    trainer = make_trainer(tmp_path, "bert", model, sgt_saliency_method="conservative", bf16=True)
    trainer.train()
    assert trainer.state.log_history[0]["sgt_degenerate_saliency"] == 0
