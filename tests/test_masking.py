import pytest
import torch

from sgt_nlp.masking import (
    apply_mask,
    highest_k_mask,
    lowest_k_mask,
    mask_overlap,
    maskable_positions,
    random_k_mask,
    replacement_embeddings,
    select_mask_positions,
    special_ids_of,
    tokens_to_mask_per_sequence,
)
from sgt_nlp.saliency import aggregate_token_saliency, select_target_scores
from tests import tiny


def test_maskable_positions_exclude_special_and_padding():
    tok = tiny.wordpiece_tokenizer()
    batch = tok(["the movie was good", "bad"], padding=True, return_tensors="pt")
    candidates = maskable_positions(batch["input_ids"], batch["attention_mask"], special_ids_of(tok))
    # [CLS] the movie was good [SEP] / [CLS] bad [SEP] [PAD] [PAD] [PAD]
    assert candidates.tolist() == [
        [False, True, True, True, True, False],
        [False, True, False, False, False, False],
    ]


def test_special_tokens_mask_is_honoured():
    ids = torch.tensor([[5, 6, 7, 8]])
    stm = torch.tensor([[0, 1, 0, 0]])
    assert maskable_positions(ids, None, (), stm).tolist() == [[True, False, True, True]]


def test_k_is_floor_of_fraction_of_real_tokens():
    candidates = torch.tensor([[True] * 10, [True] * 3 + [False] * 7, [False] * 10])
    assert tokens_to_mask_per_sequence(candidates, 0.3).tolist() == [3, 0, 0]
    assert tokens_to_mask_per_sequence(candidates, 0.5).tolist() == [5, 1, 0]


def test_lowest_k_picks_exactly_the_k_lowest_candidates():
    scores = torch.tensor([[0.1, 5.0, 0.2, 3.0, -1.0, 0.0], [9.0, 1.0, 2.0, 0.5, 4.0, 3.0]])
    candidates = torch.tensor([[False, True, True, True, True, False], [True, True, True, True, True, True]])
    k = torch.tensor([2, 3])
    chosen = lowest_k_mask(scores, candidates, k)
    # row 0: candidates 1..4 have scores 5, 0.2, 3, -1 -> lowest two: positions 4 (-1) and 2 (0.2).
    # position 0 (0.1) and 5 (0.0) are lower but not candidates.
    assert chosen[0].nonzero().flatten().tolist() == [2, 4]
    # row 1: lowest three are 0.5 (3), 1.0 (1), 2.0 (2)
    assert chosen[1].nonzero().flatten().tolist() == [1, 2, 3]


def test_lowest_k_never_exceeds_candidates():
    scores = torch.zeros(1, 4)
    candidates = torch.tensor([[True, False, True, False]])
    chosen = lowest_k_mask(scores, candidates, torch.tensor([4]))
    assert chosen.tolist() == [[True, False, True, False]]


def test_highest_k_picks_exactly_the_k_highest_candidates():
    scores = torch.tensor([[0.1, 5.0, 0.2, 3.0, -1.0, 9.0], [9.0, 1.0, 2.0, 0.5, 4.0, 3.0]])
    candidates = torch.tensor([[False, True, True, True, True, False], [True, True, True, True, True, True]])
    chosen = highest_k_mask(scores, candidates, torch.tensor([2, 3]))
    # row 0: candidates 1..4 score 5, 0.2, 3, -1 -> highest two are positions 1 (5) and 3 (3); 5 (9.0) is
    # special.
    assert chosen[0].nonzero().flatten().tolist() == [1, 3]
    # row 1: highest three are 9 (0), 4 (4), 3 (5)
    assert chosen[1].nonzero().flatten().tolist() == [0, 4, 5]
    assert torch.equal(select_mask_positions("highest", scores, candidates, torch.tensor([2, 3])), chosen)


# Two rows of 10 positions: [CLS] 7 real [SEP] [PAD] and [CLS] 4 real [SEP] [PAD]x4.
RANDOM_CANDIDATES = torch.tensor([[False] + [True] * 7 + [False, False], [False] + [True] * 4 + [False] * 5])


def test_random_k_masks_exactly_k_candidates_and_never_special_or_padding():
    k = torch.tensor([3, 2])
    for seed in range(50):
        chosen = random_k_mask(RANDOM_CANDIDATES, k, torch.Generator().manual_seed(seed))
        assert chosen.sum(dim=-1).tolist() == [3, 2]
        assert not (chosen & ~RANDOM_CANDIDATES).any()


def test_random_k_is_reproducible_and_covers_every_candidate_unlike_lowest_k():
    k = torch.tensor([3, 2])
    first = random_k_mask(RANDOM_CANDIDATES, k, torch.Generator().manual_seed(11))
    again = random_k_mask(RANDOM_CANDIDATES, k, torch.Generator().manual_seed(11))
    assert torch.equal(first, again)
    # Scores rising with position: the lowest-k set is always the first k real tokens.
    scores = torch.arange(10.0).expand(2, 10)
    lowest = lowest_k_mask(scores, RANDOM_CANDIDATES, k)
    draws = torch.stack(
        [
            select_mask_positions("random", None, RANDOM_CANDIDATES, k, torch.Generator().manual_seed(s))
            for s in range(200)
        ]
    )
    hits = draws.sum(dim=0)
    assert torch.equal(hits > 0, RANDOM_CANDIDATES)  # every candidate is drawn at some point, nothing else is
    assert sum(not torch.equal(d, lowest) for d in draws) > 150
    # Uniform: each of the 7 candidates of row 0 is drawn 3/7 of the time, i.e. ~86 times in 200 draws.
    assert ((hits[0, 1:8] > 50) & (hits[0, 1:8] < 125)).all()


