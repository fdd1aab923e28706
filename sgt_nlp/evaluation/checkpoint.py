"""Batch checkpoints of an evaluation, so that an interrupted one resumes where it stopped.

A full-test evaluation can take longer than a working session. With a checkpoint file, every finished batch is
appended to it (and flushed to disk); a later call with the same file skips the batches it holds. Batches are
the unit because every seeded explainer keys its draws on the example's content, and the perturbed passes of
a batch run together: a resumed evaluation gives the same numbers as an uninterrupted one.

The file starts with a fingerprint of everything that decides the numbers (the settings, the model's
weights, the examples and their batches); a file made with anything else is refused, never mixed in.

The file is JSON lines (the header, then one line per batch): a checkpoint can come from elsewhere, and
unlike a pickle, reading JSON never runs code. Arrays keep their dtype and floats their exact value (JSON
writes the shortest repr, which reads back bit for bit, NaN and infinities included), so a resumed
evaluation gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from ..validation import UsageError
from .config import EvaluationConfig
from .records import ExampleOutput, MethodResult

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 2  # 2: JSON lines (1 was a pickle, never read)
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
    """An append-only JSON-lines file of :class:`DoneBatch` records behind a fingerprint header."""

    def __init__(self, path: str | Path, expected: dict[str, Any]) -> None:
        self.path = Path(path)
        self.done: dict[int, DoneBatch] = {}
        self._handle: TextIO | None = None
        if self.path.is_file() and self.path.stat().st_size:
            self._read(expected)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", encoding="utf-8") as handle:
                handle.write(json.dumps(expected, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def _read(self, expected: dict[str, Any]) -> None:
        with self.path.open("rb") as raw:
            first = raw.readline()
            if not first.startswith(b"{"):
                hint = (
                    " (a pickled checkpoint of an older sgt_nlp: pickles are never read)"
                    if first[:1] == b"\x80"
                    else ""
                )
                raise UsageError(f"{self.path}: not an evaluation checkpoint{hint}; delete it")
            try:
                header = json.loads(first)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UsageError(
                    f"{self.path}, line 1: not an evaluation checkpoint ({exc}); delete it"
                ) from None
            expected_json = json.loads(json.dumps(expected, sort_keys=True))
            if header != expected_json:
                changed = sorted(
                    k
                    for k in expected_json
                    if not isinstance(header, dict) or header.get(k) != expected_json[k]
                )
                raise UsageError(
                    f"{self.path}: made by an evaluation with another "
                    f"{', '.join(changed) or 'format'}; delete it (or give another checkpoint file) to start "
                    "this one"
                )
            good_end = raw.tell()
            for line_no, line in enumerate(raw, start=2):
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("no line end")
                    batch = batch_from_json(json.loads(line))
                except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                    logger.warning("%s: an unfinished record at line %d is dropped", self.path, line_no)
                    break
                self.done[batch.index] = batch
                good_end = raw.tell()
        if good_end < self.path.stat().st_size:  # a write cut short: keep what is whole
            with self.path.open("r+b") as handle:
                handle.truncate(good_end)

    def add(self, batch: DoneBatch) -> None:
        """Append a finished batch and flush it to disk."""
        if self._handle is None:
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(json.dumps(batch_to_json(batch)) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.done[batch.index] = batch

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


# ---- JSON form of a finished batch -------------------------------------------------------------------------


def _array_to_json(value: np.ndarray) -> dict[str, Any]:
    array = np.asarray(value)
    return {"dtype": array.dtype.str, "shape": list(array.shape), "data": array.ravel().tolist()}


def _array_from_json(value: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(value["dtype"])
    if dtype.kind not in "biuf":
        raise ValueError(f"unexpected dtype {dtype}")
    return np.asarray(value["data"], dtype=dtype).reshape(value["shape"])


def _method_to_json(result: MethodResult) -> dict[str, Any]:
    return {
        "word_scores": _array_to_json(result.word_scores),
        "probs": _array_to_json(result.probs),
        "comp": _array_to_json(result.comp),
        "suff": _array_to_json(result.suff),
        "thresholded": [
            [key, _array_to_json(comp), _array_to_json(suff)]
            for key, (comp, suff) in result.thresholded.items()
        ],
        "masked_correct": [int(x) for x in result.masked_correct],
        "tokens_to_flip": int(result.tokens_to_flip),
        "empty": None if result.empty is None else _array_to_json(result.empty),
        "seconds": float(result.seconds),
        "convergence_delta": None if result.convergence_delta is None else float(result.convergence_delta),
    }


def _method_from_json(raw: dict[str, Any]) -> MethodResult:
    return MethodResult(
        word_scores=_array_from_json(raw["word_scores"]),
        probs=_array_from_json(raw["probs"]),
        comp=_array_from_json(raw["comp"]),
        suff=_array_from_json(raw["suff"]),
        thresholded={
            float(key): (_array_from_json(comp), _array_from_json(suff))
            for key, comp, suff in raw["thresholded"]
        },
        masked_correct=[int(x) for x in raw["masked_correct"]],
        tokens_to_flip=int(raw["tokens_to_flip"]),
        empty=None if raw["empty"] is None else _array_from_json(raw["empty"]),
        seconds=float(raw["seconds"]),
        convergence_delta=None if raw["convergence_delta"] is None else float(raw["convergence_delta"]),
    )


def batch_to_json(batch: DoneBatch) -> dict[str, Any]:
    """A :class:`DoneBatch` as plain JSON values (arrays with their dtype and shape)."""
    return {
        "index": batch.index,
        "seconds": batch.seconds,
        "forward_passes": batch.forward_passes,
        "outputs": [
            {
                "index": out.index,
                "annotation_id": out.annotation_id,
                "words_kept": out.words_kept,
                "kept_words": list(out.kept_words),
                "methods": {
                    removal: {method: _method_to_json(r) for method, r in methods.items()}
                    for removal, methods in out.methods.items()
                },
            }
            for out in batch.outputs
        ],
    }


def batch_from_json(raw: dict[str, Any]) -> DoneBatch:
    """The inverse of :func:`batch_to_json`; a malformed record raises ValueError, KeyError or TypeError."""
    outputs = [
        ExampleOutput(
            index=int(out["index"]),
            annotation_id=str(out["annotation_id"]),
            words_kept=int(out["words_kept"]),
            kept_words=[int(x) for x in out["kept_words"]],
            methods={
                str(removal): {str(method): _method_from_json(r) for method, r in methods.items()}
                for removal, methods in out["methods"].items()
            },
        )
        for out in raw["outputs"]
    ]
    return DoneBatch(
        index=int(raw["index"]),
        outputs=outputs,
        seconds=float(raw["seconds"]),
        forward_passes=int(raw["forward_passes"]),
    )
