"""The PostgreSQL store ([storage] url = "postgresql://..."), through asyncpg.

The same tables and documents as the SQLite store (TEXT documents, DOUBLE PRECISION
times), on a pool of connections. What SQLite's single writer gives for free,
PostgreSQL's locks give here: migrations run under a transaction-level advisory lock
(two processes starting together migrate once), each `transaction()` takes another
(its check-then-write steps never interleave, across processes too), and one process
runs the store by a session advisory lock (`ownership.AdvisoryOwnership`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from bot.engine.ownership import AdvisoryOwnership
from bot.engine.store.base import MIRRORED, UPSERT, Store
from bot.engine.store.migrations import MIGRATIONS, SCHEMA_VERSION, statements
from bot.engine.store.sql import Connection, Row, numbered

# Transaction-level advisory locks ("Atelier" and a number), held until commit.
MIGRATE_LOCK = 0x41_74_65_6C_69_65_72_02
STEP_LOCK = 0x41_74_65_6C_69_65_72_03
# The schema's version (SQLite keeps it in PRAGMA user_version).
_VERSION_TABLE = "atelier_schema"

_Conn = asyncpg.Connection | PoolConnectionProxy


def redacted(url: str) -> str:
    """The URL without its password or query (which may hold one): for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class PgConnection(Connection):
    """One connection (inside a transaction) or the pool (each statement on its own)."""

    def __init__(self, raw: _Conn | asyncpg.Pool) -> None:
        self.raw = raw

    async def _fetch(self, sql: str, args: tuple[Any, ...]) -> list[Row]:
        return [tuple(record) for record in await self.raw.fetch(numbered(sql), *args)]

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.raw.executemany(numbered(sql), list(rows))

    async def commit(self) -> None:
        return None  # outside a transaction each statement commits by itself


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, target: str | Path) -> None:
        self.url = str(target)
        super().__init__(redacted(self.url))
        self._pool: asyncpg.Pool | None = None
        self._step_lock = asyncio.Lock()
        self._ownership = AdvisoryOwnership(self.where, self._connect)

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url)

    async def open(self, *, upto: int | None = None) -> None:
        self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=10)
        await self.migrate(upto)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        return self._pool

    @property
    def db(self) -> PgConnection:
        return PgConnection(self.pool)

    async def close(self) -> None:
        await self._ownership.release()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    # ---- who runs it ----

    @property
    def owned(self) -> bool:
        return self._ownership.owned

    def claim(self) -> None:
        self._ownership.claim()

    def share(self) -> None:
        """Run the store beside other processes (each job leased to one of them), not
        alone: the owner lock is then held shared. Before the first claim."""
        self._ownership.shared = True

    async def _claim(self) -> None:
        await self._ownership.aclaim()

    async def _try_claim(self) -> bool:
        return await self._ownership.try_claim()

    # ---- schema ----

    async def version(self) -> int:
        async with self.pool.acquire() as conn:
            return await _version(conn)

    async def migrate(self, upto: int | None = None) -> int:
        target = SCHEMA_VERSION if upto is None else upto
        async with self.pool.acquire() as conn:
            while True:
                # One transaction per step, under the migration lock, the version read
                # again once the lock is held: whoever waited finds the step applied.
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {_VERSION_TABLE} (version INTEGER NOT NULL)"
                    )
                    current = await _version(conn)
                    self.check_version(current)
                    if current >= target:
                        return target
                    for statement in statements(MIGRATIONS[current], "postgresql"):
                        await conn.execute(statement)
                    await conn.execute(f"DELETE FROM {_VERSION_TABLE}")
                    await conn.execute(
                        f"INSERT INTO {_VERSION_TABLE} (version) VALUES ($1)", current + 1
                    )

    # ---- writes ----

    async def _write_rows(self, rows: list[Row]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(numbered(UPSERT), rows)

    skip_locked = " FOR UPDATE OF jobs SKIP LOCKED"

    @contextlib.asynccontextmanager
    async def coordination(self) -> AsyncIterator[PgConnection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield PgConnection(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgConnection]:
        await self._claim()
        # This process's steps queue here first, in order of arrival (as on SQLite; the
        # advisory lock's waiters have no order), so one connection at a time waits on it.
        async with self._step_lock, self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", STEP_LOCK)
            yield PgConnection(conn)

    def _patch_statement(self, values: dict[str, Any], job_id: str) -> tuple[str, Row]:
        columns = "".join(f", {name} = ?" for name in values if name in MIRRORED)
        mirrored = tuple(v for k, v in values.items() if k in MIRRORED)
        document = json.dumps(values, separators=(",", ":"))
        sql = f"UPDATE jobs SET data = (data::jsonb || ?::jsonb)::text{columns} WHERE id = ?"
        return sql, (document, *mirrored, job_id)

    def json_text(self, name: str) -> str:
        return f"(data::jsonb ->> '{name}')"


async def _version(conn: _Conn) -> int:
    if await conn.fetchval("SELECT to_regclass($1)", _VERSION_TABLE) is None:
        return 0
    found = await conn.fetchval(f"SELECT version FROM {_VERSION_TABLE}")
    return int(found or 0)
