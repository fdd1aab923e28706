"""Analytic and behavioural tests of the saliency sanity checks (``sgt_nlp.sanity``) on tiny models."""

from __future__ import annotations

import functools
import json
import math
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tiny import FAMILIES, SENTENCES, WORDS, encode, tiny_model, tokenizer_for, wordpiece_tokenizer
from torch import nn

from sgt_nlp import sanity
from sgt_nlp.explainers import Explainer, get_explainer
from sgt_nlp.saliency import embedding_gradients
from sgt_nlp.sanity import cli as sanity_cli

torch.set_num_threads(1)


def _batch(family: str = "bert", sentences=SENTENCES):
    batch = encode(family, sentences)
    return batch, batch.pop("labels")


def _random_sentences(n: int, length: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(" ".join(rng.choice(WORDS) for _ in range(length)), i % 2) for i in range(n)]


# ---- an embedding-bag linear model: every gradient is known in closed form ---------------------------------


class EmbeddingBagLinear(nn.Module):
    """``z = W · sum_t e_t + b`` over the attended positions: ``d z_c / d e_t = W_c`` for every token."""

    def __init__(self, vocab: int = 20, dim: int = 6, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embeddings = nn.Embedding(vocab, dim)
        self.linear = nn.Linear(dim, classes)
        self.config = SimpleNamespace(num_labels=classes, pad_token_id=0)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, **_):
        e = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        weights = torch.ones(e.shape[:2]) if attention_mask is None else attention_mask.to(e.dtype)
        return SimpleNamespace(logits=self.linear((e * weights.unsqueeze(-1)).sum(dim=1)))


