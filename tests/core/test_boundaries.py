"""The house's shape: stages import only the shared core, never each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("ingestion", "streaming", "spark_jobs", "loaders", "models", "quality")
PROJECT = {"stocklake", "cli", "dags", "infra", "dashboard", *STAGES}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_core_imports_nothing_else_of_the_project() -> None:
    for path in _files("stocklake"):
        assert _imports(path) & PROJECT <= {"stocklake"}, path


@pytest.mark.parametrize("stage", STAGES)
def test_stage_imports_only_the_core(stage: str) -> None:
    files = _files(stage)
    assert files, f"{stage}/ has no Python files"
    for path in files:
        others = (_imports(path) & PROJECT) - {"stocklake", stage}
        assert not others, f"{path.relative_to(ROOT)} imports {sorted(others)}"


def test_infra_imports_only_the_core() -> None:
    for path in _files("infra"):
        others = (_imports(path) & PROJECT) - {"stocklake", "infra"}
        assert not others, f"{path.relative_to(ROOT)} imports {sorted(others)}"


def test_dashboard_reads_through_the_loaders_only() -> None:
    """The dashboard reads the warehouse through `loaders`' interface, nothing else."""
    for path in _files("dashboard"):
        others = (_imports(path) & PROJECT) - {"stocklake", "loaders", "dashboard"}
        assert not others, f"{path.relative_to(ROOT)} imports {sorted(others)}"
