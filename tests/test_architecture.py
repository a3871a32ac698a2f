"""The shape of the code (DESIGN §10, docs/architecture.md): no module imports itself back by any
path, modules stay readable in one sitting, and every feature registers the same way. The
layers themselves are import-linter's contracts in pyproject.toml (``lint-imports`` in CI)."""
from __future__ import annotations

from pathlib import Path

import grimp
import pytest

from bot.builtin import CHANNELS, FEATURES

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "flows", "storage")
MAX_LINES = 400


def strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """The groups of modules that import each other round in a circle (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # Function-level imports count: a cycle through one still ties the modules together.
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)


def test_no_module_imports_itself_back(graph: grimp.ImportGraph) -> None:
    assert [sorted(group) for group in strongly_connected(graph)] == []


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for package in PACKAGES for p in (ROOT / package).rglob("*.py")
            if "migrations" not in p.parts and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_every_feature_and_channel_has_a_distinct_name_and_its_texts_exist() -> None:
    names = [f.name for f in FEATURES] + [c.name for c in CHANNELS]
    assert len(set(names)) == len(names)
    for owner in (*FEATURES, *CHANNELS):
        assert owner.texts is None or owner.texts.is_file(), f"{owner.name}: {owner.texts} is missing"


def test_the_tables_and_the_migrations_describe_one_schema(database_url: str) -> None:
    """Every table is declared beside its functions and created by a migration: the two agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlmodel import SQLModel

    import storage.models  # noqa: F401  (every table on the metadata)
    from storage import migrate
    from storage.engine import sync_url

    migrate.upgrade(database_url)
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    finally:
        engine.dispose()
