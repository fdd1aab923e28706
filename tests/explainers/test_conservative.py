"""Conservative propagation is the rule, not an approximation of it.

(a) equal, in float64, to hand-written two-layer BERT and Llama forwards that apply Ali et al.'s detach rules
themselves; (b) conservation where the rule guarantees it (ReLU models: word, position and type embeddings
plus every bias sum to the explained logit); (c) scores do not depend on the batch or the padding side;
(d) weights, dropout state, attention implementation and hooks are as before, also after an error; refusals.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sgt_nlp.conservative import ConservativeUnsupported, conservative_rules
from sgt_nlp.explainers import Conservative, Gradient, get_explainer
from sgt_nlp.saliency import (
    embedding_forward_kwargs,
    embedding_gradients,
    forward_from_embeddings,
    word_embedding_layer,
)
from tests import tiny


def inputs_of(batch):
    return {k: v for k, v in batch.items() if k != "labels"}


# ---- (a) hand-written references -------------------------------------------------------------------------


def _layer_norm(x, module):
    """LayerNorm with its scale 1/sigma a constant (the LN-rule); the centering keeps its gradient."""
    centered = x - x.mean(-1, keepdim=True)
    inverse = torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + module.eps).detach()
    return centered * inverse * module.weight + module.bias


def _heads(x, n):
    return x.view(x.shape[0], x.shape[1], n, -1).transpose(1, 2)


def bert_reference(model, ids, mask, types, target):
    """Gradient of the target logit w.r.t. the word embeddings of a two-layer BERT with the rules."""
    bert, heads = model.bert, model.config.num_attention_heads
    words = bert.embeddings.word_embeddings.weight[ids].detach().requires_grad_(True)
    positions = bert.embeddings.position_embeddings.weight[: ids.shape[1]]
    h = words + bert.embeddings.token_type_embeddings.weight[types] + positions
    h = _layer_norm(h, bert.embeddings.LayerNorm)
    additive = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
    for layer in bert.encoder.layer:
        attention = layer.attention.self
        q, k, v = (_heads(lin(h), heads) for lin in (attention.query, attention.key, attention.value))
        scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5 + additive
        probs = torch.softmax(scores, -1).detach()  # the AH-rule
        context = (probs @ v).transpose(1, 2).reshape(h.shape)
        h = _layer_norm(layer.attention.output.dense(context) + h, layer.attention.output.LayerNorm)
        inner = F.gelu(layer.intermediate.dense(h))
        h = _layer_norm(layer.output.dense(inner) + h, layer.output.LayerNorm)
    logits = model.classifier(torch.tanh(bert.pooler.dense(h[:, 0])))
    (grads,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), words)
    return grads, logits


def _rms_norm(x, module):
    """Llama's RMSNorm (float32 inside, as the model computes it) with 1/rms a constant."""
    hidden = x.to(torch.float32)
    inverse = torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + module.variance_epsilon).detach()
    return module.weight * (hidden * inverse).to(x.dtype)


def _rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


