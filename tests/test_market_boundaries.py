"""Companies and holdings talk only through service modules, never through each other's tables."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(
    ("package", "foreign_models"),
    [("services/holdings", "models.companies"), ("services/companies", "models.holdings")],
)
def test_context_never_imports_another_contexts_tables(package: str, foreign_models: str) -> None:
    assert foreign_models not in imported_modules(package)


def test_holdings_reach_companies_only_through_its_service_package() -> None:
    companies_imports = {m for m in imported_modules("services/holdings") if m.startswith("services.companies")}
    assert companies_imports <= {"services.companies"}
