"""The single copies of model loading helpers: device resolution, label-order matching, seeded subsets."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import BertConfig

from sgt_nlp.loading import match_label_order, model_label_names, resolve_device
from sgt_nlp.sampling import seeded_subset


def test_seeded_subset_is_a_sorted_seeded_draw():
    chosen = seeded_subset(10, 4, seed=0)
    assert chosen == sorted(int(i) for i in np.random.default_rng(0).choice(10, size=4, replace=False))
    assert chosen == [2, 4, 5, 7]  # a draw in file order, not a prefix
    assert seeded_subset(10, 4, seed=0) == chosen and seeded_subset(10, 4, seed=1) != chosen
    assert seeded_subset(3, 5, seed=0) == [0, 1, 2] and seeded_subset(3, None, seed=0) == [0, 1, 2]
    assert seeded_subset(5, 0, seed=0) == []
    with pytest.raises(ValueError, match=">= 0"):
        seeded_subset(5, -1, seed=0)


def test_model_label_names_fill_missing_names():
    config = SimpleNamespace(num_labels=3, id2label={0: "a", "2": "c"})  # keys may be strings (from JSON)
    assert model_label_names(config) == ["a", "LABEL_1", "c"]
    assert model_label_names(BertConfig(num_labels=2)) == ["LABEL_0", "LABEL_1"]


def test_label_order_follows_the_model(caplog):
    assert match_label_order(["POS", "NEG"], ("NEG", "POS")) == ["POS", "NEG"]
    assert match_label_order(["NEG", "NEU", "POS"], ("POS",)) == ["NEG", "NEU", "POS"]  # a split may lack one
    with caplog.at_level(logging.WARNING):
        assert match_label_order(["LABEL_0", "LABEL_1"], ("pos", "neg"), "m") == ["neg", "pos"]
    assert "m has no label names" in caplog.text
    with pytest.raises(
        ValueError, match=r"\(config.id2label of m\) do not match the split's labels \['x', 'y'\]"
    ):
        match_label_order(["a", "b"], ("y", "x"), "m")
    with pytest.raises(ValueError, match="do not match"):
        match_label_order(["LABEL_0", "LABEL_1", "LABEL_2"], ("a", "b"))


class _State:
    num_processes, device = 2, torch.device("meta")


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu", _State()) == torch.device("meta")  # each process takes the launcher's device
