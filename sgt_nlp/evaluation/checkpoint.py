"""Batch checkpoints of an evaluation, so that an interrupted one resumes where it stopped.

A full-test evaluation can take longer than a working session. With a checkpoint file, every finished batch is
appended to it (and flushed to disk); a later call with the same file skips the batches it holds. Batches are
the unit because every seeded explainer keys its draws on the example's content, and the perturbed passes of
a batch run together: a resumed evaluation gives the same numbers as an uninterrupted one.

The file starts with a fingerprint of everything that decides the numbers (the settings, the model's
weights, the examples and their batches); a file made with anything else is refused, never mixed in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..validation import UsageError
from .config import EvaluationConfig
from .records import ExampleOutput

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
#: settings that name things but do not change the numbers
_NAMING_FIELDS = ("model", "data_dir", "output_dir", "model_name")


def model_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the model's parameter and buffer names, dtypes, shapes and values."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def fingerprint(
    config: EvaluationConfig,
    model: torch.nn.Module,
    annotation_ids: Sequence[str],
    batches: Sequence[Sequence[int]],
    threshold: float,
) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: settings (not the folder names), weights, examples,
    batches and the comp/suff threshold."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NAMING_FIELDS}
    if not settings.get("bf16"):
        settings.pop("bf16", None)  # fp32 checkpoints written before the bf16 option keep their fingerprint
    return {
        "version": CHECKPOINT_VERSION,
        "settings": json.loads(json.dumps(settings, sort_keys=True, default=str)),
        "model": model_digest(model),
        "examples": hashlib.sha256("\n".join(annotation_ids).encode()).hexdigest(),
        "batches": hashlib.sha256(json.dumps([list(b) for b in batches]).encode()).hexdigest(),
        "threshold": threshold,
    }


@dataclasses.dataclass
class DoneBatch:
    """One finished batch: its index among all batches, its outputs and what it cost."""

    index: int
    outputs: list[ExampleOutput]
    seconds: float
    forward_passes: int


class EvaluationCheckpoint:
    """An append-only file of :class:`DoneBatch` records behind a fingerprint header."""

    def __init__(self, path: str | Path, expected: dict[str, Any]) -> None:
        self.path = Path(path)
        self.done: dict[int, DoneBatch] = {}
        self._handle: BinaryIO | None = None
        if self.path.is_file() and self.path.stat().st_size:
            self._read(expected)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("wb") as handle:
                pickle.dump(expected, handle)
                handle.flush()
                os.fsync(handle.fileno())

    def _read(self, expected: dict[str, Any]) -> None:
        good_end = 0
        with self.path.open("rb") as handle:
            try:
                header = pickle.load(handle)
            except Exception as exc:
                raise UsageError(f"{self.path}: not an evaluation checkpoint ({exc}); delete it") from None
            if header != expected:
                changed = sorted(
                    k for k in expected if not isinstance(header, dict) or header.get(k) != expected[k]
                )
                raise UsageError(
                    f"{self.path}: made by an evaluation with another {', '.join(changed)}; delete it (or "
                    "give another checkpoint file) to start this one"
                )
            good_end = handle.tell()
            while True:
                try:
                    batch = pickle.load(handle)
                except EOFError:
                    break
                except (pickle.UnpicklingError, AttributeError, ValueError, IndexError):
                    logger.warning("%s: an unfinished record at byte %d is dropped", self.path, good_end)
                    break
                if not isinstance(batch, DoneBatch):
                    break
                self.done[batch.index] = batch
                good_end = handle.tell()
        if good_end < self.path.stat().st_size:  # a write cut short: keep what is whole
            with self.path.open("r+b") as handle:
                handle.truncate(good_end)

    def add(self, batch: DoneBatch) -> None:
        """Append a finished batch and flush it to disk."""
        if self._handle is None:
            self._handle = self.path.open("ab")
        pickle.dump(batch, self._handle)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.done[batch.index] = batch

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
