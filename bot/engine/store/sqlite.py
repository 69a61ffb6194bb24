"""The SQLite store (the default): one file through aiosqlite, WAL, one connection.

One process at a time runs it, by an OS lock on `<db>.lock` (see `ownership.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from bot.engine.ownership import Ownership
from bot.engine.store.base import MIRRORED, UPSERT, Store
from bot.engine.store.migrations import MIGRATIONS, SCHEMA_VERSION, statements
from bot.engine.store.sql import Connection, Row


class SqliteConnection(Connection):
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.raw = db

    async def _fetch(self, sql: str, args: tuple[Any, ...]) -> list[Row]:
        async with self.raw.execute(sql, args) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.raw.executemany(sql, rows)

    async def commit(self) -> None:
        await self.raw.commit()


class SqliteStore(Store):
    dialect = "sqlite"

    def __init__(self, target: str | Path) -> None:
        super().__init__(target)
        self.path = Path(target)
        self._conn: SqliteConnection | None = None
        self._ownership = None if str(target) == ":memory:" else Ownership(self.path)

    async def open(self, *, upto: int | None = None) -> None:
        """Open (creating the file and folder) and migrate to `upto` (default: latest)."""
        if self._ownership is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(self.path)
        self._conn = SqliteConnection(db)
        await db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across process crashes (kill -9) in WAL mode; only a power
        # cut may lose the last commits.
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA busy_timeout=5000")
        await self.migrate(upto)

    @property
    def db(self) -> SqliteConnection:
        if self._conn is None:
            raise RuntimeError("the store is not open")
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.raw.close()
            self._conn = None
        if self._ownership is not None:
            self._ownership.release()

    # ---- who runs it ----

    @property
    def owned(self) -> bool:
        return self._ownership is None or self._ownership.owned

    def claim(self) -> None:
        if self._ownership is not None:
            self._ownership.claim()

    async def _try_claim(self) -> bool:
        return self._ownership is not None and self._ownership.try_claim()

    # ---- schema ----

    async def version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def migrate(self, upto: int | None = None) -> int:
        target = SCHEMA_VERSION if upto is None else upto
        self.check_version(await self.version())
        raw = self.db.raw
        while True:
            # One transaction per step, each under SQLite's write lock (IMMEDIATE), the
            # version read again inside it: two processes opening a new file together
            # apply each step once, and a failed step leaves the previous version intact.
            await raw.execute("BEGIN IMMEDIATE")
            try:
                current = await self.version()
                self.check_version(current)
                if current >= target:
                    await raw.rollback()
                    return target
                for statement in statements(MIGRATIONS[current], "sqlite"):
                    await raw.execute(statement)
                await raw.execute(f"PRAGMA user_version = {current + 1}")
                await raw.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    await raw.rollback()
                raise

    # ---- writes ----

    async def _write_rows(self, rows: list[Row]) -> None:
        try:
            await self.db.executemany(UPSERT, rows)
            await self.db.commit()
        except Exception:
            with contextlib.suppress(Exception):
                await self.db.raw.rollback()
            raise

    def transaction(self) -> contextlib.AbstractAsyncContextManager[SqliteConnection]:
        self.claim()
        return self.coordination()

    @contextlib.asynccontextmanager
    async def coordination(self) -> AsyncIterator[SqliteConnection]:
        # IMMEDIATE takes SQLite's one write lock at BEGIN: the step's reads and writes
        # see no other connection's (or process's) writes in between.
        async with self._write_lock:
            await self.db.raw.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.db.raw.rollback()
                raise
            await self.db.commit()

    def _patch_statement(self, values: dict[str, Any], job_id: str) -> tuple[str, Row]:
        paths = ", ".join(f"'$.{name}', ?" for name in values)
        columns = "".join(f", {name} = ?" for name in values if name in MIRRORED)
        args = (*values.values(), *(v for k, v in values.items() if k in MIRRORED), job_id)
        return f"UPDATE jobs SET data = json_set(data, {paths}){columns} WHERE id = ?", args

    def json_text(self, name: str) -> str:
        return f"json_extract(data, '$.{name}')"
