"""The package's layout rules: no import cycle between sgt_nlp's modules, and no module over 450 lines.

The import graph is read from the source with ``ast`` (every ``import`` statement, also those inside
functions: a deferred import still ties two modules together). Importing ``a.b.c`` runs the ``__init__`` of
``a.b`` as well, so an import of a module also counts as an import of each package above it, except the
packages the importing module is itself in (a package's ``__init__`` importing its own modules is the normal
case, not a cycle).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sgt_nlp"
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names: ``from ..x import y`` in ``sgt_nlp.a.b`` is
    ``sgt_nlp.x``."""
    if not node.level:
        return node.module or ""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``name`` imports, directly or as a package above an imported module."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, path, node)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)  # a submodule imported by name
    own_packages = {name.rsplit(".", i)[0] for i in range(name.count(".") + 1)}
    edges: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in known and prefix not in own_packages:
                edges.add(prefix)
    edges.discard(name)
    return edges


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported_modules(name, path, set(found)) for name, path in found.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (each holds at least one cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_cycle_finder_finds_a_cycle_through_a_package_init_and_nothing_in_a_chain():
    chain = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": set()}
    assert find_cycles(chain) == []
    through_init = {"p.a": {"q"}, "q": {"q.x"}, "q.x": {"p.a"}, "p.b": {"p.a"}}
    assert find_cycles(through_init) == [["p.a", "q", "q.x"]]


def test_import_edges_include_the_packages_above_but_not_the_importers_own():
    graph = import_graph()
    assert "sgt_nlp.report.sanity_page" in graph["sgt_nlp.sanity.io"]
    assert "sgt_nlp.report" in graph["sgt_nlp.sanity.io"]  # importing report.x runs report/__init__
    assert "sgt_nlp.sanity" not in graph["sgt_nlp.sanity.io"]  # its own package
    assert "sgt_nlp.report.build" in graph["sgt_nlp.report"]


def test_no_import_cycle_in_the_package():
    assert find_cycles(import_graph()) == []


def test_report_renders_without_importing_the_sanity_checks():
    graph = import_graph()
    for name, targets in graph.items():
        if name == "sgt_nlp.report" or name.startswith("sgt_nlp.report."):
            assert not any(t == "sgt_nlp.sanity" or t.startswith("sgt_nlp.sanity.") for t in targets), name


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_fits_the_line_limit(name):
    lines = len(modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (limit {MAX_LINES}): split it by job"


def test_sanity_checks_and_the_trainer_are_exported_lazily_from_the_package():
    """``import sgt_nlp`` (run by every submodule's import, e.g. the pure metric functions) loads neither the
    sanity checks nor transformers; the public names still resolve to the defining modules' objects."""
    code = (
        "import sys, sgt_nlp, sgt_nlp.metrics; "
        "assert 'sgt_nlp.sanity' not in sys.modules and 'transformers' not in sys.modules; "
        "from sgt_nlp import run_sanity_checks, SanityResult; "
        "from sgt_nlp.sanity import checks; "
        "assert run_sanity_checks is checks.run_sanity_checks and SanityResult is checks.SanityResult; "
        "from sgt_nlp import SaliencyGuidedTrainer, SaliencyGuidedTrainingArguments; "
        "from sgt_nlp import config, trainer; "
        "assert SaliencyGuidedTrainer is trainer.SaliencyGuidedTrainer; "
        "assert SaliencyGuidedTrainingArguments is config.SaliencyGuidedTrainingArguments"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)},
    )
    assert done.returncode == 0, done.stderr
