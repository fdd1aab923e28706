"""Settings and fixtures every test module shares.

Tiny models gain nothing from intra-op threads, and the CI machine has two cores: one thread. The fixtures
are module-scoped (built once per test module that asks for them); a module that needs another model or
folder under the same name defines its own fixture, which takes precedence.
"""

from pathlib import Path

import pytest
import torch

from tests import tiny
from tests.toy_data import MOVIES, write_eraser

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny binary BERT (labels NEG, POS) with its word-piece tokenizer."""
    return tiny.save_binary_bert(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny sentiment sentences of ``tiny.SENTENCES`` as an ERASER folder (train and val)."""
    return write_eraser(tmp_path_factory.mktemp("eraser"))


@pytest.fixture(scope="session")
def movies_dir() -> Path:
    """ERASER movies in ../shared/data; the test is skipped where that folder is absent (a bare clone)."""
    if not (MOVIES / "test.jsonl").is_file():
        pytest.skip(f"real ERASER movies data not found at {MOVIES}")
    return MOVIES