def _bag_inputs() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[1, 5, 7, 9, 4, 2], [1, 3, 8, 2, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def test_linear_bag_gradient_is_the_weight_row_of_the_class():
    model, inputs = EmbeddingBagLinear(), _bag_inputs()
    weight = model.linear.weight.detach()
    for c in range(3):
        target = torch.full((2,), c)
        grads, embeddings, _ = embedding_gradients(model, inputs, target, "logit")
        real = inputs["attention_mask"].bool()
        assert torch.allclose(grads[real], weight[c].expand(int(real.sum()), -1), atol=1e-6)
        l2 = get_explainer("gradient", model, special_ids=[0, 1, 2], aggregation="l2").attribute(
            inputs, target
        )
        assert torch.allclose(l2.scores[l2.mask], weight[c].norm().expand(int(l2.mask.sum())), atol=1e-6)
        gxi = get_explainer("gradient", model, special_ids=[0, 1, 2], aggregation="grad_x_input").attribute(
            inputs, target
        )
        assert torch.allclose(gxi.scores[gxi.mask], embeddings[gxi.mask] @ weight[c], atol=1e-6)


def test_constant_maps_are_excluded_and_counted_not_averaged():
    """On the bag model every token's l2 score is ||W_c||: no ranking exists, so every pair is excluded."""
    model, inputs = EmbeddingBagLinear(), _bag_inputs()
    l2 = get_explainer("gradient", model, special_ids=[0, 1, 2], aggregation="l2", target_output="logit")
    rows, originals, logits = sanity.class_sensitivity(l2, [inputs], num_labels=3)
    summary = sanity.summarize(rows)
    assert len(rows) == 2 * 2 and summary["spearman"]["excluded"] == 4 and summary["spearman"]["n"] == 0
    assert sanity.class_verdict(summary["spearman"]["mean"]) == "degenerate"
    gxi = get_explainer(
        "gradient", model, special_ids=[0, 1, 2], aggregation="grad_x_input", target_output="logit"
    )
    rows, originals, logits = sanity.class_sensitivity(gxi, [inputs], num_labels=3)
    embeddings = model.embeddings(inputs["input_ids"]).detach()
    predicted = logits.argmax(dim=-1)
    real = (inputs["input_ids"] > 2) & inputs["attention_mask"].bool()
    for b in range(2):
        expected = embeddings[b][real[b]] @ model.linear.weight.detach()[predicted[b]]
        assert np.allclose(originals[b], expected.double().numpy(), atol=1e-6)


# ---- two classes: antiparallel log-prob gradients ----------------------------------------------------------


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_binary_log_prob_gradients_are_antiparallel(family):
    model, tok = tiny_model(family, seed=3), tokenizer_for(family)
    inputs, _ = _batch(family)
    g0, _, logits = embedding_gradients(model, inputs, torch.zeros(8, dtype=torch.long), "log_prob")
    g1, _, _ = embedding_gradients(model, inputs, torch.ones(8, dtype=torch.long), "log_prob")
    p = torch.softmax(logits, dim=-1)
    # d log p0 = p1 (dz0 - dz1) and d log p1 = p0 (dz1 - dz0): g0 * p0 = -g1 * p1
    scale = (g0 * p[:, 0, None, None]).abs().max()
    assert torch.allclose(g0 * p[:, 0, None, None], -g1 * p[:, 1, None, None], atol=1e-5 * float(scale))
    for aggregation, expected in (
        ("grad_x_input", -1.0),
        ("l2", 1.0),
        ("l1", 1.0),
        ("abs_grad_x_input", 1.0),
    ):
        explainer = get_explainer(
            "gradient", model, tokenizer=tok, aggregation=aggregation, target_output="log_prob"
        )
        rows, _, _ = sanity.class_sensitivity(explainer, [inputs], num_labels=2)
        assert len(rows) == 8
        assert [r["spearman"] for r in rows] == pytest.approx([expected] * 8, abs=1e-9), aggregation
        assert [r["spearman_abs"] for r in rows] == pytest.approx([1.0] * 8, abs=1e-9)
        assert [r["top10_overlap"] for r in rows] == [1.0] * 8


def test_signed_mean_on_bert_is_flagged_as_rounding_noise_not_crashed_on():
    model, tok = tiny_model("bert", seed=1), wordpiece_tokenizer()
    inputs, _ = _batch()
    specs = sanity.parse_methods("gradient:signed_mean+grad_x_input")
    targets = [torch.zeros(8, dtype=torch.long)]
    verdicts = {}
    for spec in specs:
        maps, _ = sanity.explain(spec.build(model, tok, "log_prob"), [inputs], targets)
        verdicts[spec.label] = sanity.precision_check(spec, model, tok, [inputs], "log_prob", maps, targets)
    assert verdicts["gradient/signed_mean"]["verdict"] == "noise"
    assert verdicts["gradient/signed_mean"]["median_max_abs_score"] < 1e-9
    assert verdicts["gradient/grad_x_input"]["verdict"] == "ok"
    assert verdicts["gradient/grad_x_input"]["spearman"] > 0.999


@pytest.mark.parametrize("target_output", ["log_prob", "logit"])
def test_integrated_gradients_completeness(target_output):
    """Σ attributions = f(x) - f(baseline) + delta, and delta vanishes as the path integral converges.

    On the overfit tiny model the straight path from the zero baseline is sharp: 16 or 64 Gauss-Legendre
    points leave a delta of the order of the gap itself (reported, not hidden), 256 close it.
    """
    model, inputs, _ = _trained_tiny_bert()
    deltas = []
    for steps in (16, 256):
        ig = get_explainer(
            "integrated_gradients",
            model,
            tokenizer=wordpiece_tokenizer(),
            target_output=target_output,
            n_steps=steps,
            internal_batch_size=512,
        )
        result = ig.attribute(inputs)
        outputs = torch.log_softmax(result.logits, dim=-1) if target_output == "log_prob" else result.logits
        gap = outputs.gather(1, result.target.view(-1, 1)).squeeze(1) - result.extras["baseline_output"]
        assert gap.abs().max() > 1.0, "the trained model should move its output away from the baseline's"
        assert torch.allclose(result.scores.sum(dim=1), gap + result.extras["delta"], atol=1e-5)
        deltas.append(float(result.extras["delta"].abs().max() / gap.abs().max()))
    assert deltas[1] < 1e-2 and deltas[1] < deltas[0] / 20, deltas


# ---- randomisation -----------------------------------------------------------------------------------------


def test_randomizing_every_layer_gives_uncorrelated_maps_on_average_over_seeds():
    tok = wordpiece_tokenizer()
    inputs, _ = _batch(sentences=_random_sentences(16, 14, seed=0))
    means: dict[str, list[float]] = {"grad_x_input": [], "l2": []}
    for seed in range(8):
        model = tiny_model("bert", seed=seed)
        everything = sanity.randomization_stages(model)
        randomized = sanity.randomized_copy(model, everything, seed=100 + seed)
        for aggregation in means:
            spec = sanity.MethodSpec(aggregation, "gradient", {"aggregation": aggregation})
            original, logits = sanity.explain(spec.build(model, tok, "log_prob"), [inputs])
            maps, _ = sanity.explain(
                spec.build(randomized, tok, "log_prob"), [inputs], [logits.argmax(dim=-1)]
            )
            rows = [sanity.similarities(a, b) for a, b in zip(original, maps, strict=True)]
            means[aggregation].append(sanity.summarize(rows)["spearman"]["mean"])
    for aggregation, values in means.items():
        assert abs(float(np.mean(values))) < 0.2, (aggregation, values)


EXPECTED_STAGES = {
    "bert": [
        ("classifier", ("classifier",)),
        ("pooler", ("bert.pooler",)),
        ("layer 1", ("bert.encoder.layer.1",)),
        ("layer 0", ("bert.encoder.layer.0",)),
        ("embeddings", ("bert.embeddings",)),
    ],
    "roberta": [
        ("classifier", ("classifier",)),
        ("layer 1", ("roberta.encoder.layer.1",)),
        ("layer 0", ("roberta.encoder.layer.0",)),
        ("embeddings", ("roberta.embeddings",)),
    ],
    "distilbert": [
        ("classifier", ("classifier",)),
        ("pooler", ("pre_classifier",)),
        ("layer 1", ("distilbert.transformer.layer.1",)),
        ("layer 0", ("distilbert.transformer.layer.0",)),
        ("embeddings", ("distilbert.embeddings",)),
    ],
    "albert": [
        ("classifier", ("classifier",)),
        ("pooler", ("albert.pooler",)),
        ("layer group 0 (layers 0-1, shared)", ("albert.encoder.albert_layer_groups.0",)),
        ("embeddings", ("albert.embeddings", "albert.encoder.embedding_hidden_mapping_in")),
    ],
    "electra": [
        ("classifier", ("classifier",)),
        ("layer 1", ("electra.encoder.layer.1",)),
        ("layer 0", ("electra.encoder.layer.0",)),
        ("embeddings", ("electra.embeddings", "electra.embeddings_project")),
    ],
    "deberta-v2": [
        ("classifier", ("classifier",)),
        ("pooler", ("pooler",)),
        ("layer 1", ("deberta.encoder.layer.1",)),
        ("layer 0", ("deberta.encoder.layer.0",)),
        ("embeddings", ("deberta.embeddings", "deberta.encoder.rel_embeddings")),
    ],
}


@pytest.mark.parametrize("family", FAMILIES)
def test_cascading_stages_cover_every_parameter_once_and_reinitialise_only_their_own(family):
    model = tiny_model(family)
    stages = sanity.randomization_stages(model)
    assert [(s.name, s.modules) for s in stages] == EXPECTED_STAGES[family]
    owners: dict[str, str] = {}
    for stage in stages:
        for name, _ in sanity.stage_parameters(model, stage):
            assert name not in owners, f"{name} in {owners.get(name)} and {stage.name}"
            owners[name] = stage.name
    assert set(owners) == {n for n, _ in model.named_parameters()}
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    for stage in stages:
        randomized = sanity.randomized_copy(model, [stage], seed=7)
        changed = {n for n, p in randomized.named_parameters() if not torch.equal(p, original[n])}
        assert changed and all(owners[n] == stage.name for n in changed), (stage.name, changed)
        assert any(p.dim() > 1 for n, p in randomized.named_parameters() if n in changed)
    assert all(torch.equal(p, original[n]) for n, p in model.named_parameters())


def test_unknown_layouts_are_clear_errors():
    with pytest.raises(sanity.UnknownLayoutError, match="no base_model"):
        sanity.randomization_stages(EmbeddingBagLinear())
    model = tiny_model("bert")
    model.extra_head = nn.Linear(2, 2)
    with pytest.raises(sanity.UnknownLayoutError, match="extra_head.weight"):
        sanity.randomization_stages(model)
    model = tiny_model("bert")
    model.classifier = nn.Identity()
    with pytest.raises(sanity.UnknownLayoutError, match="no classifier head"):
        sanity.randomization_stages(model)


def test_loaded_weights_are_reinitialised_and_the_original_is_never_touched(tmp_path):
    """Transformers 5 flags loaded weights ``_is_hf_initialized`` and its initialisers skip them."""
    from transformers import AutoModelForSequenceClassification

    tiny_model("bert").save_pretrained(tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: getattr(p, "_is_hf_initialized", None) for n, p in model.named_parameters()}
    stages = sanity.randomization_stages(model)
    randomized = sanity.randomized_copy(model, stages, seed=0)
    changed = [n for n, p in randomized.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) > len(before) // 3
    assert randomized.classifier.weight.data_ptr() != model.classifier.weight.data_ptr()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert flags == {n: getattr(p, "_is_hf_initialized", None) for n, p in model.named_parameters()}


# ---- the verdicts on a trained model -----------------------------------------------------------------------


class PositiveOnlyGradient(Explainer):
    """A deliberately positive explainer: the largest |d f / d e_td| over dimensions (a max-abs
    aggregation)."""

    name = "positive_only"

    def _attribute(self, inputs, target, mask):
        grads, _, logits = embedding_gradients(self.model, inputs, target, self.target_output)
        return grads.abs().amax(dim=-1), logits, logits.argmax(dim=-1) if target is None else target, {}


@functools.cache
def _trained_state() -> dict[str, torch.Tensor]:
    """A tiny BERT fitted to the 8 SENTENCES (40 full-batch Adam steps): not random, so verdicts mean
    something."""
    model, (inputs, labels) = tiny_model("bert", seed=0), _batch()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        optimizer.zero_grad()
        model(**inputs, labels=labels).loss.backward()
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _trained_tiny_bert():
    model, (inputs, labels) = tiny_model("bert", seed=0), _batch()
    model.load_state_dict(_trained_state())
    return model.eval(), inputs, labels


def test_checks_flag_a_positive_only_explainer_and_pass_a_signed_one_on_a_trained_model():
    model, inputs, labels = _trained_tiny_bert()
    tok = wordpiece_tokenizer()
    with torch.no_grad():
        assert (model(**inputs).logits.argmax(-1) == labels).all(), (
            "the tiny model did not learn its 8 sentences"
        )
    specs = [
        sanity.MethodSpec(
            "positive_only",
            "positive_only",
            signed=False,
            factory=lambda m: PositiveOnlyGradient(m, "log_prob", tokenizer=tok),
        ),
        *sanity.parse_methods("gradient:grad_x_input"),
    ]
    config = sanity.SanityConfig(specs, target_output="log_prob", independent=False, precision_examples=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = sanity.run_sanity_checks(model, tok, [inputs], config, labels, progress=False).to_dict()
    by_label = {m["label"]: m for m in result["methods"]}
    assert by_label["positive_only"]["class_sensitivity"]["spearman"]["mean"] == pytest.approx(1.0)
    assert by_label["positive_only"]["class_verdict"] == "insensitive"
    assert by_label["gradient/grad_x_input"]["class_sensitivity"]["spearman"]["mean"] == pytest.approx(-1.0)
    assert by_label["gradient/grad_x_input"]["class_verdict"] == "sensitive"
    assert result["original"] == {"accuracy": 1.0, "agreement": 1.0}
    assert [r["stage"] for r in result["randomization"]["cascading"]] == [
        n for n, _ in EXPECTED_STAGES["bert"]
    ]
    assert "independent" not in result["randomization"]
    for m in result["methods"]:
        assert m["randomization_stage"] == "layer 1"
        assert m["randomization_similarity"] == m["cascading"][2]["spearman_abs"]["mean"]
        assert m["randomization_verdict"] in ("sensitive", "insensitive")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# ---- the command -------------------------------------------------------------------------------------------


def _eraser_folder(root, n: int = 6):
    docs = root / "docs"
    docs.mkdir(parents=True)
    lines = []
    for i, (text, label) in enumerate(SENTENCES[:n]):
        (docs / f"d{i}").write_text(text + "\n")
        lines.append(
            json.dumps(
                {
                    "annotation_id": f"d{i}",
                    "classification": ["NEG", "POS"][label],
                    "query": "",
                    "evidences": [
                        [
                            {
                                "docid": f"d{i}",
                                "start_token": 0,
                                "end_token": 2,
                                "start_sentence": 0,
                                "end_sentence": 0,
                                "text": " ".join(text.split()[:2]),
                            }
                        ]
                    ],
                }
            )
        )
    (root / "val.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_sanity_main_writes_json_html_and_prints_the_table(tmp_path, capsys):
    model = tiny_model("bert", seed=0)
    model.config.id2label, model.config.label2id = {0: "NEG", 1: "POS"}, {"NEG": 0, "POS": 1}
    model.save_pretrained(tmp_path / "model")
    wordpiece_tokenizer().save_pretrained(tmp_path / "model")
    data = _eraser_folder(tmp_path / "data")
    out = tmp_path / "out"
    sanity_cli.main(
        [
            "--model",
            str(tmp_path / "model"),
            "--data_dir",
            str(data),
            "--output_dir",
            str(out),
            "--methods",
            "gradient:l2+grad_x_input,random",
            "--max_examples",
            "5",
            "--batch_size",
            "3",
            "--max_length",
            "16",
            "--precision_examples",
            "2",
            "--max_stages",
            "3",
        ]
    )
    printed = capsys.readouterr().out
    for text in ("gradient/l2", "gradient/grad_x_input", "random", "+ layer 1", "agreement"):
        assert text in printed
    result = json.loads((out / "sanity.json").read_text())
    assert result["examples"] == 5 and result["labels"] == ["NEG", "POS"]
    assert set(result["randomization"]) == {"cascading", "independent"}
    assert [r["stage"] for r in result["randomization"]["independent"]] == ["classifier", "pooler", "layer 1"]
    assert len(result["stages"]) == 5 and result["settings"]["max_stages"] == 3
    assert [m["label"] for m in result["methods"]] == ["gradient/l2", "gradient/grad_x_input", "random"]
    random_row = result["methods"][2]
    assert (
        random_row["class_verdict"] == "insensitive" and random_row["randomization_verdict"] == "insensitive"
    )
    assert result["methods"][1]["class_verdict"] == "sensitive"
    assert result["methods"][0]["class_verdict"] == "insensitive"
    with torch.no_grad():
        batch = encode("bert", SENTENCES[:5], max_length=16)
        gold = batch.pop("labels")
        predicted = model(**batch).logits.argmax(dim=-1)
    assert result["original"] == {
        "accuracy": pytest.approx(float((predicted == gold).float().mean())),
        "agreement": 1.0,
    }
    assert result["settings"]["precision_examples"] == 3  # whole batches: the first batch holds 3
    page = (out / "sanity.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "gradient/grad_x_input" in page
    from sgt_nlp.report.sanity_tables import markdown_table

    assert "| tiny | `gradient/grad_x_input` | yes | -1.000 | sensitive |" in markdown_table({"tiny": result})
    from sgt_nlp.sanity.io import load_sanity

    loaded = load_sanity(out)
    assert loaded["methods"][0]["class_sensitivity"]["spearman"]["mean"] == pytest.approx(
        result["methods"][0]["class_sensitivity"]["spearman"]["mean"]
    )
    assert not any(math.isnan(x["agreement"]) for x in loaded["randomization"]["cascading"])


def test_eraser_inputs_follow_the_model_label_order_and_can_be_a_seeded_subset(tmp_path):
    data = _eraser_folder(tmp_path / "data", n=8)
    words, queries, labels = sanity.load_eraser_inputs(str(data), "val", ["NEG", "POS"], max_examples=5)
    assert [" ".join(w) for w in words] == [s for s, _ in SENTENCES[:5]]
    assert labels.tolist() == [y for _, y in SENTENCES[:5]] and queries == [[]] * 5
    _, _, flipped = sanity.load_eraser_inputs(str(data), "val", ["POS", "NEG"], max_examples=5)
    assert flipped.tolist() == [1 - y for _, y in SENTENCES[:5]]
    subset, _, subset_labels = sanity.load_eraser_inputs(str(data), "val", ["NEG", "POS"], 5, shuffle_seed=0)
    again, _, _ = sanity.load_eraser_inputs(str(data), "val", ["NEG", "POS"], 5, shuffle_seed=0)
    assert subset == again and subset != words
    by_text = {s: y for s, y in SENTENCES}
    assert subset_labels.tolist() == [by_text[" ".join(w)] for w in subset]
    with pytest.raises(ValueError, match="do not match"):
        sanity.load_eraser_inputs(str(data), "val", ["A", "B", "C"])
