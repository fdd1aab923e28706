"""Trains a tiny model with SaliencyGuidedTrainer and saves its parameters; run alone or under torchrun.

Used by test_trainer_distributed.py: 2 processes x batch 2 must equal 1 process x batch 4.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sgt_nlp.distributed import close_process_group  # noqa: E402
from tests import tiny  # noqa: E402
from tests.test_trainer import make_dataset, make_trainer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--per_device", type=int, required=True)
    parser.add_argument("--strategy", default="zero")
    parser.add_argument("--fsdp", action="store_true", help="shard with FSDP2 instead of DDP")
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters (PEFT) on a frozen model")
    parser.add_argument("--saliency_pass", default="reuse")
    args = parser.parse_args()
    out = Path(args.out)
    rank = int(os.environ.get("RANK", 0))
    model = tiny.tiny_model("bert", seed=1)
    if args.lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"])
        model = get_peft_model(model, lora)
    # taken before training (and before FSDP shards the parameters), for the update comparison
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = make_trainer(
        out,
        model=model,
        **tiny.INVARIANCE_OPTIMIZER,
        dataset=make_dataset(repeat=2),
        sgt_saliency_pass=args.saliency_pass,
        per_device_train_batch_size=args.per_device,
        sgt_mask_strategy=args.strategy,
        num_train_epochs=2,
        ddp_backend="gloo" if "RANK" in os.environ else None,
        **(
            {
                "fsdp": "full_shard",
                "fsdp_config": {"fsdp_version": 2, "transformer_layer_cls_to_wrap": ["BertLayer"]},
            }
            if args.fsdp
            else {}
        ),
    )
    trainer.train()
    # FSDP2 parameters are sharded DTensors: gather each to its full value
    state = {
        n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().cpu()
        for n, p in trainer.model.named_parameters()
    }
    saved = {"initial": initial, "params": state, "log_history": trainer.state.log_history}
    torch.save(saved, out / f"rank{rank}.pt")
    close_process_group()


if __name__ == "__main__":
    main()