def llama_reference(model, ids, mask, target):
    """The same for a two-layer Llama (grouped keys/values, RoPE, SwiGLU), read at the last real token."""
    inner, config = model.model, model.config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    words = inner.embed_tokens.weight[ids].detach().requires_grad_(True)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    cos, sin = (t[:, None] for t in inner.rotary_emb(words, positions))
    length = ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    allowed = causal[None, None] & mask.bool()[:, None, None, :]
    h = words
    for layer in inner.layers:
        attention = layer.self_attn
        x = _rms_norm(h, layer.input_layernorm)
        q = _rotate(_heads(attention.q_proj(x), heads), cos, sin)
        k = _rotate(_heads(attention.k_proj(x), kv_heads), cos, sin).repeat_interleave(heads // kv_heads, 1)
        v = _heads(attention.v_proj(x), kv_heads).repeat_interleave(heads // kv_heads, 1)
        scores = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).masked_fill(
            ~allowed, torch.finfo(h.dtype).min
        )
        probs = torch.softmax(scores, -1).detach()  # the AH-rule
        h = h + attention.o_proj((probs @ v).transpose(1, 2).reshape(h.shape))
        x = _rms_norm(h, layer.post_attention_layernorm)
        mlp = layer.mlp
        h = h + mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
    last = mask.sum(-1) - 1  # right padding: the last real token
    logits = model.score(_rms_norm(h, inner.norm))[torch.arange(len(ids)), last]
    (grads,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), words)
    return grads, logits


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_equals_a_hand_written_reference_in_float64(family):
    if family == "bert":
        model = tiny.tiny_model("bert", seed=4, initializer_range=0.3).double()
        batch = inputs_of(tiny.encode("bert"))
        tokenizer = tiny.tokenizer_for("bert")
    else:
        model = tiny.tiny_family_model("llama", seed=4).double()
        for p in model.parameters():  # larger weights: attention far from uniform, every path matters
            p.data.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(p.numel()))
        batch = inputs_of(tiny.encode_family("llama"))
        tokenizer = tiny.family_tokenizer("llama")
    explainer = Conservative(model, tokenizer=tokenizer)
    result = explainer.attribute(batch)
    with torch.enable_grad():
        if family == "bert":
            expected, logits = bert_reference(
                model, batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], result.target
            )
        else:
            expected, logits = llama_reference(
                model, batch["input_ids"], batch["attention_mask"], result.target
            )
    grads, embeddings, got_logits = explainer.gradients(explainer._prepare(batch), result.target)
    assert grads.dtype == torch.float64
    torch.testing.assert_close(got_logits, logits.detach(), rtol=1e-12, atol=1e-12)
    real = batch["attention_mask"].bool()
    scale = float(expected[real].abs().max())
    torch.testing.assert_close(grads[real], expected[real], rtol=1e-10, atol=1e-12 * scale)
    # ... and it is not the plain gradient
    plain, _, _ = embedding_gradients(model, batch, result.target)
    assert (plain[real] - expected[real]).abs().max() > 1e-3 * scale
    # the scores are gradient x input of those gradients (in float32, as every explainer's)
    relevance = (expected * embeddings).sum(-1).float().masked_fill(~result.mask, 0.0)
    torch.testing.assert_close(result.scores, relevance, rtol=1e-6, atol=1e-6 * float(relevance.abs().max()))


# ---- (b) conservation ------------------------------------------------------------------------------------


def relevance_total(model, batch, extra_inputs):
    """Per example: the explained logit, and the summed relevance (gradient x input) of the word embeddings,
    the other embedding outputs (``extra_inputs``: modules) and every bias."""
    totals, logits_out = [], []
    for row in range(batch["input_ids"].shape[0]):
        one = {k: v[row : row + 1, : int(batch["attention_mask"][row].sum())] for k, v in batch.items()}
        captured: list[torch.Tensor] = []
        handles = [m.register_forward_hook(lambda m, a, out, c=captured: c.append(out)) for m in extra_inputs]
        try:
            with conservative_rules(model):
                words = word_embedding_layer(model)(one["input_ids"]).detach().requires_grad_(True)
                kwargs = embedding_forward_kwargs(model, one)
                logits = forward_from_embeddings(model, words, kwargs, one["input_ids"])
        finally:
            for handle in handles:
                handle.remove()
        biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
        explained = logits[0, 1]
        grads = torch.autograd.grad(explained, [words, *captured, *biases], allow_unused=True)
        tensors = [words, *captured, *biases]
        total = sum(
            float((t * g).sum().detach()) for t, g in zip(tensors, grads, strict=True) if g is not None
        )
        totals.append(total)
        logits_out.append(float(explained.detach()))
    return torch.tensor(totals, dtype=torch.float64), torch.tensor(logits_out, dtype=torch.float64)


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_relevance_is_conserved_on_relu_models(family):
    if family == "bert":
        model = tiny.tiny_model("bert", seed=5, hidden_act="relu", initializer_range=0.3).double()
        model.bert.pooler.activation = nn.ReLU()  # tanh is not positively homogeneous
        embeddings = model.bert.embeddings
        extra = [embeddings.position_embeddings, embeddings.token_type_embeddings]
        batch = inputs_of(tiny.encode("bert"))
    else:
        model = tiny.tiny_family_model("gpt2", seed=5)
        model.config.activation_function = "relu"
        for block in model.transformer.h:
            block.mlp.act = nn.ReLU()
        model = model.double()
        extra = [model.transformer.wpe]
        batch = inputs_of(tiny.encode_family("gpt2"))
    totals, logits = relevance_total(model, batch, extra)
    torch.testing.assert_close(totals, logits, rtol=1e-10, atol=1e-10)
    assert logits.abs().min() > 1e-6  # not vacuous


