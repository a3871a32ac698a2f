"""Typed helpers for SQL written against the tables' Core ``Table`` objects."""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    CursorResult,
    Result,
    Table,
    any_,
    bindparam,
    func,
    inspect,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel


def table_of(model: type[SQLModel]) -> Table:
    """The Core ``Table`` of a table class, for SQL written against its columns (``T.c.id``).
    It is the class's ``__table__``, which SQLModel sets but does not declare to type checkers."""
    return cast(Table, inspect(model).local_table)


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. ``AsyncSession.execute`` is typed to return a
    ``Result``; for those statements it is a ``CursorResult``, which has the count."""
    return cast(CursorResult[Any], result).rowcount


def ids_in(session: AsyncSession, column: ColumnElement[int], name: str = "ids") -> ColumnElement[bool]:
    """``column IN`` the list bound to ``name`` as one parameter (a JSON array on SQLite, an
    array on PostgreSQL), not one parameter per id: a claim marks a couple of thousand rows,
    and an ``IN`` list that long is a new statement to build and parse every time (10 ms of
    SQLite's only writer)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(BigInteger)))
    return column.in_(select(func.json_each(bindparam(name, type_=JSON)).table_valued("value").c.value))
