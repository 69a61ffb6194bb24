"""The job store: SQLite through aiosqlite, WAL, versioned migrations.

Every state change is written here before it is announced, so that a crash at any
point loses nothing that a user has seen. Indexed columns hold what queries filter
on; the whole job is a JSON document beside them, so that adding a field needs no
migration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from bot.engine.models import Job, JobStatus


@dataclass(frozen=True)
class Usage:
    user_id: str  # "" for jobs from the terminal
    provider: str
    jobs: int  # sent to the provider
    succeeded: int
    failed: int


# Each entry moves the schema from version i to i+1. Never edit a shipped entry:
# append a new one.
MIGRATIONS: list[Sequence[str]] = [
    # 1: jobs
    (
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            parent_id TEXT,
            action TEXT NOT NULL,
            provider TEXT NOT NULL,
            task_id TEXT,
            status TEXT NOT NULL,
            user_id TEXT,
            guild_id TEXT,
            channel_id TEXT,
            message_id TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            data TEXT NOT NULL
        )""",
    ),
    # 2: the runner loads active jobs by status at start; `jobs` lists the newest first;
    # quotas count a user's jobs in a time window.
    (
        "CREATE INDEX jobs_status ON jobs (status)",
        "CREATE INDEX jobs_created ON jobs (created_at)",
        "CREATE INDEX jobs_user_created ON jobs (user_id, created_at)",
    ),
    # 3: the status "queued" (waiting in Atelier, never sent) is now "waiting", so that it
    # no longer shares a word with a task in the provider's queue.
    (
        "UPDATE jobs SET status = 'waiting' WHERE status = 'queued'",
        """UPDATE jobs SET data = json_set(data, '$.status', 'waiting')
            WHERE json_extract(data, '$.status') = 'queued'""",
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)