# ---- (c) batch makeup and padding side ------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen2", "bert"])
def test_scores_do_not_depend_on_batch_makeup_or_padding_side(family):
    decoder = family in tiny.DECODER_FAMILIES
    model = tiny.tiny_family_model(family, seed=6) if decoder else tiny.tiny_model(family, seed=6)
    tokenizer = tiny.family_tokenizer(family)
    encode = tiny.encode_family if decoder else tiny.encode
    explainer = Conservative(model, tokenizer=tokenizer)
    reference = explainer.attribute(inputs_of(encode(family)))
    sides = ("left",) if decoder else ()  # BERT's first-token head changes under left padding
    for side in sides:
        other = explainer.attribute(inputs_of(encode(family, padding_side=side)))
        for a, b in zip(other.per_example(), reference.per_example(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    for i in (0, 3):
        alone = explainer.attribute(inputs_of(encode(family, [tiny.SENTENCES[i]])))
        torch.testing.assert_close(alone.per_example()[0], reference.per_example()[i], rtol=1e-4, atol=1e-6)
    order = [5, 1, 7, 0, 2, 6, 3, 4]
    shuffled = explainer.attribute(inputs_of(encode(family, [tiny.SENTENCES[i] for i in order])))
    for j, i in enumerate(order):
        torch.testing.assert_close(
            shuffled.per_example()[j], reference.per_example()[i], rtol=1e-4, atol=1e-6
        )


# ---- (d) the model is left as it was --------------------------------------------------------------------


def _state(model):
    return {
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "attention": [
            (id(m.config), m.config._attn_implementation) for m in model.modules() if hasattr(m, "config")
        ],
        "hooks": [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
        "forward": [m.__dict__.get("forward") for m in model.modules()],
    }


def assert_state(model, before):
    after = _state(model)
    assert after["weights"].keys() == before["weights"].keys()
    for key, value in before["weights"].items():
        assert torch.equal(after["weights"][key], value), key
    for name in ("training", "attention", "hooks", "forward"):
        assert after[name] == before[name], name


@pytest.mark.parametrize("family", ["bert", "llama", "modernbert"])
def test_model_is_restored_after_the_call_and_after_an_error(family):
    decoder = family != "bert"
    model = (
        tiny.tiny_family_model(family, seed=7) if decoder else tiny.tiny_model(family, seed=7, dropout=0.2)
    )
    batch = inputs_of((tiny.encode_family if decoder else tiny.encode)(family))
    explainer = Conservative(model, tokenizer=tiny.family_tokenizer(family))
    for training in (True, False):
        model.train(training)
        model.get_input_embeddings().eval()  # a mixed dropout state must come back as it was
        before = _state(model)
        explainer.attribute(batch)
        assert_state(model, before)
        with pytest.raises(Exception, match="index"):  # a target out of range fails inside the rules
            explainer.attribute(batch, target=torch.full((8,), 9))
        assert_state(model, before)
    logits = model.eval()(**batch).logits  # and the model runs as before, on its own attention
    assert model.config._attn_implementation == "sdpa"
    assert torch.isfinite(logits).all()


def test_the_rules_change_the_gradient_only_inside_the_block():
    model = tiny.tiny_model("bert", seed=8, initializer_range=0.3)
    batch = inputs_of(tiny.encode("bert"))
    plain = Gradient(model, aggregation="grad_x_input").attribute(batch)
    conservative = Conservative(model).attribute(batch)
    again = Gradient(model, aggregation="grad_x_input").attribute(batch)
    assert torch.equal(plain.scores, again.scores)
    assert not torch.allclose(plain.scores, conservative.scores, rtol=1e-3)
    torch.testing.assert_close(conservative.logits, plain.logits, rtol=1e-5, atol=1e-6)


# ---- families, LoRA, refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family", [*tiny.DECODER_FAMILIES, "modernbert", "roberta", "distilbert", "albert", "electra"]
)
def test_every_supported_family_gives_its_own_logits_and_finite_relevance(family):
    own = family in (*tiny.DECODER_FAMILIES, "modernbert")
    model = tiny.tiny_family_model(family, seed=9) if own else tiny.tiny_model(family, seed=9)
    batch = inputs_of((tiny.encode_family if own else tiny.encode)(family))
    result = get_explainer("conservative", model, tokenizer=tiny.family_tokenizer(family)).attribute(batch)
    torch.testing.assert_close(result.logits, model(**batch).logits, rtol=1e-4, atol=1e-5)
    assert torch.isfinite(result.scores).all() and result.scores[result.mask].abs().sum() > 0


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_lora_equals_the_merged_model(family):
    peft = pytest.importorskip("peft")
    own = family == "llama"
    base = tiny.tiny_family_model(family, seed=10) if own else tiny.tiny_model(family, seed=10)
    targets = {"bert": ["query", "value"], "llama": ["q_proj", "v_proj"]}[family]
    config = peft.LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=targets)
    model = peft.get_peft_model(base, config)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(p.numel()))
    batch = inputs_of((tiny.encode_family if own else tiny.encode)(family))
    tokenizer = tiny.family_tokenizer(family)
    adapted = Conservative(model, tokenizer=tokenizer).attribute(batch)
    merged = Conservative(copy.deepcopy(model).merge_and_unload(), tokenizer=tokenizer).attribute(batch)
    torch.testing.assert_close(adapted.scores, merged.scores, rtol=1e-4, atol=1e-5)


