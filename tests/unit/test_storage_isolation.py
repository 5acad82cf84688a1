"""The storage initializer is the init container's program: the operator never imports it, and it
imports nothing of the operator (so its image needs no kopf or Kubernetes client at run time)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "modeldeploy"
STORAGE = PACKAGE / "storage"


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_operator_does_not_import_the_storage_initializer() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            m for m in imported_modules(path) if m.startswith("modeldeploy.storage")
        )
        for path in PACKAGE.rglob("*.py")
        if not path.is_relative_to(STORAGE)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_storage_initializer_imports_nothing_of_the_operator() -> None:
    imports = {str(p.relative_to(STORAGE)): imported_modules(p) for p in STORAGE.rglob("*.py")}
    assert len(imports) >= 10  # the package is really there
    outside = {
        name: sorted(
            m
            for m in mods
            if m.split(".")[0] in ("modeldeploy", "kopf", "kubernetes")
            and not m.startswith("modeldeploy.storage")
        )
        for name, mods in imports.items()
    }
    assert {k: v for k, v in outside.items() if v} == {}