def test_mask_overlap_by_hand_and_at_chance_for_random_draws():
    first = torch.tensor([[1, 1, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    second = torch.tensor([[1, 0, 1, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    share = mask_overlap(first, second, torch.tensor([3, 0]))
    assert share[0].item() == pytest.approx(2 / 3)
    assert torch.isnan(share[1])  # nothing masked: no share, not 0
    # Two random draws of k = 3 among 7 candidates share 3/7 of their positions in expectation.
    k = torch.tensor([3, 2])
    generator = torch.Generator().manual_seed(5)
    shares = torch.stack(
        [
            mask_overlap(
                random_k_mask(RANDOM_CANDIDATES, k, generator),
                random_k_mask(RANDOM_CANDIDATES, k, generator),
                k,
            )[0]
            for _ in range(2000)
        ]
    )
    assert shares.mean().item() == pytest.approx(3 / 7, abs=0.02)


def test_select_mask_positions_refuses_unknown_choices_and_missing_scores():
    k = torch.tensor([1, 1])
    with pytest.raises(ValueError, match="allowed: saliency, random, highest"):
        select_mask_positions("lowest", torch.zeros(2, 10), RANDOM_CANDIDATES, k)
    with pytest.raises(ValueError, match="needs scores"):
        select_mask_positions("saliency", None, RANDOM_CANDIDATES, k)


@pytest.mark.parametrize("strategy", ["random_token", "mask_token", "zero", "uniform"])
def test_replacement_strategies(strategy):
    torch.manual_seed(0)
    weight = torch.randn(20, 4)
    ids = torch.tensor([[2, 7, 8, 9, 3, 0]])
    embeddings = weight[ids].requires_grad_(True)
    candidates = torch.tensor([[False, True, True, True, False, False]])
    positions = torch.tensor([[False, True, False, True, False, False]])
    generator = torch.Generator().manual_seed(1)
    repl = replacement_embeddings(
        strategy,
        embeddings,
        positions,
        weight,
        mask_token_id=4,
        special_ids=[0, 1, 2, 3, 4],
        candidates=candidates,
        generator=generator,
    )
    masked = apply_mask(embeddings, positions, repl)
    assert not masked.requires_grad
    assert torch.equal(masked[~positions], embeddings.detach()[~positions])
    if strategy == "zero":
        assert torch.count_nonzero(masked[positions]) == 0
    elif strategy == "mask_token":
        assert torch.equal(masked[0, 1], weight[4]) and torch.equal(masked[0, 3], weight[4])
    elif strategy == "random_token":
        for row in masked[positions]:
            matches = (weight == row).all(dim=-1).nonzero().flatten().tolist()
            assert matches and matches[0] >= 5  # a vocabulary row, never a special token
    else:  # uniform within the per-dimension range of the real tokens 7, 8, 9
        real = weight[torch.tensor([7, 8, 9])]
        low, high = real.min(dim=0).values, real.max(dim=0).values
        assert ((masked[positions] >= low) & (masked[positions] <= high)).all()


def test_random_token_draws_are_reproducible_with_the_generator():
    weight = torch.randn(50, 3)
    emb = torch.zeros(2, 5, 3)
    pos = torch.ones(2, 5, dtype=torch.bool)
    a = replacement_embeddings("random_token", emb, pos, weight, generator=torch.Generator().manual_seed(3))
    b = replacement_embeddings("random_token", emb, pos, weight, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_mask_token_strategy_without_mask_token_is_an_error():
    with pytest.raises(ValueError, match="mask token"):
        replacement_embeddings(
            "mask_token", torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool), torch.zeros(5, 3)
        )


def test_aggregations_by_hand():
    g = torch.tensor([[[3.0, -4.0], [1.0, 1.0]]])
    e = torch.tensor([[[1.0, 2.0], [-2.0, 0.5]]])
    assert torch.allclose(aggregate_token_saliency(g, e, "l2"), torch.tensor([[5.0, 2**0.5]]))
    assert torch.allclose(aggregate_token_saliency(g, e, "l1"), torch.tensor([[7.0, 2.0]]))
    assert torch.allclose(aggregate_token_saliency(g, e, "signed_mean"), torch.tensor([[-0.5, 1.0]]))
    # 3*1 + -4*2 = -5 ; 1*-2 + 1*0.5 = -1.5
    assert torch.allclose(aggregate_token_saliency(g, e, "grad_x_input"), torch.tensor([[-5.0, -1.5]]))
    assert torch.allclose(aggregate_token_saliency(g, e, "abs_grad_x_input"), torch.tensor([[5.0, 1.5]]))
    with pytest.raises(ValueError, match="allowed"):
        aggregate_token_saliency(g, e, "max")


def test_select_target_scores():
    logits = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    target = torch.tensor([1, 0])
    assert torch.equal(select_target_scores(logits, target, "logit"), torch.tensor([2.0, 0.0]))
    expected = torch.log_softmax(logits, -1)[[0, 1], [1, 0]]
    assert torch.allclose(select_target_scores(logits, target, "log_prob"), expected)
    assert torch.allclose(select_target_scores(logits, target, "prob"), expected.exp())
