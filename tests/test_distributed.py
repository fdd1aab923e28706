"""close_process_group: commands run under torchrun close their gloo group on success, not after an error."""

from __future__ import annotations

import pytest
import torch.distributed as dist

from sgt_nlp import finetune
from sgt_nlp.distributed import close_process_group


@pytest.fixture
def gloo_group(tmp_path):
    """A real one-process gloo group, destroyed afterwards if the test left it open."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_close_process_group_destroys_the_group(gloo_group):
    close_process_group()
    assert not dist.is_initialized()


def test_close_process_group_without_a_group_does_nothing():
    assert not dist.is_initialized()
    close_process_group()
    assert not dist.is_initialized()


def test_train_main_closes_the_group_after_training(gloo_group, monkeypatch):
    trained = []
    monkeypatch.setattr(finetune, "parse_args", lambda argv: ("model", "data", "run"))
    monkeypatch.setattr(finetune, "run_training", lambda *args: trained.append(args))
    finetune.main([])
    assert trained == [("model", "data", "run")]
    assert not dist.is_initialized()


def test_train_main_leaves_the_group_to_the_launcher_after_an_error(gloo_group, monkeypatch):
    """A failed rank must not wait at a barrier the others may never reach."""

    def fail(*args):
        raise RuntimeError("training failed")

    monkeypatch.setattr(finetune, "parse_args", lambda argv: ("model", "data", "run"))
    monkeypatch.setattr(finetune, "run_training", fail)
    with pytest.raises(RuntimeError, match="training failed"):
        finetune.main([])
    assert dist.is_initialized()
