"""Our explainers against captum on the same tiny BERT / RoBERTa models and the same inputs."""

from __future__ import annotations

import functools

import pytest
import torch
from captum.attr import FeatureAblation, InputXGradient, NoiseTunnel, Saliency
from captum.attr import IntegratedGradients as CaptumIntegratedGradients
from captum.attr import Occlusion as CaptumOcclusion

from sgt_nlp.explainers import Gradient, IntegratedGradients, Occlusion, SmoothGrad
from sgt_nlp.saliency import (
    AGGREGATIONS,
    aggregate_token_saliency,
    embedding_forward_kwargs,
    word_embedding_layer,
)
from tests.tiny import SENTENCES, encode, tiny_model, tokenizer_for

FAMILIES = ("bert", "roberta")
REL = 1e-4  # float32 tolerance, relative to the largest score of the batch


@functools.cache
def setup(family: str, num_labels: int = 2):
    model = tiny_model(family, num_labels=num_labels, seed=1, initializer_range=0.2)
    batch = encode(family, SENTENCES[:5], padding_side="left" if family == "roberta" else "right")
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    return model, inputs


def captum_forward(model, keys: tuple[str, ...], target_output: str = "logit"):
    def forward(embeddings: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        logits = model(inputs_embeds=embeddings, **dict(zip(keys, extra, strict=True))).logits
        if target_output == "log_prob":
            return torch.log_softmax(logits, dim=-1)
        return torch.softmax(logits, dim=-1) if target_output == "prob" else logits

    return forward


def captum_args(model, inputs):
    kwargs = embedding_forward_kwargs(model, inputs)
    keys = tuple(kwargs)
    embeddings = word_embedding_layer(model)(inputs["input_ids"]).detach().requires_grad_(True)
    return embeddings, keys, tuple(kwargs[k] for k in keys)


def assert_scores_close(
    ours: torch.Tensor, theirs: torch.Tensor, mask: torch.Tensor, rel: float = REL
) -> None:
    theirs = theirs.detach().masked_fill(~mask, 0.0)
    # The floor covers aggregations that are exactly 0 in theory (signed_mean under a post-embedding
    # LayerNorm).
    atol = rel * float(theirs.abs().max()) + 1e-7
    torch.testing.assert_close(ours, theirs, rtol=rel, atol=atol)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("target_output", ["logit", "log_prob"])
def test_gradient_equals_captum_saliency_and_input_x_gradient(family, target_output):
    model, inputs = setup(family)
    embeddings, keys, extra = captum_args(model, inputs)
    forward = captum_forward(model, keys, target_output)
    tok = tokenizer_for(family)
    target = Gradient(model, target_output, tokenizer=tok).attribute(inputs).target
    raw = Saliency(forward).attribute(embeddings, target=target, additional_forward_args=extra, abs=False)
    for aggregation in AGGREGATIONS:
        ours = Gradient(model, target_output, aggregation=aggregation, tokenizer=tok).attribute(inputs)
        assert_scores_close(ours.scores, aggregate_token_saliency(raw, embeddings, aggregation), ours.mask)
    ixg = InputXGradient(forward).attribute(embeddings, target=target, additional_forward_args=extra).sum(-1)
    ours = Gradient(model, target_output, aggregation="grad_x_input", tokenizer=tok).attribute(inputs)
    assert_scores_close(ours.scores, ixg, ours.mask)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    ("baseline", "method", "target_output"),
    [
        ("zero", "gausslegendre", "logit"),
        ("mask_token", "riemann_trapezoid", "prob"),
        ("pad_token", "riemann_left", "log_prob"),
    ],
)
def test_integrated_gradients_equals_captum(family, baseline, method, target_output):
    model, inputs = setup(family)
    embeddings, keys, extra = captum_args(model, inputs)
    ig = IntegratedGradients(
        model,
        target_output,
        baseline=baseline,
        n_steps=16,
        method=method,
        internal_batch_size=7,
        tokenizer=tokenizer_for(family),
    )
    ours = ig.attribute(inputs)
    with torch.no_grad():
        baselines = ig.baseline_embeddings(inputs, ours.mask)
    theirs, delta = CaptumIntegratedGradients(captum_forward(model, keys, target_output)).attribute(
        embeddings,
        baselines=baselines,
        target=ours.target,
        additional_forward_args=extra,
        n_steps=16,
        method=method,
        internal_batch_size=40,
        return_convergence_delta=True,
    )
    assert_scores_close(ours.scores, theirs.sum(-1), ours.mask)
    torch.testing.assert_close(ours.extras["delta"], delta.float(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_smoothgrad_equals_captum_noise_tunnel(family, monkeypatch):
    model, inputs = setup(family)
    embeddings, keys, extra = captum_args(model, inputs)
    forward = captum_forward(model, keys)
    tok = tokenizer_for(family)
    target = Gradient(model, tokenizer=tok).attribute(inputs).target

    # Zero noise: captum's smoothgrad of raw gradients, aggregated, equals ours with noise_std=0.
    mean_grads = NoiseTunnel(Saliency(forward)).attribute(
        embeddings,
        nt_type="smoothgrad",
        nt_samples=3,
        stdevs=0.0,
        target=target,
        additional_forward_args=extra,
        abs=False,
    )
    for aggregation in AGGREGATIONS:
        ours = SmoothGrad(
            model, n_samples=3, noise_std=0.0, aggregation=aggregation, tokenizer=tok
        ).attribute(inputs)
        assert_scores_close(
            ours.scores, aggregate_token_saliency(mean_grads, embeddings, aggregation), ours.mask
        )

    # A fixed noise tensor: captum is given exactly the noise our explainer draws.
    explainer = SmoothGrad(
        model, n_samples=4, noise_std=0.2, noise_scale="range", tokenizer=tok, internal_batch_size=5
    )
    noise = explainer.sample_noise(inputs)
    assert noise.abs().sum() > 0
    assert torch.all(noise[~inputs["attention_mask"].bool().unsqueeze(1).expand(noise.shape[:3])] == 0)

    def fixed_noise(input, stdev, nt_samples_partition):
        assert nt_samples_partition == noise.shape[1]
        return input.repeat_interleave(nt_samples_partition, dim=0) + noise.reshape(-1, *noise.shape[2:])

    monkeypatch.setattr(NoiseTunnel, "_add_noise_to_input", staticmethod(fixed_noise))
    mean_grads = NoiseTunnel(Saliency(forward)).attribute(
        embeddings,
        nt_type="smoothgrad",
        nt_samples=4,
        stdevs=1.0,
        target=target,
        additional_forward_args=extra,
        abs=False,
    )
    for aggregation in ("l2", "grad_x_input"):
        explainer.aggregation = aggregation
        ours = explainer.attribute(inputs, target=target)
        assert_scores_close(
            ours.scores, aggregate_token_saliency(mean_grads, embeddings, aggregation), ours.mask
        )


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("target_output", ["logit", "prob"])
def test_occlusion_mask_token_equals_captum_occlusion(family, target_output):
    model, inputs = setup(family)
    embeddings, keys, extra = captum_args(model, inputs)
    tok = tokenizer_for(family)
    ours = Occlusion(
        model, target_output, removal="mask_token", tokenizer=tok, internal_batch_size=9
    ).attribute(inputs)
    baselines = (
        word_embedding_layer(model).weight[tok.mask_token_id].detach().expand_as(embeddings).contiguous()
    )
    dim = embeddings.shape[-1]
    with torch.no_grad():
        theirs = CaptumOcclusion(captum_forward(model, keys, target_output)).attribute(
            embeddings,
            sliding_window_shapes=(1, dim),
            strides=(1, dim),
            baselines=baselines,
            target=ours.target,
            additional_forward_args=extra,
            perturbations_per_eval=8,
        )
    assert_scores_close(ours.scores, theirs[..., 0], ours.mask)


@pytest.mark.parametrize("family", FAMILIES)
def test_word_occlusion_equals_captum_feature_ablation(family):
    model, inputs = setup(family)
    embeddings, keys, extra = captum_args(model, inputs)
    tok = tokenizer_for(family)
    tok.padding_side = "left" if family == "roberta" else "right"
    encoded = tok([s for s, _ in SENTENCES[:5]], padding=True, truncation=True, max_length=24)
    tok.padding_side = "right"
    word_ids = torch.tensor(
        [[-1 if w is None else w for w in encoded.word_ids(i)] for i in range(len(encoded["input_ids"]))]
    )
    assert torch.equal(torch.tensor(encoded["input_ids"]), inputs["input_ids"])
    ours = Occlusion(model, removal="mask_token", tokenizer=tok).attribute(inputs, word_ids=word_ids)
    assert ours.params["unit"] == "word"
    # Captum: one feature per word, every other position its own feature (not compared).
    n_words = int(word_ids.max()) + 1
    feature = torch.where(word_ids >= 0, word_ids, n_words + torch.arange(word_ids.shape[1]))
    baselines = (
        word_embedding_layer(model).weight[tok.mask_token_id].detach().expand_as(embeddings).contiguous()
    )
    with torch.no_grad():
        theirs = FeatureAblation(captum_forward(model, keys)).attribute(
            embeddings,
            baselines=baselines,
            target=ours.target,
            additional_forward_args=extra,
            feature_mask=feature.unsqueeze(-1).expand_as(embeddings).contiguous(),
            perturbations_per_eval=4,
        )
    assert_scores_close(ours.scores, theirs[..., 0], ours.mask)
    # Pieces of one word share the word's score.
    for row, words, keep in zip(ours.scores, word_ids, ours.mask, strict=True):
        for w in words[keep].unique():
            assert torch.unique(row[keep & (words == w)]).numel() == 1