def test_unsupported_models_are_refused():
    with pytest.raises(ConservativeUnsupported, match="DebertaV2ForSequenceClassification.*registry"):
        Conservative(tiny.tiny_model("deberta-v2"))

    class ScaledNorm(nn.LayerNorm):
        def forward(self, x):
            return 2 * super().forward(x)

    model = tiny.tiny_model("bert")
    model.bert.encoder.layer[0].output.LayerNorm = ScaledNorm(32)
    with pytest.raises(ValueError, match="ScaledNorm"):
        get_explainer("conservative", model)

    class LlamaRMSNorm(nn.Module):  # the name of a known norm, but another computation
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(32))
            self.variance_epsilon = 1e-6

        def forward(self, x):
            return x * self.weight

    model = tiny.tiny_family_model("llama")
    model.model.norm = LlamaRMSNorm()
    before = _state(model)
    with pytest.raises(ConservativeUnsupported, match="something else"):
        Conservative(model, tokenizer=tiny.family_tokenizer("llama")).attribute(
            inputs_of(tiny.encode_family("llama"))
        )
    assert_state(model, before)


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_runs_under_bfloat16_autocast(family):
    """Autocast feeds a LayerNorm bfloat16 and gets float32 back; the rules follow and stay close."""
    own = family == "llama"
    model = tiny.tiny_family_model(family, seed=14) if own else tiny.tiny_model(family, seed=14)
    batch = inputs_of((tiny.encode_family if own else tiny.encode)(family))
    explainer = Conservative(model, tokenizer=tiny.family_tokenizer(family))
    reference = explainer.attribute(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = explainer.attribute(batch)
    assert torch.isfinite(low.scores).all()
    for a, b in zip(low.per_example(), reference.per_example(), strict=True):
        assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.9
