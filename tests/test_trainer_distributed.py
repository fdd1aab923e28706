"""Two CPU processes (torchrun + gloo, DDP or FSDP2) must train like one process with the same global
batch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests import tiny

SCRIPT = Path(__file__).with_name("dist_train.py")


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory):
    one = tmp_path_factory.mktemp("one")
    _run([sys.executable, str(SCRIPT), "--out", str(one), "--per_device", "4"], one)
    return one


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_two_processes_equal_one_process(tmp_path, single_process_run, sharding):
    one, two = single_process_run, tmp_path / "two"
    extra = ["--fsdp"] if sharding == "fsdp" else []
    _run(
        [
            "torchrun",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(SCRIPT),
            "--out",
            str(two),
            "--per_device",
            "2",
            *extra,
        ],
        tmp_path,
    )
    single = torch.load(one / "rank0.pt")
    rank0, rank1 = torch.load(two / "rank0.pt"), torch.load(two / "rank1.pt")
    for name in single["params"]:
        assert torch.equal(rank0["params"][name], rank1["params"][name]), f"ranks differ on {name}"
    tiny.assert_same_updates(single["initial"], rank0["params"], single["params"])
    # The logged SGT metrics are gathered over both processes: the token share covers the whole global batch.
    logs1 = [h for h in single["log_history"] if "kl_loss" in h]
    logs2 = [h for h in rank0["log_history"] if "kl_loss" in h]
    assert len(logs1) == len(logs2) == 8
    for a, b in zip(logs1, logs2, strict=True):
        assert a["sgt_masked_token_share"] == pytest.approx(b["sgt_masked_token_share"])
        assert a["task_loss"] == pytest.approx(b["task_loss"], rel=1e-4)
        assert a["kl_loss"] == pytest.approx(b["kl_loss"], rel=1e-3, abs=1e-7)


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
@pytest.mark.parametrize("saliency_pass", ["reuse", "eval"])
def test_lora_two_processes_equal_one_process(tmp_path, saliency_pass):
    """LoRA under DDP: the word table is frozen (its output needs no grad), yet the saliency is taken; only
    adapters and head move, alike on both ranks and as in one process."""
    pytest.importorskip("peft")
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    flags = ["--lora", "--saliency_pass", saliency_pass]
    _run([sys.executable, str(SCRIPT), "--out", str(one), "--per_device", "4", *flags], one)
    _run(
        [
            "torchrun",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(SCRIPT),
            "--out",
            str(two),
            "--per_device",
            "2",
            *flags,
        ],
        tmp_path,
    )
    single = torch.load(one / "rank0.pt")
    rank0, rank1 = torch.load(two / "rank0.pt"), torch.load(two / "rank1.pt")
    initial = dict(tiny.tiny_model("bert", seed=1).named_parameters())
    moved = 0
    tiny.assert_same_updates(single["initial"], rank0["params"], single["params"])
    for name, value in single["params"].items():
        assert torch.equal(rank0["params"][name], rank1["params"][name]), f"ranks differ on {name}"
        frozen = name.replace("base_model.model.", "").replace(".base_layer", "")
        if "lora_" not in name and "modules_to_save" not in name and frozen in initial:
            assert torch.equal(value, initial[frozen].detach()), f"frozen {name} moved"
        moved += "lora_B" in name and bool(value.abs().sum() > 0)
    assert moved > 0
