"""The import table of the architecture holds: lower rows never import higher rows.

ARCHITECTURE.md, "Packages and what each owns": imaging and pacs_bridge know nothing of the other project
packages; models may use imaging; training may use imaging, models and plugins; plugins never import torch;
only aiws wires everything. Imports inside functions count too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = {"aiws", "imaging", "pacs_bridge", "models", "training", "plugins"}
#: package -> the project packages (and forbidden third-party packages) it must not import.
FORBIDDEN = {
    "imaging": PROJECT - {"imaging"},
    "pacs_bridge": PROJECT - {"pacs_bridge"},
    "models": PROJECT - {"models", "imaging"},
    "training": {"aiws", "pacs_bridge"},
    "plugins": (PROJECT - {"plugins"}) | {"torch", "monai"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every absolute import in *path* (module level and inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_table_is_read_from_real_files() -> None:
    """The walker sees a function-level import (so the table test below can fail)."""
    assert "models" in imported_packages(ROOT / "aiws" / "pipelines" / "__init__.py")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_the_table_allows(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_packages(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)}: {', '.join(sorted(bad))}")
    assert not offenders, "imports against ARCHITECTURE.md's table:\n" + "\n".join(offenders)
