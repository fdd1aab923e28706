"""Import a file of ``scripts/`` as a module, so that tests call its functions and ``main`` directly."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.toy_data import ROOT


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as the module ``name``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module
