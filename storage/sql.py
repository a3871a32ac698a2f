"""Typed helpers for SQL written against the tables' Core ``Table`` objects."""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result, Table, inspect
from sqlmodel import SQLModel


def table_of(model: type[SQLModel]) -> Table:
    """The Core ``Table`` of a table class, for SQL written against its columns (``T.c.id``).
    It is the class's ``__table__``, which SQLModel sets but does not declare to type checkers."""
    return cast(Table, inspect(model).local_table)


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. ``AsyncSession.execute`` is typed to return a
    ``Result``; for those statements it is a ``CursorResult``, which has the count."""
    return cast(CursorResult[Any], result).rowcount
