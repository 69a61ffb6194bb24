"""Which store the tests' engines and bots keep their state in.

A test module marked `both_stores` runs twice: once on SQLite, once on PostgreSQL
(conftest.py parametrizes its module-scoped `store_kind`). The tests themselves name
SQLite files as ever (`<data>/atelier.db`); while a module runs on PostgreSQL, every such
file stands for a fresh database of the session's cluster, one per file, so that:

- an engine a test builds in this process opens that database (`Redirect.store_for`
  replaces `bot.engine.service.store_for` for the module);
- a config file the helpers write for a bot or CLI subprocess says `url = "..."`
  instead of `path = "..."` (`storage_line`);
- the assertions that read a bot's store (`rows`, `job_data`, `execute`) read that
  database.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bot.engine.store import Store, is_postgres_url, store_for
from tests.pg import PgCluster


class Redirect:
    """SQLite file → PostgreSQL database, for one module's run on PostgreSQL."""

    def __init__(self, cluster: PgCluster) -> None:
        self.cluster = cluster
        self.databases: dict[str, str] = {}

    def url_for(self, path: str | Path) -> str:
        key = str(Path(path).resolve())
        if key not in self.databases:
            self.databases[key] = self.cluster.create_database()
        return self.databases[key]

    def store_for(self, target: str | Path) -> Store:
        if is_postgres_url(target) or str(target) == ":memory:":
            return store_for(target)
        return store_for(self.url_for(target))


ACTIVE: Redirect | None = None  # set by conftest.py while a module runs on PostgreSQL


def target_for(path: Path) -> str:
    """What a store named by the SQLite file `path` opens in the running module."""
    return ACTIVE.url_for(path) if ACTIVE is not None else str(path)


# On PostgreSQL a restarted bot takes its own earlier jobs back only once their leases
# expire (it cannot know the old process is dead): short leases keep restart tests quick.
TEST_LEASE_SECONDS = 3


def storage_line(path: Path) -> str:
    """The `[storage]` line(s) of a config whose store the tests name by `path`."""
    target = target_for(path)
    if not is_postgres_url(target):
        return f"path = {json.dumps(target)}"
    return f"url = {json.dumps(target)}\nlease_seconds = {TEST_LEASE_SECONDS}"


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run `sql` (with `?` placeholders) on the store named by `path`; its rows."""
    target = target_for(path)
    if not is_postgres_url(target):
        with sqlite3.connect(target) as db:
            return list(db.execute(sql, args))
    # Synchronous on purpose (the callers are predicates of wait_for): asyncpg in a
    # thread of its own, as the test's event loop is running the fakes.
    numbered = _numbered(sql)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _pg_rows(target, numbered, args)).result()


def execute(path: Path, sql: str, *args: Any) -> None:
    rows(path, sql, *args)


def job_data(path: Path, job_id: str) -> dict[str, Any] | None:
    """The job's stored `data` (its whole record as JSON), or None without that job."""
    found = rows(path, "SELECT data FROM jobs WHERE id = ?", job_id)
    return json.loads(found[0][0]) if found else None


def _numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, ...`."""
    count = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


async def _pg_rows(url: str, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [tuple(record) for record in await conn.fetch(sql, *args)]
    finally:
        await conn.close()