# Everything not finished. WAITING/SUBMITTING are included so that a restart can see
# (and fail, never resubmit) jobs that died before the provider confirmed them.
_ACTIVE = tuple(s.value for s in JobStatus if not s.finished)
_FINISHED = tuple(s.value for s in JobStatus if s.finished)


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self.writes = 0  # job rows written, for benchmarks
        self.commits = 0
        self._pending: list[tuple[list[tuple[Any, ...]], asyncio.Future[None]]] = []
        self._write_lock = asyncio.Lock()

    async def open(self, *, upto: int | None = None) -> None:
        """Open (creating the file and folder) and migrate to `upto` (default: latest)."""
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across process crashes (kill -9) in WAL mode; only a power
        # cut may lose the last commits.
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self.migrate(upto)

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def migrate(self, upto: int | None = None) -> int:
        target = SCHEMA_VERSION if upto is None else upto
        current = await self.version()
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} was written by a newer Atelier (schema {current}, "
                f"this one knows {SCHEMA_VERSION}); upgrade Atelier."
            )
        for version in range(current, target):
            # One transaction per step: a failed step leaves the previous version intact.
            await self.db.execute("BEGIN")
            try:
                for statement in MIGRATIONS[version]:
                    await self.db.execute(statement)
                await self.db.execute(f"PRAGMA user_version = {version + 1}")
                await self.db.commit()
            except Exception:
                await self.db.rollback()
                raise
        return target

    # ---- jobs ----

    @staticmethod
    def _row(job: Job) -> tuple[Any, ...]:
        return (
            job.id,
            job.parent_id,
            job.action.value,
            job.provider,
            job.task_id,
            job.status.value,
            job.user_id,
            job.guild_id,
            job.channel_id,
            job.message_id,
            job.created_at,
            job.updated_at,
            json.dumps(job.to_json(), separators=(",", ":")),
        )

    async def save(self, job: Job) -> None:
        await self.save_many([job])

    async def save_many(self, jobs: Iterable[Job]) -> None:
        """Write jobs durably; returns once they are committed.

        Writers that arrive together share one transaction (group commit): with a
        thousand jobs moving at once this is one commit per burst, not per job, and
        the single connection never sees two writers interleave.
        """
        now = time.time()
        rows = []
        for job in jobs:
            job.updated_at = now
            rows.append(self._row(job))
        if not rows:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, done))
        async with self._write_lock:
            if not done.done():
                await self._flush()
        await done

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        rows = [row for part, _ in batch for row in part]
        try:
            await self.db.executemany(
                "INSERT OR REPLACE INTO jobs (id, parent_id, action, provider, task_id, "
                "status, user_id, guild_id, channel_id, message_id, created_at, updated_at, "
                "data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            await self.db.commit()
        except Exception as err:
            with contextlib.suppress(Exception):
                await self.db.rollback()
            for _, done in batch:
                done.set_exception(err)
            return
        self.writes += len(rows)
        self.commits += 1
        for _, done in batch:
            done.set_result(None)

    # Fields that also live in a column of their own.
    _COLUMNS = frozenset({"channel_id", "message_id", "status", "task_id", "user_id"})

    async def patch(self, job_id: str, **values: Any) -> None:
        """Set a few fields of a stored job without rewriting the rest.

        Front ends use this for what they own (where the job is shown, whether its
        outcome was delivered), so that they never overwrite newer state from the runner
        with an older copy of the job.
        """
        if not values:
            return
        paths = ", ".join(f"'$.{name}', ?" for name in values)
        columns = "".join(f", {name} = ?" for name in values if name in self._COLUMNS)
        args = [*values.values(), *(v for k, v in values.items() if k in self._COLUMNS)]
        async with self._write_lock:
            await self.db.execute(
                f"UPDATE jobs SET data = json_set(data, {paths}){columns} WHERE id = ?",
                (*args, job_id),
            )
            await self.db.commit()
        self.writes += 1

    async def undelivered(self, origin: str, since: float) -> list[Job]:
        """Finished jobs of a front end whose outcome it never confirmed showing."""
        marks = ",".join("?" * len(_FINISHED))
        async with self.db.execute(
            f"SELECT data FROM jobs WHERE status IN ({marks}) AND updated_at >= ? "
            "AND json_extract(data, '$.origin') = ? "
            "AND json_extract(data, '$.delivered_at') IS NULL ORDER BY created_at",
            (*_FINISHED, since, origin),
        ) as cursor:
            rows = await cursor.fetchall()
        return [Job.from_json(json.loads(r[0])) for r in rows]

    async def get(self, job_id: str) -> Job | None:
        async with self.db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)) as cursor:
            row = await cursor.fetchone()
        return Job.from_json(json.loads(row[0])) if row else None

    async def active(self) -> list[Job]:
        marks = ",".join("?" * len(_ACTIVE))
        async with self.db.execute(
            f"SELECT data FROM jobs WHERE status IN ({marks}) ORDER BY created_at", _ACTIVE
        ) as cursor:
            rows = await cursor.fetchall()
        return [Job.from_json(json.loads(r[0])) for r in rows]

    async def recent(
        self, limit: int = 20, *, user_id: str | None = None, guild_id: str | None = None
    ) -> list[Job]:
        where, args = [], []
        if user_id is not None:
            where.append("user_id = ?")
            args.append(user_id)
        if guild_id is not None:
            where.append("guild_id = ?")
            args.append(guild_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        async with self.db.execute(
            f"SELECT data FROM jobs {clause} ORDER BY created_at DESC LIMIT ?", (*args, limit)
        ) as cursor:
            rows = await cursor.fetchall()
        return [Job.from_json(json.loads(r[0])) for r in rows]

    async def count_sent_since(self, user_id: str, since: float) -> int:
        """Jobs of a user that reached a provider (have a task id) since `since`."""
        async with self.db.execute(
            "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND created_at >= ? "
            "AND task_id IS NOT NULL",
            (user_id, since),
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def usage(self, since: float, guild_id: str | None = None) -> list[Usage]:
        """Jobs per user and provider since `since`: who spends what."""
        where = "created_at >= ? AND task_id IS NOT NULL"
        args: list[Any] = [since]
        if guild_id is not None:
            where += " AND guild_id = ?"
            args.append(guild_id)
        async with self.db.execute(
            "SELECT COALESCE(user_id, ''), provider, COUNT(*), "
            "SUM(status = 'succeeded'), SUM(status = 'failed') "
            f"FROM jobs WHERE {where} GROUP BY user_id, provider "
            "ORDER BY COUNT(*) DESC",
            args,
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            Usage(str(r[0]), str(r[1]), int(r[2]), int(r[3] or 0), int(r[4] or 0)) for r in rows
        ]

    async def count_active_for(self, user_id: str) -> int:
        marks = ",".join("?" * len(_ACTIVE))
        async with self.db.execute(
            f"SELECT COUNT(*) FROM jobs WHERE user_id = ? AND status IN ({marks})",
            (user_id, *_ACTIVE),
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0
