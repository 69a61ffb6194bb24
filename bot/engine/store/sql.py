"""The one way callers talk SQL to a store, whichever database is under it.

`db.execute(sql, args)` is awaited (a write) or entered (`async with ... as cursor`,
then `await cursor.fetchone()` / `fetchall()`), with `?` placeholders, the same on
SQLite and on PostgreSQL: callers write one statement for both. Rows come back as
tuples, fetched whole (the store's queries are small: counts, one row, a page).

On PostgreSQL `?` is rewritten to `$1, $2, ...` outside quoted text, so the jsonb
operators spelled `?` cannot be used in a statement with parameters (`jsonb_exists`
can).
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from typing import Any

Row = tuple[Any, ...]


class Rows:
    """The rows a statement returned, read like a DB-API cursor."""

    def __init__(self, rows: list[Row]) -> None:
        self._rows = rows
        self._next = 0

    async def fetchone(self) -> Row | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    async def fetchall(self) -> list[Row]:
        rest, self._next = self._rows[self._next :], len(self._rows)
        return rest


class Query:
    """A statement that runs when awaited or entered (never before, so a statement
    built and dropped runs nothing)."""

    def __init__(self, run: Callable[[], Awaitable[list[Row]]]) -> None:
        self._run = run

    async def _rows(self) -> Rows:
        return Rows(await self._run())

    def __await__(self) -> Generator[Any, None, Rows]:
        return self._rows().__await__()

    async def __aenter__(self) -> Rows:
        return await self._rows()

    async def __aexit__(self, *exc: object) -> None:
        return None


class Connection(abc.ABC):
    """A store's connection (or, outside a transaction, its pool)."""

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Query:
        return Query(functools.partial(self._fetch, sql, tuple(args)))

    @abc.abstractmethod
    async def _fetch(self, sql: str, args: tuple[Any, ...]) -> list[Row]:
        """Run one statement; its rows (none for a write)."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of arguments."""

    @abc.abstractmethod
    async def commit(self) -> None:
        """Make what was written through the store's `db` outside `transaction()`
        durable (SQLite opens a transaction for it; PostgreSQL commits each statement,
        so there this does nothing)."""


@functools.lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, ...`; quoted text is left alone."""
    out: list[str] = []
    quote: str | None = None
    count = 0
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "?":
            count += 1
            out.append(f"${count}")
            continue
        out.append(char)
    return "".join(out)
