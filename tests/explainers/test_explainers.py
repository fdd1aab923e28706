"""Properties of the explainers: batch/padding invariance, analytic values, completeness, modes, registry."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from sgt_nlp.explainers import (
    EXPLAINERS,
    Conservative,
    Gradient,
    IntegratedGradients,
    Occlusion,
    Random,
    SmoothGrad,
    get_explainer,
)
from sgt_nlp.saliency import AGGREGATIONS
from tests.tiny import SENTENCES, encode, tiny_model, tokenizer_for

FAMILIES = ("bert", "roberta")


class MeanPooledEncoder(nn.Module):
    """A tiny HF encoder with a masked-mean head: unlike first-token heads it is padding-side invariant.

    HF BERT/RoBERTa classifiers pool position 0, which is a pad token under left padding, so the models
    themselves change with left padding; this wrapper isolates what the explainers must get right (positions).
    """

    def __init__(self, family: str) -> None:
        super().__init__()
        inner = tiny_model(family, seed=2, initializer_range=0.2)
        self.encoder = inner.base_model
        self.config = inner.config
        self.head = nn.Linear(inner.config.hidden_size, 2)

    @property
    def base_model(self) -> nn.Module:
        return self.encoder

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.get_input_embeddings()

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, **kwargs):
        hidden = self.encoder(
            input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs
        ).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return SimpleNamespace(logits=self.head((hidden * weights).sum(1) / weights.sum(1)))


@functools.cache
def model_for(family: str, num_labels: int = 2):
    if family.endswith("-meanpool"):
        return MeanPooledEncoder(family.removesuffix("-meanpool")).eval()
    return tiny_model(family, num_labels=num_labels, seed=2, initializer_range=0.2)


def batch(family: str, sentences=SENTENCES[:5], padding_side: str = "right") -> dict[str, torch.Tensor]:
    family = family.removesuffix("-meanpool")
    return {k: v for k, v in encode(family, sentences, padding_side).items() if k != "labels"}


def pad_more(inputs: dict[str, torch.Tensor], extra: int, side: str, pad_id: int) -> dict[str, torch.Tensor]:
    """The same batch with ``extra`` more padding columns on ``side``."""
    out = {}
    for key, value in inputs.items():
        fill = torch.full((value.shape[0], extra), pad_id if key == "input_ids" else 0, dtype=value.dtype)
        out[key] = torch.cat([value, fill] if side == "right" else [fill, value], dim=1)
    return out


def explainers(family: str, model) -> dict[str, object]:
    tok = tokenizer_for(family.removesuffix("-meanpool"))
    return {
        "gradient_l2": Gradient(model, aggregation="l2", tokenizer=tok),
        "gradient_grad_x_input": Gradient(model, "log_prob", aggregation="grad_x_input", tokenizer=tok),
        "integrated_gradients": IntegratedGradients(model, n_steps=8, internal_batch_size=5, tokenizer=tok),
        "smoothgrad": SmoothGrad(model, n_samples=3, noise_std=0.1, internal_batch_size=4, tokenizer=tok),
        "occlusion_delete": Occlusion(model, "prob", removal="delete", internal_batch_size=6, tokenizer=tok),
        "occlusion_mask_token": Occlusion(model, removal="mask_token", tokenizer=tok),
        "random": Random(model, seed=3, tokenizer=tok),
    }


def assert_same_real_scores(a, b, rel: float = 1e-4) -> None:
    rows_a, rows_b = a.per_example(), b.per_example()
    assert len(rows_a) == len(rows_b)
    for x, y in zip(rows_a, rows_b, strict=True):
        torch.testing.assert_close(x, y, rtol=rel, atol=rel * float(y.abs().max()) + 1e-7)


@pytest.mark.parametrize("family", [*FAMILIES, "roberta-meanpool"])
def test_scores_of_real_tokens_ignore_padding_and_batch_makeup(family):
    model = model_for(family)
    pad_id = tokenizer_for(family.removesuffix("-meanpool")).pad_token_id
    inputs = batch(family)
    for name, explainer in explainers(family, model).items():
        reference = explainer.attribute(inputs)
        assert reference.scores.shape == inputs["input_ids"].shape, name
        assert torch.all(reference.scores[~reference.mask] == 0), name
        # Alone, without any padding, against inside the padded batch.
        for i in (1, 3):
            alone = explainer.attribute(
                {k: v[i : i + 1, : int(inputs["attention_mask"][i].sum())] for k, v in inputs.items()}
            )
            assert_same_real_scores(alone, _rows(reference, [i]))
        # More padding, and the batch in another order.
        assert_same_real_scores(explainer.attribute(pad_more(inputs, 5, "right", pad_id)), reference)
        order = [4, 2, 0, 3, 1]
        assert_same_real_scores(
            explainer.attribute({k: v[order] for k, v in inputs.items()}), _rows(reference, order)
        )
        if family == "roberta-meanpool":  # first-token heads make the HF classifiers depend on left padding
            assert_same_real_scores(explainer.attribute(batch(family, padding_side="left")), reference)
            assert_same_real_scores(explainer.attribute(pad_more(inputs, 3, "left", pad_id)), reference)


def _rows(attribution, rows):
    return SimpleNamespace(per_example=lambda: [attribution.per_example()[i] for i in rows])


@pytest.mark.parametrize("family", FAMILIES)
def test_integrated_gradients_completeness(family):
    model = model_for(family)
    inputs = batch(family)
    for baseline in ("zero", "mask_token", "pad_token"):
        result = IntegratedGradients(
            model, "prob", baseline=baseline, n_steps=32, tokenizer=tokenizer_for(family)
        ).attribute(inputs)
        full = torch.softmax(result.logits, -1).gather(1, result.target.view(-1, 1)).squeeze(1)
        gap = full - result.extras["baseline_output"]
        torch.testing.assert_close(result.scores.sum(1) - gap, result.extras["delta"], rtol=0, atol=1e-6)
        assert torch.all(result.extras["delta"].abs() <= 1e-3 * gap.abs().max() + 1e-6), baseline
    coarse = IntegratedGradients(
        model, n_steps=2, method="riemann_right", tokenizer=tokenizer_for(family)
    ).attribute(inputs)
    fine = IntegratedGradients(model, n_steps=32, tokenizer=tokenizer_for(family)).attribute(inputs)
    assert fine.extras["delta"].abs().mean() < coarse.extras["delta"].abs().mean()


@pytest.mark.parametrize("family", FAMILIES)
def test_smoothgrad_with_zero_noise_equals_gradient(family):
    model = model_for(family)
    inputs = batch(family)
    tok = tokenizer_for(family)
    for aggregation in AGGREGATIONS:
        smooth = SmoothGrad(
            model, n_samples=2, noise_std=0.0, aggregation=aggregation, tokenizer=tok
        ).attribute(inputs)
        plain = Gradient(model, aggregation=aggregation, tokenizer=tok).attribute(inputs)
        torch.testing.assert_close(
            smooth.scores, plain.scores, rtol=1e-5, atol=1e-5 * float(plain.scores.abs().max()) + 1e-7
        )
        torch.testing.assert_close(smooth.logits, plain.logits, rtol=1e-5, atol=1e-6)


def test_smoothgrad_noise_is_seeded_and_scaled():
    model = model_for("bert")
    inputs = batch("bert")
    tok = tokenizer_for("bert")
    first = SmoothGrad(model, n_samples=2, seed=5, tokenizer=tok).sample_noise(inputs)
    again = SmoothGrad(model, n_samples=2, seed=5, tokenizer=tok).sample_noise(inputs)
    other = SmoothGrad(model, n_samples=2, seed=6, tokenizer=tok).sample_noise(inputs)
    assert torch.equal(first, again) and not torch.equal(first, other)
    absolute = SmoothGrad(
        model, n_samples=64, noise_std=0.5, noise_scale="absolute", tokenizer=tok
    ).sample_noise(inputs)
    attended = inputs["attention_mask"].bool()
    assert abs(float(absolute[:, :, :][attended.unsqueeze(1).expand(absolute.shape[:3])].std()) - 0.5) < 0.02


def test_random_is_reproducible_and_seed_dependent():
    model = model_for("roberta")
    inputs = batch("roberta")
    tok = tokenizer_for("roberta")
    a = Random(model, seed=1, tokenizer=tok).attribute(inputs)
    b = Random(model, seed=1, tokenizer=tok).attribute(inputs)
    c = Random(model, seed=2, tokenizer=tok).attribute(inputs)
    assert torch.equal(a.scores, b.scores) and not torch.equal(a.scores, c.scores)
    real = a.scores[a.mask]
    assert torch.all((real >= 0) & (real < 1)) and real.unique().numel() == real.numel()
    torch.testing.assert_close(a.logits, model(**inputs).logits.detach())


@pytest.mark.parametrize(
    ("family", "side"), [("bert", "right"), ("roberta", "right"), ("roberta-meanpool", "left")]
)
def test_occlusion_delete_equals_the_model_on_the_shorter_text(family, side):
    model = model_for(family)
    inputs = batch(family, padding_side=side)
    result = Occlusion(
        model, removal="delete", tokenizer=tokenizer_for(family.removesuffix("-meanpool"))
    ).attribute(inputs)
    for i in (0, 3):
        ids = inputs["input_ids"][i][inputs["attention_mask"][i].bool()]
        ones = torch.ones(1, len(ids), dtype=torch.long)
        full = model(input_ids=ids[None], attention_mask=ones).logits[0, result.target[i]]
        row_scores = result.scores[i][inputs["attention_mask"][i].bool()]
        for t in (1, 2, len(ids) - 2):
            shorter = torch.cat([ids[:t], ids[t + 1 :]])[None]
            expected = full - model(input_ids=shorter, attention_mask=ones[:, 1:]).logits[0, result.target[i]]
            torch.testing.assert_close(row_scores[t], expected.detach(), rtol=1e-4, atol=1e-6)


def test_three_classes_and_gold_target():
    model = model_for("bert", num_labels=3)
    inputs = batch("bert")
    gold = torch.tensor([2, 0, 1, 2, 1])
    for name in EXPLAINERS:
        result = get_explainer(name, model, tokenizer=tokenizer_for("bert")).attribute(inputs, target=gold)
        assert result.logits.shape == (5, 3) and torch.equal(result.target, gold), name
        assert result.method == name and torch.isfinite(result.scores).all(), name
    predicted = Gradient(model, tokenizer=tokenizer_for("bert")).attribute(inputs)
    assert torch.equal(predicted.target, predicted.logits.argmax(-1))
    other = Gradient(model, tokenizer=tokenizer_for("bert")).attribute(
        inputs, target=(predicted.target + 1) % 3
    )
    assert not torch.allclose(other.scores, predicted.scores)


def test_eval_mode_is_used_and_restored_and_no_grad_is_overridden():
    model = tiny_model("bert", seed=3, dropout=0.3, initializer_range=0.2)
    inputs = batch("bert")
    tok = tokenizer_for("bert")
    model.eval()
    reference = {name: get_explainer(name, model, tokenizer=tok).attribute(inputs) for name in EXPLAINERS}
    model.train()
    with torch.no_grad():
        for name in EXPLAINERS:
            result = get_explainer(name, model, tokenizer=tok).attribute(inputs)
            torch.testing.assert_close(result.scores, reference[name].scores, rtol=1e-5, atol=1e-7)
    assert model.training and all(p.grad is None for p in model.parameters())


def test_registry_and_setting_errors():
    model = model_for("bert")
    assert set(EXPLAINERS) == {
        "gradient",
        "integrated_gradients",
        "smoothgrad",
        "occlusion",
        "random",
        "conservative",
    }
    with pytest.raises(
        ValueError,
        match="allowed: gradient, integrated_gradients, smoothgrad, occlusion, random, conservative",
    ):
        get_explainer("lime", model)
    for make, pattern in [
        (lambda: Gradient(model, aggregation="max"), "aggregation"),
        (lambda: Gradient(model, "logits"), "target_output"),
        (lambda: IntegratedGradients(model, baseline="blur"), "baseline"),
        (lambda: IntegratedGradients(model, method="simpson"), "method"),
        (lambda: IntegratedGradients(model, aggregation="l2_squared"), "aggregation"),
        (lambda: SmoothGrad(model, noise_scale="relative"), "noise_scale"),
        (lambda: Occlusion(model, removal="blank"), "removal"),
        (lambda: Occlusion(model, removal="mask_token"), "mask_token"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            make()
    with pytest.raises(ValueError, match="non-empty"):
        Random(model).attribute({"input_ids": torch.zeros(0, 4, dtype=torch.long)})
    with pytest.raises(ValueError, match="target"):
        Gradient(model, tokenizer=tokenizer_for("bert")).attribute(batch("bert"), target=torch.tensor([0, 1]))


def test_special_tokens_from_the_tokenizer_or_the_inputs():
    model = model_for("bert")
    inputs = batch("bert")
    tok = tokenizer_for("bert")
    with_tok = Gradient(model, tokenizer=tok).attribute(inputs)
    assert (
        not with_tok.mask[:, 0].any()
        and with_tok.mask.sum(1).tolist() == (inputs["attention_mask"].sum(1) - 2).tolist()
    )
    special = torch.isin(inputs["input_ids"], torch.tensor(tok.all_special_ids)).long()
    from_inputs = Gradient(model).attribute({**inputs, "special_tokens_mask": special})
    assert torch.equal(from_inputs.mask, with_tok.mask) and torch.equal(from_inputs.scores, with_tok.scores)


class MeanEmbeddingLinear(nn.Module):
    """logits = W mean_t(e_t over attended t) + b: every gradient and attribution is known in closed form."""

    def __init__(self, vocab: int = 12, dim: int = 5, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embeddings = nn.Embedding(vocab, dim)
        self.linear = nn.Linear(dim, classes)
        self.config = SimpleNamespace(pad_token_id=0)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None):
        embeddings = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        weights = attention_mask.unsqueeze(-1).to(embeddings.dtype)
        return SimpleNamespace(logits=self.linear((embeddings * weights).sum(1) / weights.sum(1)))


def test_analytic_values_on_a_linear_mean_embedding_model():
    model = MeanEmbeddingLinear()
    cls = 1  # a special token at position 0; 0 is padding
    ids = torch.tensor([[cls, 5, 7, 3, 9], [cls, 4, 11, 0, 0]])
    inputs = {"input_ids": ids, "attention_mask": (ids != 0).long()}
    target = torch.tensor([2, 0])
    n = inputs["attention_mask"].sum(1, keepdim=True).double()
    weights = model.linear.weight.detach().double()[target]  # [B, D]
    e = model.embeddings(ids).detach().double()
    real = ids > 1
    expected = {
        "l2": weights.norm(dim=-1, keepdim=True) / n,
        "l1": weights.abs().sum(-1, keepdim=True) / n,
        "signed_mean": weights.mean(-1, keepdim=True) / n,
        "grad_x_input": torch.einsum("bd,btd->bt", weights, e) / n,
    }
    expected["abs_grad_x_input"] = expected["grad_x_input"].abs()
    for aggregation, values in expected.items():
        result = Gradient(model, aggregation=aggregation, special_ids=[cls]).attribute(inputs, target=target)
        torch.testing.assert_close(
            result.scores.double(), (values.expand(ids.shape) * real).double(), rtol=1e-6, atol=1e-7
        )
        assert torch.equal(result.mask, real)
    dot = expected["grad_x_input"] * real
    for steps, method in ((2, "riemann_left"), (5, "gausslegendre")):
        ig = IntegratedGradients(model, n_steps=steps, method=method, special_ids=[cls]).attribute(
            inputs, target=target
        )
        torch.testing.assert_close(ig.scores.double(), dot, rtol=1e-5, atol=1e-6)
        assert ig.extras["delta"].abs().max() < 1e-5
    zero = Occlusion(model, removal="zero", special_ids=[cls]).attribute(inputs, target=target)
    torch.testing.assert_close(zero.scores.double(), dot, rtol=1e-5, atol=1e-6)
    total = (e * inputs["attention_mask"].unsqueeze(-1)).sum(1, keepdim=True)  # [B, 1, D]
    deleted = torch.einsum(
        "bd,btd->bt", weights, total / n.unsqueeze(-1) - (total - e) / (n.unsqueeze(-1) - 1)
    )
    delete = Occlusion(model, removal="delete", special_ids=[cls]).attribute(inputs, target=target)
    torch.testing.assert_close(delete.scores.double(), deleted * real, rtol=1e-5, atol=1e-6)


def test_capabilities_describe_each_method():
    """The class attributes that replace name checks outside the package (evaluation, explain, sanity)."""
    from sgt_nlp.explainers import explainer_class

    assert [n for n, c in EXPLAINERS.items() if c.has_convergence_delta] == ["integrated_gradients"]
    assert [n for n, c in EXPLAINERS.items() if c.groups_by_words] == ["occlusion"]
    assert [n for n, c in EXPLAINERS.items() if c.multiplies_by_inputs] == ["integrated_gradients"]
    assert [n for n, c in EXPLAINERS.items() if "aggregation" in c.run_settings] == [
        "gradient",
        "smoothgrad",
        "conservative",
    ]
    assert Gradient.aggregations == SmoothGrad.aggregations == AGGREGATIONS
    assert IntegratedGradients.default_aggregations == ("sum", "abs_sum") and not Random.aggregations
    # signed: the signed gradient reductions, IG's sum, occlusion; never l2 or the uniform random baseline
    assert (
        Gradient.scores_signed("grad_x_input")
        and not Gradient.scores_signed()
        and not SmoothGrad.scores_signed("l2")
    )
    assert IntegratedGradients.scores_signed() and not IntegratedGradients.scores_signed("abs_sum")
    assert Occlusion.scores_signed() and not Random.scores_signed()
    assert Conservative.scores_signed() and not Conservative.scores_signed("abs_grad_x_input")
    run = {"aggregation": "l1", "n_steps": 7, "seed": 3, "internal_batch_size": 8, "removal": "delete"}
    assert IntegratedGradients.select_settings(run) == {"n_steps": 7, "internal_batch_size": 8}
    assert Random.select_settings(run) == {"seed": 3} and Gradient.select_settings({}) == {}
    assert explainer_class("occlusion") is Occlusion
    with pytest.raises(ValueError, match="allowed: gradient"):
        explainer_class("lime")


def test_word_ids_group_occlusion_and_are_ignored_by_piece_explainers():
    model = model_for("bert")
    tok = tokenizer_for("bert")
    inputs = batch("bert")
    mask = (
        inputs["attention_mask"].bool()
        & (inputs["input_ids"] != tok.cls_token_id)
        & (inputs["input_ids"] != tok.sep_token_id)
    )
    word_ids = (torch.cumsum(mask.long(), dim=1) - 1).div(2, rounding_mode="floor").masked_fill(~mask, -1)
    grouped = Occlusion(model, tokenizer=tok).attribute(inputs, word_ids=word_ids)
    assert grouped.params["unit"] == "word"
    for i in range(word_ids.shape[0]):
        row, ids = grouped.scores[i], word_ids[i]
        for w in ids[ids >= 0].unique().tolist():
            values = row[ids == w]
            assert torch.all(values == values[0])
    plain = Gradient(model, tokenizer=tok)
    with_ids = plain.attribute(inputs, word_ids=word_ids)
    assert torch.equal(with_ids.scores, plain.attribute(inputs).scores) and "unit" not in with_ids.params
    with pytest.raises(ValueError, match="word_ids"):
        Occlusion(model, tokenizer=tok).attribute(inputs, word_ids=word_ids[:, :3])
